"""From what the user asked for to an ordered list of cells: presets, validation, interleaving."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frameduel import environment
from frameduel.checkpoints import model_config
from frameduel.errors import FrameduelError
from frameduel.frameworks import check_framework
from frameduel.jobs.cores import available_cores, core_slots
from frameduel.spec import (
    NATIVE_FRAMEWORKS,
    PRECISIONS,
    SIZES,
    TASKS,
    MeasureBudget,
    RunSpec,
    check_choice,
    check_modes,
    frameworks_with,
    modes_for,
)
from frameduel.workloads import Workload, get_workload


@dataclass(frozen=True)
class Preset:
    """A named measurement effort: which batches, how many rounds, how long each worker samples."""

    description: str
    train_batch: int
    infer_batches: tuple[int, ...]  # 1 = latency (p50/p90/p99); large = throughput
    repeats: int  # worker processes per cell, interleaved across the whole matrix
    budget: MeasureBudget
    generate_batch: int = 1  # sequences decoded together: batch 1 is the chat/latency case
    measure_peak: bool = False  # add GEMM cells (per framework and precision): the run's matmul peak
    # Without --budget, added processes may take this share of the base rounds' time (analysis/adaptive.py).
    extra_share: float = 0.5

    def batch_sizes(self, task: str) -> tuple[int, ...]:
        return {"train": (self.train_batch,), "finetune": (self.train_batch,),
                "infer": self.infer_batches}.get(task, (self.generate_batch,))


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        description="three interleaved rounds, short sampling: a first look in a few minutes",
        train_batch=32,
        infer_batches=(1,),
        # Three worker processes per cell: a cell moves up to 2x between processes (thread placement,
        # memory layout, kernel choice), which one process cannot show; see README "Uncertainty".
        repeats=3,
        budget=MeasureBudget(warmup_steps=3, warmup_seconds=0.1, min_seconds=0.3, max_seconds=0.8,
                             timeout_s=300),
    ),
    "full": Preset(
        description="three interleaved rounds, latency and throughput inference, longer sampling",
        train_batch=64,
        infer_batches=(1, 256),
        repeats=3,
        budget=MeasureBudget(warmup_steps=5, warmup_seconds=0.5, min_seconds=1.0, max_seconds=5.0,
                             timeout_s=900),
        measure_peak=True,
        extra_share=1.0,
    ),
}
MAX_PROCESSES = 12  # per cell, kept and left out: 3 base rounds + up to 9 added (t(11) = 2.2 against t(2) = 4.3)


@dataclass(frozen=True)
class AdaptiveSettings:
    """Processes added to the cells a verdict rests on, after the base rounds (analysis/adaptive.py)."""

    budget_s: float | None = None  # the whole measuring phase; None: base rounds' time + extra_share of it
    extra_share: float = 0.5
    max_processes: int = MAX_PROCESSES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MatrixRequest:
    """The user's selection; None means "the preset's / this machine's default"."""

    workloads: tuple[str, ...] = ("mlp", "cnn")
    frameworks: tuple[str, ...] = NATIVE_FRAMEWORKS
    modes: tuple[str, ...] | None = None  # --modes items: bare modes and FRAMEWORK=MODE pins (spec.mode_items)
    tasks: tuple[str, ...] | None = None  # None: every task each workload supports
    precisions: tuple[str, ...] = ("fp32",)
    preset: str = "quick"
    size: str | None = None
    device: str | None = None
    threads: int | None = None
    repeats: int | None = None
    timeout_s: float | None = None
    seed: int = 0
    peak: bool | None = None  # None: as the preset says
    launch: str = "fork"  # "fork": from a per-framework zygote (jobs/zygote.py); "spawn": a new interpreter
    checkpoint: str | None = None  # a Hugging Face model directory: its config and weights replace the preset's
    # The finetune task's LoRA adapters; targets None: each workload's defaults (q and v projections).
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] | None = None
    # Timing cells at once, each pinned to its own share of the cores (threads default to that share).
    # They contend for memory bandwidth and caches, so every such cell is flagged; 1 is the honest default.
    parallel: int = 1
    # Data-parallel train cells (runner/data_parallel.py): one per worker count and scaling. "strong" keeps
    # the preset's global batch at every count; "weak" keeps it per worker (global = batch x workers).
    workers: tuple[int, ...] = (1,)
    scaling: tuple[str, ...] = ("strong",)
    # The cells run on a Ray cluster (--executor ray): a group's workers spread over its nodes, so this
    # machine's cores do not bound them; the cluster's room is checked as each group starts.
    cluster: bool = False
    # The measuring phase's time budget in seconds (--budget); None: the preset's default rule. Ignored
    # when repeats is given: then every cell gets exactly that many processes.
    budget_s: float | None = None
    # Other processes' busy cores when the run is planned (doctor.diagnose): with threads left to the default,
    # a core another process holds is not given to the frameworks (see matched_threads).
    busy_cores: float = 0.0

    @property
    def threads_lowered(self) -> bool:
        """Other processes hold cores and the frameworks get fewer threads for it (matched_threads): threads
        left to the default, one cell at a time, on this machine."""
        return self.threads is None and self.parallel == 1 and not self.cluster and self.busy_cores >= TAKEN_CORE


