"""Stored measurements -> per-cell statistics and speedup ratios with confidence intervals.

The one place results are interpreted; the terminal table, --json and later reports all read this.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frameduel.checkpoints import model_config
from frameduel.errors import FrameduelError
from frameduel.runner.contention import CONTENTION_THRESHOLD_CORES
from frameduel.runner.plan import Plan
from frameduel.spec import FRAMEWORKS, MODES, Measurement, RunSpec
from frameduel.stats import (
    UNSTABLE_THRESHOLD,
    Dispersion,
    Interval,
    SampleSummary,
    hierarchical_median_ci,
    hierarchical_ratio_ci,
    hull,
    log_paired_t_interval,
    log_ratio_t_interval,
    log_t_interval,
    process_dispersion,
    process_spread,
    summarize,
    throughput,
)
from frameduel.workloads import get_workload

# A training step's FLOPs in forwards: backward computes the activations' gradients (one forward's
# worth) and the weights' (another); LoRA needs the weights' gradients of its small adapters only.
TRAINING_FLOPS = {"train": 3, "finetune": 2}
# A speedup whose CI clears this band either side of 1.0 names the faster side.
NOISE_BAND = 0.02
# "No meaningful difference" only where the whole CI lies within this band either side of 1.0: a CI of
# [0.8, 1.3] does not say the two are the same, it says the run cannot tell ("inconclusive").
EQUIVALENCE_BAND = 0.05
# A process whose median lies further than this factor from the median of its cell's processes is an
# outlier (a 27x straggler, a 680x one were seen beside siblings within 2%): re-run and left out of the
# estimate, unless as many processes sit out there as near the median (then the cell is bimodal, and
# both modes stay: excluding one would hide what users get).
OUTLIER_FACTOR = 1.5
# Below this many kept processes a CI is also at least the two-level bootstrap (processes, then steps), as
# calibrated with 3; from here on the t interval of the log process medians is the model alone: the
# bootstrap of the pooled median is the less efficient estimator (1.3x wider at 12 processes with the same
# coverage, tests/test_adaptive.py) and adds nothing the processes' own spread does not already carry.
BOOTSTRAP_BELOW_PROCESSES = 6
# Fewest processes an estimate rests on once contended processes are left out; with fewer clean ones
# (the machine stayed busy), the contended ones stay in and the verdict says the machine was busy.
MIN_KEPT_PROCESSES = 3


@dataclass(frozen=True)
class ExcludedProcess:
    """A worker process kept in the store but left out of the cell's estimate, and why."""

    round: int
    median: float  # seconds per step
    reason: str  # "contended (0.8 cores busy elsewhere)" or "outlier (12.3x the median process)"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CellSummary:
    spec: RunSpec
    status: str  # ok only when every round is ok; else the first bad round's status
    error: str | None
    rounds: int
    step: SampleSummary | None = None  # pooled steady-state step times, seconds
    # CI of the median step time across worker processes: the two-level bootstrap, widened to at least
    # the Student-t intervals of the process medians with the cell's own dispersion and with the one
    # pooled over the run's cells of the same framework and task (pool_dispersions).
    step_ci: Interval | None = None
    process_medians: list[float] = field(default_factory=list)  # one per worker process (round), seconds
    pooled_dispersion: Dispersion | None = None
    throughput: float | None = None  # samples/s
    throughput_ci: Interval | None = None
    latency: bool = False  # per-call timings: step.p50/p90/p99 are request latencies
    phases: dict[str, SampleSummary] = field(default_factory=dict)  # e.g. "prefill", "decode_token"
    gflops: float | None = None  # achieved, from the workload's analytic FLOPs and the median step
    peak_fraction: float | None = None  # gflops / the run's best GEMM (same framework, precision, device)
    compile_s: float | None = None  # median over rounds
    first_step_s: float | None = None
    peak_rss_mb: float | None = None  # max over rounds
    peak_device_mb: float | None = None
    background_cores: float | None = None  # max over rounds: other processes' CPU use while sampling
    runtime: dict[str, Any] = field(default_factory=dict)
    model_facts: dict[str, Any] = field(default_factory=dict)  # parameters, trainable, adapter size (finetune)
    machine_classes: list[str] = field(default_factory=list)  # environment.machine_class of its rounds' machines
    concurrent: int = 1  # most timing cells that shared the machine with one of its rounds (compare --parallel)
    process_wall_s: float | None = None  # median wall time of its worker processes (what another one costs)
    # Processes measured but left out of the estimate (contended, outliers): shown with --wide.
    excluded: list[ExcludedProcess] = field(default_factory=list)
    # Other processes' busy cores while each kept process sampled (the machine's load when it stayed busy).
    kept_background: list[float] = field(default_factory=list)
    kept_rounds: list[int] = field(default_factory=list)  # the round of each kept process: pairs across cells
    samples: list[list[float]] = field(default_factory=list, repr=False)  # per kept round

    @property
    def noisy(self) -> bool:
        return self.step is not None and self.step.noisy

    @property
    def spread(self) -> float:
        """How far apart the worker processes' medians are: max / min - 1 (0 for one process)."""
        return process_spread(self.process_medians) if self.process_medians else 0.0

    @property
    def unstable(self) -> bool:
        """Process medians further apart than UNSTABLE_THRESHOLD: a process-level effect moves the cell."""
        return len(self.process_medians) > 1 and self.spread > UNSTABLE_THRESHOLD

    @property
    def process_range(self) -> str:
        """'3 processes: 0.12-0.27 ms/step'."""
        low, high = min(self.process_medians, default=0.0), max(self.process_medians, default=0.0)
        return f"{len(self.process_medians)} processes: {low * 1e3:.3g}-{high * 1e3:.3g} ms/step"

    @property
    def partly_eager(self) -> bool:
        """torch.compile fell back to eager Python for part (a graph break) or all of the model."""
        return self.runtime.get("compiled_graphs") == 0 or bool(self.runtime.get("graph_breaks"))

    @property
    def contended(self) -> bool:
        return self.background_cores is not None and self.background_cores > CONTENTION_THRESHOLD_CORES

    @property
    def processes(self) -> int:
        """Worker processes measured: the kept ones and those left out."""
        return len(self.process_medians) + len(self.excluded)

    @property
    def shared_machine(self) -> bool:
        """Ran beside other timing cells (compare --parallel): they shared memory bandwidth and caches."""
        return self.concurrent > 1

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("samples", "step", "phases")}
        data["spec"] = self.spec.to_dict()
        data["key"] = self.spec.key
        data["excluded"] = [process.to_dict() for process in self.excluded]
        data["step"] = self.step.to_dict() if self.step else None
        data["phases"] = {name: phase.to_dict() for name, phase in self.phases.items()}
        data["noisy"] = self.noisy
        data["contended"] = self.contended
        data["shared_machine"] = self.shared_machine
        data["spread"] = self.spread
        data["unstable"] = self.unstable
        return data


