"""`frameduel sweep`: a grid of hyperparameters x frameworks x workloads x seeds, each trial trained to a
target accuracy on load_digits, run N at a time on disjoint cores, stored as each finishes.

Framework-free: a trial is the accuracy worker (accuracy/worker.py) in a fresh process, given its
learning rate and batch size, told to stop once it reaches the target, and pinned to its own cores
(os.sched_setaffinity before the framework starts its thread pools, threads = those cores). Trials
run in parallel do not share a core, so they contend only for memory bandwidth and caches; their
time-to-target figures are comparable with each other, not with a quiet machine's.

Stored in the results database as kind "sweep" (the request, under the sweep id) and "sweep-trial"
(one per trial, key "<sweep id>/<trial key>"); --resume runs only the trials not stored yet.
"""

from __future__ import annotations

import itertools
import math
import queue
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from frameduel.accuracy.run import AccuracyRequest, TrainingRun, check_request, resolve_modes, spawn_training
from frameduel.datasets import TRAIN_IMAGES
from frameduel.errors import FrameduelError
from frameduel.jobs.cores import core_slots
from frameduel.spec import LOST, RunSpec, check_choice
from frameduel.store import Store, StoredResult, now_iso

# The hyperparameters a trial takes, with how to read a value and what makes one valid.
GRID_KEYS: dict[str, tuple[Callable[[str], float | int], Callable[[float], bool], str]] = {
    "lr": (float, lambda v: 0 < v < 10, "a learning rate in (0, 10)"),
    "batch_size": (int, lambda v: 1 <= v <= TRAIN_IMAGES, f"a batch size in 1..{TRAIN_IMAGES}"),
}


@dataclass(frozen=True)
class LogRange:
    """A search dimension: values drawn log-uniformly from [low, high] (`--grid lr=1e-4..1e-1`)."""

    low: float
    high: float


Values = tuple[float | int, ...] | LogRange


def parse_values(key: str, values: str, ranges: bool) -> Values:
    parse, valid, what = GRID_KEYS[key]
    low, dots, high = values.partition("..")
    if dots:
        if not ranges:
            raise FrameduelError(f"--grid {key}={values}: a range needs --search random; a grid lists values, "
                                 f"e.g. {key}=V1,V2")
        if parse is not float:
            raise FrameduelError(f"--grid {key}: a range is for learning rates; list {key} values, e.g. 32,64,128")
        try:
            bounds = LogRange(float(low), float(high))
        except ValueError:
            raise FrameduelError(f"--grid {key}: '{values}' is not a range LOW..HIGH of numbers") from None
        if not (valid(bounds.low) and valid(bounds.high) and bounds.low < bounds.high):
            raise FrameduelError(f"--grid {key}: {values} is not a range LOW < HIGH of {what}s")
        return bounds
    texts = [v.strip() for v in values.split(",") if v.strip()]
    if not texts:
        raise FrameduelError(f"--grid {key} has no values; write {key}=V1,V2")
    try:
        parsed = tuple(dict.fromkeys(parse(text) for text in texts))
    except ValueError:
        raise FrameduelError(f"--grid {key}: '{values}' is not a list of numbers ({what})") from None
    bad = [v for v in parsed if not valid(v)]
    if bad:
        raise FrameduelError(f"--grid {key}: {bad[0]} is not {what}")
    return parsed


def parse_grid(items: list[str], ranges: bool = False) -> dict[str, Values]:
    """['lr=1e-3,3e-3', 'batch_size=32,128'] -> {'lr': (0.001, 0.003), 'batch_size': (32, 128)}; with
    ranges (a search), 'lr=1e-4..1e-1' -> {'lr': LogRange(0.0001, 0.1)}."""
    if not items:
        raise FrameduelError("empty grid; give at least one --grid KEY=V1,V2 (keys: " + ", ".join(GRID_KEYS) + ")")
    grid: dict[str, Values] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep:
            raise FrameduelError(f"bad --grid '{item}'; write KEY=V1,V2, e.g. lr=1e-3,3e-3")
        if key not in GRID_KEYS:
            raise FrameduelError(f"unknown grid key '{key}'; a trial takes: {', '.join(GRID_KEYS)}")
        grid[key] = parse_values(key, values, ranges)
    return grid


def grid_to_json(grid: dict[str, Values]) -> dict[str, Any]:
    return {k: {"log_range": [v.low, v.high]} if isinstance(v, LogRange) else list(v) for k, v in grid.items()}