# A core counts as taken by other processes from this much sustained use: a one-core busy loop reads ~1.0,
# a 50%-duty bursty one ~0.5 (kept: the medians and the re-runs of contended processes absorb its bursts).
TAKEN_CORE = 0.75


def matched_threads(threads: int, busy_cores: float) -> int:
    """Threads for the frameworks when other processes hold cores: one fewer per core they keep busy.

    An OpenMP pool (torch's) spin-waits at every barrier for a thread whose core another process holds;
    measured here with a one-core busy loop beside 2 threads, torch's mlp train step went from 2.5 ms to
    184-276 ms and its cnn train step from 31 ms to 976-1,416 ms, while 1 thread ran them at 3.1-3.9 and
    50-52 ms. On a quiet machine this changes nothing (README, "Conclusive answers")."""
    return max(1, threads - int(busy_cores + (1 - TAKEN_CORE)))


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'90' or '90s' -> 90.0, '5m' -> 300.0, '1.5h' -> 5400.0; anything else is one line naming the forms."""
    value = text.strip().lower()
    unit = DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise FrameduelError(f"--budget takes a duration such as 90s, 5m or 1h; got '{text}'") from None
    if not seconds > 0 or seconds == float("inf"):
        raise FrameduelError(f"--budget must be more than 0, got '{text}'; e.g. --budget 5m")
    return seconds


LAUNCHES = ("fork", "spawn")
SCALINGS = ("strong", "weak")


@dataclass(frozen=True)
class Plan:
    preset: str
    specs: tuple[RunSpec, ...]  # already interleaved
    budget: MeasureBudget
    repeats: int
    launch: str = "fork"  # how each cell's fresh process starts, see MatrixRequest
    parallel: int = 1  # timing cells at once on this machine, each on its own cores (see MatrixRequest)
    adaptive: AdaptiveSettings | None = None  # None: exactly `repeats` processes per cell

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "specs": [spec.to_dict() for spec in self.specs],
            "budget": self.budget.to_dict(),
            "repeats": self.repeats,
            "launch": self.launch,
            "parallel": self.parallel,
            "adaptive": self.adaptive.to_dict() if self.adaptive else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        adaptive = data.get("adaptive")  # absent in runs stored before processes were added adaptively
        return cls(
            preset=data["preset"],
            specs=tuple(RunSpec.from_dict(s) for s in data["specs"]),
            budget=MeasureBudget.from_dict(data["budget"]),
            repeats=data["repeats"],
            launch=data.get("launch", "spawn"),  # runs stored before the zygote spawned every worker
            parallel=data.get("parallel", 1),
            adaptive=AdaptiveSettings(**adaptive) if adaptive else None,
        )

    @property
    def workloads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(spec.workload for spec in self.specs))

    @property
    def frameworks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(spec.framework for spec in self.specs))

    def estimated_round_s(self) -> float:
        """A worker's likely wall time before any has finished: start-up, setup and compilation, warm-up,
        then sampling that usually stops between min_seconds and max_seconds."""
        startup = 1.5 if self.launch == "fork" else 8.0  # a spawned worker imports its framework (3-8 s)
        sampling = (self.budget.min_seconds + self.budget.max_seconds) / 2
        return startup + self.budget.warmup_seconds + sampling

    def schedule(self) -> list[tuple[int, RunSpec]]:
        """Round-major order: every cell once, then every cell again, so drift hits all cells alike."""
        return [(round_index, spec) for round_index in range(self.repeats) for spec in self.specs]


def interleave(specs: list[RunSpec]) -> list[RunSpec]:
    """Alternate frameworks inside each comparison group (A B A B ...) so slow drift cancels."""
    ordered: list[RunSpec] = []
    groups: dict[str, dict[str, list[RunSpec]]] = {}
    for spec in specs:
        groups.setdefault(spec.comparison_group, {}).setdefault(spec.framework, []).append(spec)
    for by_framework in groups.values():
        for row in itertools.zip_longest(*by_framework.values()):
            ordered.extend(spec for spec in row if spec is not None)
    return ordered


def tasks_per_workload(workloads: dict[str, Workload], requested: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """Each workload's tasks: all it supports, or the requested ones it supports."""
    if requested is None:
        return {name: workload.tasks for name, workload in workloads.items()}
    for task in requested:
        check_choice("task", task, TASKS)
        if not any(task in workload.tasks for workload in workloads.values()):
            raise FrameduelError(f"task '{task}' is not supported by {', '.join(workloads)}; "
                                 f"it needs a language-model workload such as gpt or llama")
    return {name: tuple(t for t in requested if t in workload.tasks) for name, workload in workloads.items()}