@dataclass(frozen=True)
class Ratio:
    """A speedup: how many times faster `faster` is than `baseline` (median step time ratio)."""

    group: str
    label: str
    faster: str  # cell key
    baseline: str  # cell key
    value: float
    ci: Interval
    unstable: bool = False  # a cell of the two is unstable across processes

    @property
    def verdict(self) -> str:
        """faster / slower where the CI clears the ±2% noise band; "no meaningful difference" where the
        whole CI lies within the ±5% equivalence band; otherwise "inconclusive". Processes that disagree
        widen the CI themselves (across-process statistics), so instability needs no rule of its own."""
        if self.ci.low > 1 + NOISE_BAND:
            return "faster"
        if self.ci.high < 1 / (1 + NOISE_BAND):
            return "slower"
        within = self.ci.low >= 1 / (1 + EQUIVALENCE_BAND) and self.ci.high <= 1 + EQUIVALENCE_BAND
        return "no meaningful difference" if within else "inconclusive"

    def inverse(self) -> Ratio:
        """The same comparison the other way round: baseline against faster."""
        return dataclasses.replace(self, label=" vs ".join(reversed(self.label.split(" vs "))), faster=self.baseline,
                                   baseline=self.faster, value=1 / self.value,
                                   ci=Interval(1 / self.ci.high, 1 / self.ci.low))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": self.verdict}


MIN_EXTRA_S = 30.0  # the default budget gives added rounds at least this long