def grid_from_json(data: dict[str, Any]) -> dict[str, Values]:
    return {k: LogRange(*v["log_range"]) if isinstance(v, dict) else tuple(v) for k, v in data.items()}


@dataclass(frozen=True)
class Trial:
    workload: str
    framework: str
    mode: str
    seed: int
    config: tuple[tuple[str, float | int], ...]  # (key, value) in GRID_KEYS order

    @property
    def config_label(self) -> str:
        return " ".join(f"{key}={value:g}" for key, value in self.config)

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.framework}/{self.mode}/{self.config_label.replace(' ', ',')}/s{self.seed}"

    def value(self, key: str, default: float | int) -> float | int:
        return dict(self.config).get(key, default)


SEARCHES = ("random",)
EARLY_STOPS = ("asha",)


@dataclass(frozen=True)
class SweepRequest:
    accuracy: AccuracyRequest  # workloads, frameworks, modes, seeds, target, max epochs, base batch size
    grid: dict[str, Values]  # a search may hold LogRanges
    parallel: int | None = None  # None: fill the machine, one core per trial
    search: str | None = None  # None: every grid point; "random": Ray Tune draws `samples` points
    samples: int = 0  # a search's trials per (workload, framework, seed)
    early_stop: str | None = None  # "asha": Ray Tune's ASHA stops a search's worst trials early

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": asdict(self.accuracy), "grid": grid_to_json(self.grid), "parallel": self.parallel,
                "search": self.search, "samples": self.samples, "early_stop": self.early_stop}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepRequest:
        accuracy = data["accuracy"]
        accuracy = AccuracyRequest(**{**accuracy, "workloads": tuple(accuracy["workloads"]),
                                      "frameworks": tuple(accuracy["frameworks"])})
        return cls(accuracy, grid_from_json(data["grid"]), data["parallel"], data.get("search"),
                   data.get("samples", 0), data.get("early_stop"))


def check_sweep(request: SweepRequest) -> None:
    check_request(request.accuracy)
    core_slots(request.parallel)
    for key, values in request.grid.items():
        if key not in GRID_KEYS or not values or (isinstance(values, LogRange) and request.search is None):
            raise FrameduelError(f"bad grid entry {key}={values}")
    if request.search is not None:
        check_choice("search", request.search, SEARCHES)
        if request.samples < 1:
            raise FrameduelError(f"--samples must be >= 1 with --search, got {request.samples}")
    if request.early_stop is not None:
        check_choice("early stop", request.early_stop, EARLY_STOPS)
        if request.search is None:
            raise FrameduelError("--early-stop asha stops the worst trials of a search; add --search random")


def sweep_request(accuracy: AccuracyRequest, grid: list[str], parallel: int | None, search: str | None,
                  samples: int, early_stop: str | None) -> SweepRequest:
    """A new sweep from its options (--grid KEY=V1,V2 items; samples count only for a search); check_sweep
    checks it, as it does a stored one resumed."""
    return SweepRequest(accuracy, parse_grid(grid, ranges=search is not None), parallel, search,
                        samples if search else 0, early_stop)


def plan_trials(request: SweepRequest) -> list[Trial]:
    """Seed-major, then configuration, frameworks alternating: drift and contention hit all alike. A
    search's trials are drawn as it goes: none are planned."""
    if request.search is not None:
        return []
    a = request.accuracy
    modes = resolve_modes(a.frameworks, a.modes)
    keys = [key for key in GRID_KEYS if key in request.grid]
    configs = [tuple(zip(keys, values, strict=True)) for values in itertools.product(*(request.grid[k] for k in keys))]
    return [Trial(workload, fw, modes[fw], seed, config) for seed in range(a.seeds) for workload in a.workloads
            for config in configs for fw in a.frameworks]


def planned_trial_count(request: SweepRequest) -> int:
    a = request.accuracy
    if request.search is not None:
        return request.samples * a.seeds * len(a.workloads) * len(a.frameworks)
    return len(plan_trials(request))


def trial_spec(trial: Trial, request: SweepRequest, threads: int) -> RunSpec:
    a = request.accuracy
    return RunSpec(workload=trial.workload, framework=trial.framework, mode=trial.mode, task="train",
                   batch_size=int(trial.value("batch_size", a.batch_size)), device=a.device, threads=threads,
                   seed=trial.seed)