def build_plan(request: MatrixRequest) -> Plan:
    """Validate the request against the registries and this machine, and expand it into cells."""
    preset = PRESETS[check_choice("preset", request.preset, list(PRESETS))]
    workloads = {name: get_workload(name) for name in request.workloads}
    for fw in request.frameworks:
        check_framework(fw)
    tasks_of = tasks_per_workload(workloads, request.tasks)
    check_modes(request.frameworks, request.modes)
    device = request.device or environment.default_device()
    environment.check_device(device)
    for precision in request.precisions:
        check_choice("precision", precision, PRECISIONS)
        environment.check_precision(precision, device)
    size = check_choice("size", request.size or ("base" if device == "cuda" else "small"), SIZES)
    slots = core_slots(request.parallel)
    threads = min(len(slot) for slot in slots) if request.threads is None else request.threads
    if request.threads is None and request.parallel == 1 and not request.cluster:
        threads = matched_threads(threads, request.busy_cores)
    worker_counts = check_workers(request, threads)
    if request.threads is None and max(worker_counts) > 1:  # every cell alike: 1 worker x t vs N x t
        threads = len(core_slots(min(max(worker_counts), len(available_cores())))[0])
    if request.parallel > 1 and threads > min(len(slot) for slot in slots):
        raise FrameduelError(f"--threads {threads} does not fit --parallel {request.parallel}: each cell gets "
                             f"{min(len(slot) for slot in slots)} core(s); lower --threads or --parallel")
    checkpoint = str(Path(request.checkpoint).expanduser().resolve()) if request.checkpoint else None
    for workload in workloads.values():
        model_config(workload, checkpoint, size)  # a bad checkpoint, or one of another family: refused now
    budget = preset.budget
    if request.timeout_s is not None:
        budget = dataclasses.replace(budget, timeout_s=request.timeout_s)

    lora = {name: workload.lora_settings(request.lora_rank, request.lora_alpha, request.lora_targets)
            for name, workload in workloads.items() if "finetune" in tasks_of[name]}
    specs = []
    for workload, precision in itertools.product(request.workloads, request.precisions):
        for task in tasks_of[workload]:
            for (batch_size, workers), fw in itertools.product(batches_and_workers(preset, task, request),
                                                                request.frameworks):
                if workers > 1 and fw not in frameworks_with("data_parallel_module"):
                    continue  # data parallel is torch's DDP and TF's strategies; Keras' other backends train alone
                for mode in modes_for(fw, request.modes):
                    specs.append(RunSpec(workload=workload, framework=fw, mode=mode, task=task,
                                         precision=precision, batch_size=batch_size, device=device,
                                         threads=threads, size=size, seed=request.seed, checkpoint=checkpoint,
                                         lora=lora[workload] if task == "finetune" else None, workers=workers))
    check_choice("launch", request.launch, LAUNCHES)
    repeats = preset.repeats if request.repeats is None else request.repeats
    if repeats < 1:
        raise FrameduelError(f"repeats must be >= 1, got {repeats}")
    if request.budget_s is not None and not request.budget_s > 0:
        raise FrameduelError(f"--budget must be more than 0, got {request.budget_s:g} s; e.g. --budget 5m")
    if request.budget_s is not None and request.repeats is not None:
        raise FrameduelError("--repeats fixes the processes per cell and --budget adapts them; give one of the two")
    adaptive = None if request.repeats is not None else AdaptiveSettings(request.budget_s, preset.extra_share)
    wants_peak = preset.measure_peak if request.peak is None else request.peak
    if wants_peak and "gemm" not in request.workloads:
        specs += peak_specs(request.frameworks, request.precisions, device, threads, size, request.seed)
    return Plan(preset=request.preset, specs=tuple(interleave(specs)), budget=budget, repeats=repeats,
                launch=request.launch, parallel=request.parallel, adaptive=adaptive)