@dataclass(frozen=True)
class Budget:
    """How long a run's measuring may take in all, how many processes a cell may have, and what was spent:
    what adaptive processes are bounded by (analysis/adaptive.py), and what an undecided verdict cites."""

    seconds: float
    max_processes: int
    spent: float  # wall seconds of the worker processes measured so far (base rounds included)

    @property
    def left(self) -> float:
        return self.seconds - self.spent

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def spent_seconds(measurements: list[tuple[int, Measurement]], parallel: int = 1) -> float:
    """Wall time the worker processes took; cells run `parallel` at a time share it."""
    return sum(m.wall_s or 0.0 for _, m in measurements) / max(1, parallel)


def run_budget(measurements: list[tuple[int, Measurement]], plan: Plan) -> Budget | None:
    """The plan's budget (--budget), or by default the base rounds' own time plus extra_share of it (at least
    MIN_EXTRA_S); None for a run with a fixed number of processes per cell."""
    settings = plan.adaptive
    if settings is None:
        return None
    spent = spent_seconds(measurements, plan.parallel)
    seconds = settings.budget_s
    if seconds is None:
        base = spent_seconds([(r, m) for r, m in measurements if r < plan.repeats], plan.parallel)
        seconds = base + max(MIN_EXTRA_S, settings.extra_share * base)
    return Budget(seconds, settings.max_processes, spent)


@dataclass
class RunSummary:
    cells: list[CellSummary]
    ratios: list[Ratio]
    # Speedups not computed because their cells ran on different machine classes: one line each.
    incomparable: list[str] = field(default_factory=list)
    budget: Budget | None = None  # None: a fixed number of processes per cell (--repeats, or an older run)

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [c.to_dict() for c in self.cells], "ratios": [r.to_dict() for r in self.ratios],
                "incomparable": self.incomparable, "budget": self.budget.to_dict() if self.budget else None}

    @property
    def headline(self) -> list[Ratio]:
        """Framework against framework, each at its best mode: per group, its first framework (torch, where
        measured) against each other one. Every other pair is in `ratios` too."""
        cells = {cell.spec.key: cell for cell in self.cells}
        firsts: dict[str, str] = {}
        for ratio in self.ratios:
            if " best (" in ratio.label:
                firsts.setdefault(ratio.group, cells[ratio.faster].spec.framework)
        return [ratio for ratio in self.ratios
                if " best (" in ratio.label and cells[ratio.faster].spec.framework == firsts[ratio.group]]

    def best_pair(self, group: str, a: str, b: str) -> Ratio | None:
        """a's best cell against b's best cell in the group (value > 1: a is faster), computed either way round."""
        cells = {cell.spec.key: cell for cell in self.cells}
        for ratio in self.ratios:
            if ratio.group == group and " best (" in ratio.label:
                pair = (cells[ratio.faster].spec.framework, cells[ratio.baseline].spec.framework)
                if pair == (a, b):
                    return ratio
                if pair == (b, a):
                    return ratio.inverse()
        return None

    @property
    def workloads(self) -> list[str]:
        return sorted({cell.spec.workload for cell in self.cells})

    def measured_groups(self) -> dict[str, list[CellSummary]]:
        """Cells with steady-state timings, by comparison group, in the run's order."""
        groups: dict[str, list[CellSummary]] = defaultdict(list)
        for cell in self.cells:
            if cell.step is not None:
                groups[cell.spec.comparison_group].append(cell)
        return groups


