"""Time to accuracy, framework-free: launch one worker per (workload, framework, seed), summarise.

Each run trains for max_epochs epochs in a fresh subprocess (the "accuracy" job, accuracy/worker.py) and reports every
epoch's training seconds and test accuracy. Here, a run's time to target is the sum of its epoch
seconds up to the first epoch whose test accuracy reaches the target; a framework's figure is the
median over seeds, where a seed that never reached the target counts as infinitely slow (so the
median says "not reached" unless most seeds got there).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frameduel import environment
from frameduel.datasets import TRAIN_IMAGES, check_sklearn
from frameduel.errors import FrameduelError
from frameduel.frameworks import check_framework
from frameduel.jobs.process import run_job
from frameduel.jobs.servers import ForkServers
from frameduel.jobs.spawn import Launcher, spawn_job
from frameduel.spec import (
    DEVICES,
    FRAMEWORK_INFO,
    MODES,
    NATIVE_FRAMEWORKS,
    RunSpec,
    check_choice,
    one_mode_each,
    split_list,
)
from frameduel.training.digits import DIGITS_BATCH
from frameduel.workloads import WORKLOADS, get_workload

# Each framework trains in its idiomatic default mode: what a user writing a training loop gets (Keras'
# compile() on JAX jits the step).
# Each framework trains in its registry mode (spec.FrameworkInfo.training_mode) unless --modes says otherwise.
DEFAULT_MODES: dict[str, str] = {name: info.training_mode for name, info in FRAMEWORK_INFO.items()}


@dataclass(frozen=True)
class AccuracyRequest:
    workloads: tuple[str, ...] = ("mlp", "cnn")
    frameworks: tuple[str, ...] = NATIVE_FRAMEWORKS
    modes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODES))  # framework -> mode
    seeds: int = 3
    target: float = 0.95
    max_epochs: int = 40
    batch_size: int = DIGITS_BATCH
    device: str = "cpu"
    threads: int = 1
    timeout_s: float = 900.0  # per worker


@dataclass
class TrainingRun:
    """One (workload, framework, seed): its per-epoch curve, as the worker reported it."""

    spec: RunSpec
    status: str  # "ok", "failed" or "timeout"
    error: str | None = None
    epoch_seconds: list[float] = field(default_factory=list)  # training steps only; epoch 1 includes compilation
    accuracy: list[float] = field(default_factory=list)  # test accuracy after each epoch
    loss: list[float] = field(default_factory=list)  # mean training loss of each epoch
    wall_s: float | None = None
    runtime: dict[str, Any] = field(default_factory=dict)

    def epochs_to(self, target: float) -> int | None:
        """1-based epoch at whose end test accuracy first reached target; None if it never did."""
        return next((i + 1 for i, acc in enumerate(self.accuracy) if acc >= target), None)

    def seconds_to(self, target: float) -> float | None:
        epochs = self.epochs_to(target)
        return None if epochs is None else float(sum(self.epoch_seconds[:epochs]))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spec": self.spec.to_dict()}


@dataclass(frozen=True)
class AccuracySummary:
    """Medians over one framework's seeds for one workload. None: not reached / no successful run."""

    workload: str
    framework: str
    mode: str
    seeds: int
    ok_runs: int
    reached: int  # runs that reached the target
    epochs_to_target: float | None
    seconds_to_target: float | None
    first_epoch_s: float | None  # includes tracing / compilation
    steady_epoch_s: float | None  # median epoch after the first
    final_accuracy: float | None  # after the last epoch
    best_accuracy: float | None
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_modes(frameworks: tuple[str, ...], overrides: dict[str, str] | None) -> dict[str, str]:
    modes = {fw: (overrides or {}).get(fw, DEFAULT_MODES[fw]) for fw in frameworks}
    for fw, mode in modes.items():
        if mode not in MODES[fw]:
            raise FrameduelError(f"mode '{mode}' is not valid for {fw}; choose from: {', '.join(MODES[fw])}")
    return modes


def digits_workloads() -> list[str]:
    return [name for name, workload in WORKLOADS.items() if workload.digits is not None]


def check_request(request: AccuracyRequest) -> None:
    """Every user mistake becomes one FrameduelError before any worker starts."""
    for name in request.workloads:
        if get_workload(name).digits is None:
            raise FrameduelError(f"workload '{name}' cannot train on the digits data set; "
                                 f"choose from: {', '.join(digits_workloads())}")
    for fw in request.frameworks:
        check_framework(fw)
    resolve_modes(request.frameworks, request.modes)
    if request.seeds < 1:
        raise FrameduelError(f"--seeds must be >= 1, got {request.seeds}")
    if not 0 < request.target <= 1:
        raise FrameduelError(f"--target is a test accuracy in (0, 1], got {request.target}")
    if request.max_epochs < 1:
        raise FrameduelError(f"--max-epochs must be >= 1, got {request.max_epochs}")
    if not 1 <= request.batch_size <= TRAIN_IMAGES:
        raise FrameduelError(f"--batch-size must be between 1 and {TRAIN_IMAGES} (the train split's size), "
                             f"got {request.batch_size}")
    check_sklearn()