def check_workers(request: MatrixRequest, threads: int) -> tuple[int, ...]:
    """The worker counts asked for, once each, if every group fits the cores: workers x threads each."""
    counts = tuple(sorted(set(request.workers)))
    for scaling in request.scaling:
        check_choice("scaling", scaling, SCALINGS)
    if min(counts) < 1:
        raise FrameduelError(f"--workers must be >= 1, got {min(counts)}")
    if max(counts) > 1 and request.parallel > 1:
        raise FrameduelError("--workers runs a group of processes over the cores; leave out --parallel")
    cores = len(available_cores())
    if request.cluster:
        return counts
    if request.threads is not None and max(counts) * threads > cores:
        raise FrameduelError(f"--workers {max(counts)} x --threads {threads} needs {max(counts) * threads} cores, "
                             f"this machine has {cores}; lower --threads or --workers")
    if max(counts) > cores:
        raise FrameduelError(f"--workers {max(counts)} needs a core per worker, this machine has {cores}")
    return counts


def batches_and_workers(preset: Preset, task: str, request: MatrixRequest) -> list[tuple[int, int]]:
    """(global batch, workers) of each cell of a task: every worker count and scaling for train, one
    process for the rest. One worker is the same cell under both scalings."""
    if task != "train":
        return [(batch, 1) for batch in preset.batch_sizes(task)]
    pairs = []
    for batch in preset.batch_sizes(task):
        for workers, scaling in itertools.product(sorted(set(request.workers)), request.scaling):
            pair = (batch * workers if scaling == "weak" else batch, workers)
            if pair[0] % workers:
                raise FrameduelError(f"a global batch of {pair[0]} does not split over {workers} workers; "
                                     f"use --scaling weak or worker counts that divide {pair[0]}")
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def peak_specs(frameworks: tuple[str, ...], precisions: tuple[str, ...], device: str, threads: int, size: str,
               seed: int) -> list[RunSpec]:
    """One GEMM cell per framework and precision: the matmul rate every other cell is compared with."""
    return [RunSpec(workload="gemm", framework=fw, mode="eager", task="infer", precision=precision, batch_size=1,
                    device=device, threads=threads, size=size, seed=seed)
            for precision in precisions for fw in frameworks]