def group_label(cell: CellSummary, with_size: bool = True) -> str:
    """A comparison group as people say it: 'mlp/small train b32', with the precision where not fp32
    and the data-parallel workers where more than one ('mlp/small train b32 2 workers')."""
    spec = cell.spec
    precision = "" if spec.precision == "fp32" else f" {spec.precision}"
    size = f"/{spec.size}" if with_size else ""
    workers = f" {spec.workers} workers" if spec.workers > 1 else ""
    return f"{spec.workload}{size} {spec.task} b{spec.batch_size}{precision}{workers}"


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def exclusions(rounds: list[tuple[int, Measurement]]) -> dict[int, str]:
    """Which measured processes stay out of the estimate (by position in rounds), and why.

    Contended ones (other processes kept more than CONTENTION_THRESHOLD_CORES busy while they sampled)
    first, provided MIN_KEPT_PROCESSES clean ones remain; then outliers among the rest: further than
    OUTLIER_FACTOR from their median, fewer than half of them, and at least two left."""
    medians = {i: float(np.median(m.step_seconds)) for i, (_, m) in enumerate(rounds)}
    busy = {i: m.background_cores or 0.0 for i, (_, m) in enumerate(rounds)}
    contended = {i for i in medians if busy[i] > CONTENTION_THRESHOLD_CORES}
    out = {}
    if len(medians) - len(contended) >= MIN_KEPT_PROCESSES:
        out = {i: f"contended ({busy[i]:.2f} cores busy elsewhere)" for i in contended}
    rest = [i for i in medians if i not in out]
    centre = float(np.median([medians[i] for i in rest]))
    factors = {i: max(medians[i] / centre, centre / medians[i]) for i in rest}
    outliers = [i for i in rest if factors[i] > OUTLIER_FACTOR]
    if 2 * len(outliers) < len(rest) and len(rest) - len(outliers) >= 2:
        side = lambda i: "slower" if medians[i] > centre else "faster"  # noqa: E731
        out |= {i: f"outlier ({factors[i]:.3g}x {side(i)} than the median process)" for i in outliers}
    return out


def summarize_cell(spec: RunSpec, numbered_rounds: list[tuple[int, Measurement]]) -> CellSummary:
    rounds = [m for _, m in numbered_rounds]
    bad = [m for m in rounds if m.status != "ok"]
    cell = CellSummary(
        spec=spec,
        status=bad[0].status if bad else "ok",
        error=bad[0].error if bad else None,
        rounds=len(rounds),
        compile_s=median_or_none([m.compile_s for m in rounds]),
        first_step_s=median_or_none([m.first_step_s for m in rounds]),
        peak_rss_mb=max((m.peak_rss_mb for m in rounds if m.peak_rss_mb), default=None),
        peak_device_mb=max((m.peak_device_mb for m in rounds if m.peak_device_mb), default=None),
        runtime=rounds[0].runtime,
        model_facts=next((m.model_facts for m in rounds if m.model_facts), {}),
        machine_classes=sorted({m.placement["machine_class"] for m in rounds if m.placement.get("machine_class")}),
        concurrent=max((m.placement.get("concurrent", 1) for m in rounds), default=1),
        process_wall_s=median_or_none([m.wall_s for m in rounds]),
    )
    measured = [(index, m) for index, m in numbered_rounds if m.status == "ok" and m.step_seconds]
    left_out = exclusions(measured) if measured else {}
    cell.excluded = [ExcludedProcess(measured[i][0], float(np.median(measured[i][1].step_seconds)), reason)
                     for i, reason in sorted(left_out.items())]
    kept = [m for i, (_, m) in enumerate(measured) if i not in left_out]
    cell.kept_rounds = [r for i, (r, _) in enumerate(measured) if i not in left_out]
    cell.samples = [m.step_seconds for m in kept]
    cell.kept_background = [m.background_cores or 0.0 for m in kept]
    cell.background_cores = max(cell.kept_background, default=None)
    if cell.samples:
        cell.step = summarize([s for group in cell.samples for s in group])
        cell.process_medians = [float(np.median(group)) for group in cell.samples]
        cell.latency = all(m.steps_per_sample == 1 for m in rounds) and spec.task == "infer"
        cell.phases = summarize_phases(kept)
        flops = step_flops(spec)
        cell.gflops = flops / cell.step.median / 1e9 if flops else None
        few = len(cell.samples) < BOOTSTRAP_BELOW_PROCESSES
        set_step_ci(cell, hull(hierarchical_median_ci(cell.samples) if few else None,
                               log_t_interval(cell.process_medians), Interval(cell.step.median, cell.step.median)))
    return cell


def set_step_ci(cell: CellSummary, ci: Interval) -> None:
    """The cell's CI, and the throughput derived from it (generation: generated tokens per second)."""
    cell.step_ci = ci
    cell.step = dataclasses.replace(cell.step, median_ci=ci)
    cell.throughput, cell.throughput_ci = throughput(cell.spec.batch_size, cell.step)
    if "decode_token" in cell.phases:
        cell.throughput, cell.throughput_ci = throughput(cell.spec.batch_size, cell.phases["decode_token"])