@dataclass
class TrialResult:
    trial: Trial
    run: TrainingRun
    cpus: list[int] = field(default_factory=list)
    started_s: float = 0.0  # since the sweep (this invocation) started
    finished_s: float = 0.0
    placement: dict[str, Any] = field(default_factory=dict)  # where it ran, on Ray (see Measurement.placement)

    def to_dict(self) -> dict[str, Any]:
        return {"trial": asdict(self.trial), "key": self.trial.key, "run": self.run.to_dict(), "cpus": self.cpus,
                "started_s": self.started_s, "finished_s": self.finished_s, "placement": self.placement}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        trial = data["trial"]
        trial = Trial(**{**trial, "config": tuple(tuple(pair) for pair in trial["config"])})
        run = {**data["run"], "spec": RunSpec.from_dict(data["run"]["spec"])}
        return cls(trial, TrainingRun(**run), data["cpus"], data["started_s"], data["finished_s"],
                   data.get("placement", {}))


def new_sweep_id() -> str:
    return f"sweep-{now_iso()[:19].replace(':', '').replace('-', '').replace('T', '-')}-{secrets.token_hex(2)}"


def start_sweep(store: Store, request: SweepRequest, environment: dict[str, Any]) -> str:
    check_sweep(request)
    sweep_id = new_sweep_id()
    store.save_result("sweep", sweep_id, request.to_dict(), environment)
    return sweep_id


def stored_sweep(store: Store, sweep_id: str) -> StoredResult | None:
    """The stored request of sweep_id (with its environment and creation time), or None."""
    return next((r for r in store.results("sweep") if r.key == sweep_id), None)


def load_sweep(store: Store, sweep_id: str) -> SweepRequest:
    stored = stored_sweep(store, sweep_id)
    if stored is None:
        known = ", ".join(r.key for r in store.results("sweep")[-5:]) or "none stored"
        raise FrameduelError(f"no sweep '{sweep_id}' in this database (recent: {known})")
    return SweepRequest.from_dict(stored.data)


def stored_trials(store: Store, sweep_id: str) -> list[TrialResult]:
    return [TrialResult.from_dict(r.data) for r in store.results("sweep-trial") if r.key.startswith(f"{sweep_id}/")]


class TrialExecutor(Protocol):
    """Runs trials and yields each one's result as it ends (in any order); never raises for a trial."""

    def run(self, trials: list[Trial], request: SweepRequest) -> Iterator[TrialResult]:
        ...


class LocalTrials:
    """On this machine: request.parallel trials at once, each pinned to its own cores."""

    def run(self, trials: list[Trial], request: SweepRequest) -> Iterator[TrialResult]:
        slots: queue.Queue[list[int]] = queue.Queue()
        for slot in core_slots(request.parallel):
            slots.put(slot)
        started = time.perf_counter()
        a = request.accuracy

        def run(trial: Trial) -> TrialResult:
            """In a pool thread: wait for free cores, train in a process pinned to them (never raises)."""
            cpus = slots.get()
            try:
                begun = time.perf_counter() - started
                training = spawn_training(trial_spec(trial, request, len(cpus)), a.max_epochs, a.timeout_s,
                                        **trial_options(trial, request), cpus=cpus)
                return TrialResult(trial, training, cpus, begun, time.perf_counter() - started)
            finally:
                slots.put(cpus)

        with ThreadPoolExecutor(max_workers=slots.qsize()) as pool:
            for future in as_completed([pool.submit(run, trial) for trial in trials]):
                yield future.result()


def trial_options(trial: Trial, request: SweepRequest) -> dict[str, Any]:
    """The accuracy worker's options for a trial, wherever it runs."""
    return {"learning_rate": trial.value("lr", None), "stop_at": request.accuracy.target}


class TrialSearch(Protocol):
    """Draws and runs a search's trials (Ray Tune: cluster/tune.py), handing each to emit as it ends."""

    def search(self, remaining: dict[tuple[str, str, int], int], request: SweepRequest,
               emit: Callable[[TrialResult], None]) -> None:
        ...


def remaining_samples(request: SweepRequest, stored: list[TrialResult]) -> dict[tuple[str, str, int], int]:
    """(workload, framework, seed) -> the search trials still to draw: what --resume finishes."""
    a = request.accuracy
    wanted = {(w, fw, seed): request.samples for w in a.workloads for fw in a.frameworks for seed in range(a.seeds)}
    for result in stored:
        key = (result.trial.workload, result.trial.framework, result.trial.seed)
        wanted[key] = max(0, wanted.get(key, 0) - 1)
    return {key: count for key, count in wanted.items() if count}


