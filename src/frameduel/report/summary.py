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
from frameduel.runner.stats import (
    UNSTABLE_THRESHOLD,
    Dispersion,
    Interval,
    SampleSummary,
    hierarchical_median_ci,
    hierarchical_ratio_ci,
    hull,
    log_ratio_t_interval,
    log_t_interval,
    process_dispersion,
    process_spread,
    summarize,
    throughput,
)
from frameduel.spec import FRAMEWORKS, MODES, Measurement, RunSpec
from frameduel.workloads import get_workload

# A training step's FLOPs in forwards: backward computes the activations' gradients (one forward's
# worth) and the weights' (another); LoRA needs the weights' gradients of its small adapters only.
TRAINING_FLOPS = {"train": 3, "finetune": 2}
# A speedup whose CI does not clear this band either side of 1.0 is "no meaningful difference".
NOISE_BAND = 0.02
# A speedup inside the noise band is "no meaningful difference" only if its CI also stays within this
# band: a CI of [0.8, 1.3] does not say the two are the same, it says the run cannot tell.
EQUIVALENCE_BAND = 0.10


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
    samples: list[list[float]] = field(default_factory=list, repr=False)  # per round

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
    def shared_machine(self) -> bool:
        """Ran beside other timing cells (compare --parallel): they shared memory bandwidth and caches."""
        return self.concurrent > 1

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("samples", "step", "phases")}
        data["spec"] = self.spec.to_dict()
        data["key"] = self.spec.key
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
        """faster / slower where the CI clears the noise band; otherwise "no meaningful difference" when
        the CI stays within ±10% of 1, or "inconclusive" when it does not, or when a cell's own
        processes disagree (the next run may well differ)."""
        if self.ci.low > 1 + NOISE_BAND:
            return "faster"
        if self.ci.high < 1 / (1 + NOISE_BAND):
            return "slower"
        too_wide = self.ci.low < 1 / (1 + EQUIVALENCE_BAND) or self.ci.high > 1 + EQUIVALENCE_BAND
        return "inconclusive" if self.unstable or too_wide else "no meaningful difference"

    def inverse(self) -> Ratio:
        """The same comparison the other way round: baseline against faster."""
        return dataclasses.replace(self, label=" vs ".join(reversed(self.label.split(" vs "))), faster=self.baseline,
                                   baseline=self.faster, value=1 / self.value,
                                   ci=Interval(1 / self.ci.high, 1 / self.ci.low))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": self.verdict}


@dataclass
class RunSummary:
    cells: list[CellSummary]
    ratios: list[Ratio]
    # Speedups not computed because their cells ran on different machine classes: one line each.
    incomparable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [c.to_dict() for c in self.cells], "ratios": [r.to_dict() for r in self.ratios],
                "incomparable": self.incomparable}

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


def summarize_cell(spec: RunSpec, rounds: list[Measurement]) -> CellSummary:
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
        background_cores=max((m.background_cores for m in rounds if m.background_cores is not None), default=None),
        runtime=rounds[0].runtime,
        model_facts=next((m.model_facts for m in rounds if m.model_facts), {}),
        machine_classes=sorted({m.placement["machine_class"] for m in rounds if m.placement.get("machine_class")}),
        concurrent=max((m.placement.get("concurrent", 1) for m in rounds), default=1),
    )
    cell.samples = [m.step_seconds for m in rounds if m.status == "ok" and m.step_seconds]
    if cell.samples:
        cell.step = summarize([s for group in cell.samples for s in group])
        cell.process_medians = [float(np.median(group)) for group in cell.samples]
        cell.latency = all(m.steps_per_sample == 1 for m in rounds) and spec.task == "infer"
        cell.phases = summarize_phases(rounds)
        flops = step_flops(spec)
        cell.gflops = flops / cell.step.median / 1e9 if flops else None
        set_step_ci(cell, hull(hierarchical_median_ci(cell.samples), log_t_interval(cell.process_medians),
                               Interval(cell.step.median, cell.step.median)))
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


def speedup(group: str, label: str, faster: CellSummary, baseline: CellSummary) -> Ratio:
    """baseline time / candidate time, with the same across-process honesty as each cell's CI."""
    value = baseline.step.median / faster.step.median
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


def summarize_run(measurements: list[tuple[int, Measurement]], specs: list[RunSpec]) -> RunSummary:
    """Cells in plan order (unfinished ones left out), then their ratios group by group."""
    rounds: dict[str, list[Measurement]] = defaultdict(list)
    for _, measurement in measurements:
        rounds[measurement.spec.key].append(measurement)
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