def pool_dispersions(cells: list[CellSummary]) -> None:
    """Widen each cell's CI to the t interval with the between-process spread pooled over the run's
    cells of its framework and task (see stats.process_dispersion), at the cell's own degrees of
    freedom: the pool tells how far this machine's processes scatter, not how many independent looks
    this cell had. benchmarks/calibration.py measured the choice: one run's median fell inside another
    run's CI 80% of the time with each cell's own spread alone, 87% with the pooled spread at the
    pool's df, 96% at the cell's own df, with the same verdicts (README, "Calibration")."""
    kinds: dict[tuple[str, str], list[CellSummary]] = defaultdict(list)
    for cell in cells:
        if cell.step is not None:
            kinds[(cell.spec.framework, cell.spec.task)].append(cell)
    for members in kinds.values():
        pooled = process_dispersion([cell.process_medians for cell in members])
        for cell in members:
            if pooled is None or len(cell.process_medians) < 2:
                continue
            cell.pooled_dispersion = Dispersion(pooled.log_sd, len(cell.process_medians) - 1)
            set_step_ci(cell, hull(cell.step_ci, log_t_interval(cell.process_medians,
                                                                dispersion=cell.pooled_dispersion)))


def step_flops(spec: RunSpec) -> float | None:
    """Analytic FLOPs of one step: batch x forward, x3 for training; None where not modelled."""
    try:
        workload = get_workload(spec.workload)
    except FrameduelError:  # a plugin no longer importable: report the rest
        return None
    if workload.forward_flops is None or spec.task == "generate":
        return None
    try:
        config = model_config(workload, spec.checkpoint, spec.size)
    except FrameduelError:  # a checkpoint since moved or deleted: report the rest
        return None
    return spec.batch_size * workload.forward_flops(config) * TRAINING_FLOPS.get(spec.task, 1)


def attach_peak_fractions(cells: list[CellSummary]) -> None:
    """Each cell's share of the best GEMM measured in the same run by the same framework and precision."""
    peaks: dict[tuple[str, str, str], float] = {}
    for cell in cells:
        if cell.spec.workload == "gemm" and cell.gflops:
            key = (cell.spec.framework, cell.spec.precision, cell.spec.device)
            peaks[key] = max(peaks.get(key, 0.0), cell.gflops)
    for cell in cells:
        peak = peaks.get((cell.spec.framework, cell.spec.precision, cell.spec.device))
        if peak and cell.gflops:
            cell.peak_fraction = cell.gflops / peak


def summarize_phases(rounds: list[Measurement]) -> dict[str, SampleSummary]:
    pooled: dict[str, list[float]] = defaultdict(list)
    for measurement in rounds:
        if measurement.status == "ok":
            for name, values in measurement.series.items():
                pooled[name].extend(values)
    return {name: summarize(values) for name, values in pooled.items() if values}


def paired_medians(a: CellSummary, b: CellSummary) -> tuple[list[float], list[float]]:
    """The two cells' kept process medians from the same rounds (run side by side), in round order."""
    of_a = dict(zip(a.kept_rounds, a.process_medians, strict=True))
    of_b = dict(zip(b.kept_rounds, b.process_medians, strict=True))
    rounds = sorted(set(of_a) & set(of_b))
    return [of_a[r] for r in rounds], [of_b[r] for r in rounds]


def speedup(group: str, label: str, faster: CellSummary, baseline: CellSummary) -> Ratio:
    """baseline time / candidate time, with the same across-process honesty as each cell's CI.

    With fewer than BOOTSTRAP_BELOW_PROCESSES pairs of processes run side by side: at least the two-level
    bootstrap and the unpaired t intervals (own and pooled spread), as calibrated with 3 processes. With
    more: the paired t interval (stats.log_paired_t_interval), which takes out what moved both processes of
    a pair alike."""
    value = baseline.step.median / faster.step.median
    pairs = paired_medians(baseline, faster)
    if len(pairs[0]) >= BOOTSTRAP_BELOW_PROCESSES:
        return Ratio(group=group, label=label, faster=faster.spec.key, baseline=baseline.spec.key, value=value,
                     ci=hull(log_paired_t_interval(*pairs), Interval(value, value)),
                     unstable=faster.unstable or baseline.unstable)
    bootstrap = hierarchical_ratio_ci(baseline.samples, faster.samples)
    pooled = (baseline.pooled_dispersion, faster.pooled_dispersion)
    ci = hull(bootstrap, log_ratio_t_interval(baseline.process_medians, faster.process_medians),
              log_ratio_t_interval(baseline.process_medians, faster.process_medians, dispersions=pooled)
              if all(pooled) else None, Interval(value, value))
    return Ratio(group=group, label=label, faster=faster.spec.key, baseline=baseline.spec.key,
                 value=value, ci=ci, unstable=faster.unstable or baseline.unstable)