def run_sweep(store: Store, sweep_id: str, request: SweepRequest, environment: dict[str, Any],
              on_trial: Callable[[TrialResult], None] | None = None,
              executor: TrialExecutor | TrialSearch | None = None) -> list[TrialResult]:
    """Every trial not stored yet, on this machine (or with the executor given; a search needs a
    TrialSearch); each stored as it ends, in this thread: the database has one writer."""
    stored, lost = stored_trials(store, sweep_id), []

    def keep(result: TrialResult) -> None:
        if result.run.status == LOST:  # its machine died under it: not stored, so --resume runs it
            lost.append(result)
        else:
            store.save_result("sweep-trial", f"{sweep_id}/{result.trial.key}", result.to_dict(), environment)
        if on_trial:
            on_trial(result)

    if request.search is not None:
        if not hasattr(executor, "search"):
            raise FrameduelError("--search draws its trials with Ray Tune; add --executor ray")
        executor.search(remaining_samples(request, stored), request, keep)
    else:
        done = {result.trial.key for result in stored}
        for result in (executor or LocalTrials()).run([t for t in plan_trials(request) if t.key not in done], request):
            keep(result)
    if lost:
        shown = ", ".join(result.trial.key for result in lost[:4]) + (f" and {len(lost) - 4} more" if len(lost) > 4
                                                                     else "")
        raise FrameduelError(f"{len(lost)} trial(s) were lost with their machine ({shown}) and are not stored; the "
                             f"rest are: finish the sweep with frameduel sweep --resume {sweep_id}")
    return stored_trials(store, sweep_id)


# -- Summary: per workload and framework, each configuration over its seeds; the best one; sensitivity. --


@dataclass(frozen=True)
class ConfigSummary:
    workload: str
    framework: str
    config: str
    seeds: int
    reached: int
    seconds_to_target: float | None  # median over seeds, a seed that never reached it counting as infinite
    seconds_range: tuple[float, float] | None  # min and max over the seeds that reached it
    epochs_to_target: float | None
    best_accuracy: float | None  # median of each seed's best

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Trials whose curve is real: trained to the target or the epoch limit, or stopped early by the search.
FINISHED = ("ok", "stopped")


def median_finite(values: list[float]) -> float | None:
    value = float(np.median(values)) if values else math.inf
    return None if math.isinf(value) else value


def summarize_sweep(results: list[TrialResult], target: float) -> list[ConfigSummary]:
    groups: dict[tuple[str, str, str], list[TrialResult]] = {}
    for result in results:
        trial = result.trial
        groups.setdefault((trial.workload, trial.framework, trial.config_label), []).append(result)
    summaries = []
    for (workload, framework, config), members in groups.items():
        runs = [m.run for m in members]
        seconds = [run.seconds_to(target) for run in runs if run.status in FINISHED]
        reached = [s for s in seconds if s is not None]
        summaries.append(ConfigSummary(
            workload, framework, config, len(runs), len(reached),
            median_finite([s if s is not None else math.inf for s in seconds] or [math.inf]),
            (min(reached), max(reached)) if reached else None,
            median_finite([run.epochs_to(target) or math.inf for run in runs if run.status in FINISHED]),
            median_finite([max(run.accuracy) for run in runs if run.accuracy]),
        ))
    return summaries


def best_configs(summaries: list[ConfigSummary]) -> list[ConfigSummary]:
    """Per workload and framework, the configuration with the lowest median time to target."""
    best: dict[tuple[str, str], ConfigSummary] = {}
    for s in summaries:
        current = best.get((s.workload, s.framework))
        if current is None or (s.seconds_to_target or math.inf) < (current.seconds_to_target or math.inf):
            best[(s.workload, s.framework)] = s
    return list(best.values())


def sensitivity(summaries: list[ConfigSummary]) -> dict[tuple[str, str], tuple[int, int, float | None]]:
    """(workload, framework) -> (configurations that reached the target, configurations, slowest reached /
    fastest reached, None unless two did): how much the choice of hyperparameters matters to that framework."""
    out: dict[tuple[str, str], tuple[int, int, float | None]] = {}
    for key in dict.fromkeys((s.workload, s.framework) for s in summaries):
        own = [s for s in summaries if (s.workload, s.framework) == key]
        times = [s.seconds_to_target for s in own if s.seconds_to_target is not None]
        out[key] = (len(times), len(own), max(times) / min(times) if len(times) > 1 else None)
    return out