def accuracy_request(workloads: str, frameworks: str, modes: str | None, seeds: int, target: float,
                     max_epochs: int, batch_size: int = DIGITS_BATCH, device: str | None = "cpu",
                     threads: int | None = 1) -> AccuracyRequest:
    """What `accuracy` (and each `sweep` trial) trains, from its options: device None is this machine's
    default, threads None all its cores; --modes gives each framework one mode (spec.one_mode_each)."""
    device = check_choice("device", device or environment.default_device(), DEVICES)
    environment.check_device(device)
    if threads is not None and threads < 1:
        raise FrameduelError(f"--threads must be >= 1, got {threads}")
    names, chosen = split_list(workloads) or (), split_list(frameworks) or ()
    return AccuracyRequest(workloads=names, frameworks=chosen,
                           modes=one_mode_each(chosen, split_list(modes), DEFAULT_MODES), seeds=seeds, target=target,
                           max_epochs=max_epochs, batch_size=batch_size, device=device,
                           threads=threads or environment.default_threads())


def run_specs(request: AccuracyRequest) -> list[RunSpec]:
    """Seed-major, frameworks alternating (A B A B), so machine drift hits both frameworks alike."""
    modes = resolve_modes(request.frameworks, request.modes)
    return [RunSpec(workload=workload, framework=fw, mode=modes[fw], task="train", batch_size=request.batch_size,
                    device=request.device, threads=request.threads, seed=seed)
            for workload in request.workloads for seed in range(request.seeds) for fw in request.frameworks]


def spawn_training(spec: RunSpec, max_epochs: int, timeout_s: float, launcher: Launcher = run_job,
                   **options: Any) -> TrainingRun:
    """One training run in a fresh process; options: the worker's learning_rate, stop_at, cpus, progress."""
    payload = {"spec": spec.to_dict(), "max_epochs": max_epochs, **options}
    with tempfile.TemporaryDirectory(prefix="frameduel-accuracy-") as tmp:
        envelope = spawn_job("accuracy", payload, timeout_s, Path(tmp), "worker", launcher)
    return TrainingRun(**{**envelope.data, "spec": spec, "status": envelope.status, "error": envelope.error})


RunExecutor = Callable[[list[RunSpec], AccuracyRequest], Iterator[TrainingRun]]


def local_runs(specs: list[RunSpec], request: AccuracyRequest) -> Iterator[TrainingRun]:
    """One at a time on this machine: each run is a timing with every thread it asked for, forked from its
    framework's zygote, so the seeds after the first pay no framework import."""
    with ForkServers() as servers:
        for spec in specs:
            yield spawn_training(spec, request.max_epochs, request.timeout_s, servers.launcher(spec.framework))


def run_accuracy(
    request: AccuracyRequest, on_run: Callable[[TrainingRun], None] | None = None,
    executor: RunExecutor = local_runs,
) -> tuple[list[TrainingRun], list[AccuracySummary]]:
    """Train every (workload, seed, framework) in its own worker; on_run sees each finish."""
    check_request(request)
    specs = run_specs(request)
    runs = []
    for run in executor(specs, request):
        runs.append(run)
        if on_run:
            on_run(run)
    order = {spec.key: index for index, spec in enumerate(specs)}  # a cluster returns them as they end
    runs.sort(key=lambda run: order[run.spec.key])
    return runs, summarize(runs, request.target)


def median_or_none(values: list[float]) -> float | None:
    if not values:
        return None
    value = float(np.median(values))
    return None if math.isinf(value) else value


def summarize_group(runs: list[TrainingRun], target: float) -> AccuracySummary:
    ok = [run for run in runs if run.status == "ok" and run.accuracy]
    failed = [run for run in runs if run.status != "ok" or not run.accuracy]
    spec = runs[0].spec
    return AccuracySummary(
        workload=spec.workload, framework=spec.framework, mode=spec.mode, seeds=len(runs), ok_runs=len(ok),
        reached=sum(run.epochs_to(target) is not None for run in ok),
        # Unreached runs count as infinite, so the median is "not reached" unless most runs got there.
        epochs_to_target=median_or_none([run.epochs_to(target) or math.inf for run in ok]),
        seconds_to_target=median_or_none([run.seconds_to(target) or math.inf for run in ok]),
        first_epoch_s=median_or_none([run.epoch_seconds[0] for run in ok]),
        steady_epoch_s=median_or_none([float(np.median(run.epoch_seconds[1:])) for run in ok
                                       if len(run.epoch_seconds) > 1]),
        final_accuracy=median_or_none([run.accuracy[-1] for run in ok]),
        best_accuracy=median_or_none([max(run.accuracy) for run in ok]),
        errors=tuple(f"seed {run.spec.seed}: {run.status}: {run.error}" for run in failed),
    )


def summarize(runs: list[TrainingRun], target: float) -> list[AccuracySummary]:
    """One summary per (workload, framework), in the order the runs were made."""
    groups: dict[tuple[str, str], list[TrainingRun]] = {}
    for run in runs:
        groups.setdefault((run.spec.workload, run.spec.framework), []).append(run)
    return [summarize_group(group, target) for group in groups.values()]