def different_machines(a: CellSummary, b: CellSummary) -> str | None:
    """Why a and b cannot be compared (rounds on more than one machine class, or on different ones), or None."""
    classes = set(a.machine_classes) | set(b.machine_classes)
    if len(classes) <= 1:  # one class, or runs stored before cells recorded theirs
        return None
    return (f"{a.spec.framework} {a.spec.mode} ran on machine class {','.join(a.machine_classes)}, "
            f"{b.spec.framework} {b.spec.mode} on {','.join(b.machine_classes)}")


def comparable_ratios(group: str, cells: list[CellSummary]) -> tuple[list[Ratio], list[str]]:
    """group_ratios, less those whose two cells ran on different machine classes (listed instead)."""
    by_key = {cell.spec.key: cell for cell in cells}
    ratios, incomparable = [], []
    for ratio in group_ratios(group, cells):
        reason = different_machines(by_key[ratio.faster], by_key[ratio.baseline])
        if reason is None:
            ratios.append(ratio)
        else:
            incomparable.append(f"{group} {ratio.label}: not computed, {reason}")
    return ratios, incomparable


def group_ratios(group: str, cells: list[CellSummary]) -> list[Ratio]:
    """Compiled-vs-eager per framework, and the frameworks against each other (eager and best)."""
    ok = [c for c in cells if c.step is not None]
    by_framework: dict[str, dict[str, CellSummary]] = defaultdict(dict)
    for cell in ok:
        by_framework[cell.spec.framework][cell.spec.mode] = cell
    ratios = []
    for framework, modes in by_framework.items():
        eager = modes.get("eager")
        for mode in MODES[framework]:
            if eager is not None and mode != "eager" and mode in modes:
                ratios.append(speedup(group, f"{framework} {mode} vs {framework} eager", modes[mode], eager))
    # Every pair of frameworks, in display order (torch first): eager against eager, best against best.
    for fw_a, fw_b in itertools.combinations(sorted(by_framework, key=FRAMEWORKS.index), 2):
        modes_a, modes_b = by_framework[fw_a], by_framework[fw_b]
        if "eager" in modes_a and "eager" in modes_b:
            ratios.append(speedup(group, f"{fw_a} eager vs {fw_b} eager", modes_a["eager"], modes_b["eager"]))
        best_a = min(modes_a.values(), key=lambda c: c.step.median)
        best_b = min(modes_b.values(), key=lambda c: c.step.median)
        ratios.append(speedup(group, f"{fw_a} best ({best_a.spec.mode}) vs {fw_b} best ({best_b.spec.mode})",
                              best_a, best_b))
    return ratios


def summarize_planned_run(measurements: list[tuple[int, Measurement]], plan: Plan) -> RunSummary:
    """A stored run by its plan: its cells, ratios and the budget its added processes had."""
    summary = summarize_run(measurements, list(plan.specs))
    summary.budget = run_budget(measurements, plan)
    return summary


def summarize_run(measurements: list[tuple[int, Measurement]], specs: list[RunSpec]) -> RunSummary:
    """Cells in plan order (unfinished ones left out), then their ratios group by group."""
    rounds: dict[str, list[tuple[int, Measurement]]] = defaultdict(list)
    for round_index, measurement in measurements:
        rounds[measurement.spec.key].append((round_index, measurement))
    cells = [summarize_cell(spec, rounds[spec.key]) for spec in specs if spec.key in rounds]
    pool_dispersions(cells)
    attach_peak_fractions(cells)
    groups: dict[str, list[CellSummary]] = defaultdict(list)
    for cell in cells:
        groups[cell.spec.comparison_group].append(cell)
    ratios, incomparable = [], []
    for group, members in groups.items():
        group_comparable, group_incomparable = comparable_ratios(group, members)
        ratios += group_comparable
        incomparable += group_incomparable
    return RunSummary(cells=cells, ratios=ratios, incomparable=incomparable)
