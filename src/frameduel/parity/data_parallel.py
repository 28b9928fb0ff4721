"""Data-parallel parity: N workers over a global batch train the same model as one process over it.

Four training runs from the same initial weights (torch's initialisation), each the parity worker's
own SGD and Adam passes (parity/worker.Side.train_pass) over the same global batches, in float64:

    torch, one process            tf, one process
    torch, N DDP workers          tf, N MultiWorkerMirroredStrategy workers

and three judgements, each on every loss of the curve and the whole state afterwards (weights,
buffers, optimizer slots), under parity's float64 tolerances: torch N vs torch 1, tf N vs tf 1, and
torch N vs tf N. A group's loss at a step is the mean of its workers' losses (equal shards: the global
batch's mean loss); its state is worker 0's, and every other worker must hold exactly the same.

BatchNorm normalises with each worker's shard (neither framework synchronises it here), so for a
workload with BatchNorm the one-process comparisons fail by design; the torch N vs tf N one holds.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from frameduel.frameworks import load_backend
from frameduel.jobs.cores import core_slots
from frameduel.jobs.envelope import Envelope
from frameduel.jobs.group import RANK_MODULE, read_result, run_group
from frameduel.jobs.process import run_job
from frameduel.jobs.rank import worker_rank
from frameduel.parity.judge import TOLERANCES, Judgement, judge_loss, judge_state
from frameduel.parity.worker import PARITY_OPTIMIZERS, Side, optimizer_config, parity_batches
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from frameduel.workloads.weight_files import load_weights, save_weights

PRECISION = "fp64"
DATA_PARALLEL_PARITY = "parity-data-parallel"  # the store's result kind


def train_rank(job: dict[str, Any], spec: RunSpec) -> Envelope:
    """The "train" part of a group's worker (jobs/rank.py), or of the one-process reference: the training
    passes, saved as rank<R>.npz beside the Envelope."""
    backend = load_backend(spec.framework, data_parallel=spec.workers > 1)  # one worker: the plain reference
    backend.configure(spec)
    arrays = train_arrays(backend, spec, job)
    if spec.workers > 1:
        backend.close()  # leave the group before exiting, as the measure part does
    name = f"rank{worker_rank()}.npz"
    np.savez(Path(job["out_dir"]) / name, **arrays)
    return Envelope("ok", files=[name])


def train_arrays(backend: ModuleType, spec: RunSpec, job: dict[str, Any]) -> dict[str, np.ndarray]:
    """In a worker (or the one-process reference): every optimizer's pass from the job's weights, or from
    this framework's own initialisation, saved as init.npz for the other runs."""
    workload = get_workload(spec.workload)
    if job.get("weights"):
        initial = load_weights(Path(job["weights"]))
    else:
        initial = Side(backend, workload, spec).weights()
        save_weights(Path(job["out_dir"]) / "init.npz", initial)
    batches = parity_batches(workload, spec, job["steps"]).training
    arrays: dict[str, np.ndarray] = {}
    for name in PARITY_OPTIMIZERS:
        side = Side(backend, workload, spec)
        arrays.update(side.train_pass(name, initial, optimizer_config(workload, name), batches, None, capture=False))
    return arrays


@dataclass
class DataParallelParity:
    workload: str
    size: str
    workers: int
    steps: int
    batch_size: int
    judgements: dict[str, Judgement] = field(default_factory=dict)  # "torch 2 vs torch 1", ...
    replica_spread: dict[str, float] = field(default_factory=dict)  # max |worker r - worker 0| of any state
    failures: dict[str, str] = field(default_factory=dict)  # run -> why it did not finish
    # BatchNorm statistics in the state: each worker normalises its own shard, so N workers train another
    # model than one process by design, and only "torch N vs tf N" is held to the tolerance.
    local_statistics: bool = False

    def binding(self, name: str) -> bool:
        """Whether a comparison must pass: all of them, or only the cross-framework one under BatchNorm."""
        return not self.local_statistics or name.endswith(f"torch {self.workers}")

    @property
    def passed(self) -> bool:
        return not self.failures and all(j.passed for n, j in self.judgements.items() if self.binding(n)) and \
            all(spread == 0.0 for spread in self.replica_spread.values())

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "size": self.size, "workers": self.workers, "steps": self.steps,
                "batch_size": self.batch_size, "passed": self.passed, "failures": self.failures,
                "local_statistics": self.local_statistics,
                "replica_spread": self.replica_spread,
                "judgements": {name: j.to_dict() for name, j in self.judgements.items()}}


def check_data_parallel(workload: str, workers: int = 2, steps: int = 10, batch_size: int = 8, size: str = "tiny",
                        seed: int = 0, timeout_s: float = 300.0) -> DataParallelParity:
    report = DataParallelParity(workload, size, workers, steps, batch_size)
    spec = RunSpec(workload=workload, framework="torch", mode="eager", task="train", precision=PRECISION,
                   batch_size=batch_size, size=size, seed=seed, threads=1)
    with tempfile.TemporaryDirectory(prefix="frameduel-dp-parity-") as tmp:
        root = Path(tmp)
        runs: dict[str, dict[str, np.ndarray]] = {}
        weights = None
        for framework in ("torch", "tf"):
            for count in (1, workers):
                label = f"{framework} {count}"
                run_spec = dataclasses.replace(spec, framework=framework, workers=count)
                job = {"kind": "train", "steps": steps, "weights": weights}
                arrays, failure = train_run(run_spec, job, root / label.replace(" ", "-"), timeout_s)
                if failure is not None:
                    report.failures[label] = failure
                    continue
                runs[label], spread = arrays
                report.local_statistics = report.local_statistics or any(is_local_statistic(k) for k in runs[label])
                if count > 1:
                    report.replica_spread[label] = spread
                if weights is None:
                    weights = str(root / "torch-1" / "init.npz")
        pairs = [(f"torch {workers}", "torch 1"), (f"tf {workers}", "tf 1"), (f"tf {workers}", f"torch {workers}")]
        for other, reference in pairs:
            if other in runs and reference in runs:
                report.judgements[f"{other} vs {reference}"] = judge_training(runs[reference], runs[other])
    return report


def train_run(spec: RunSpec, job: dict[str, Any], workdir: Path,
              timeout_s: float) -> tuple[tuple[dict[str, np.ndarray], float] | None, str | None]:
    """((arrays, largest difference between workers' states), None), or (None, why it failed)."""
    workdir.mkdir(parents=True)
    if spec.workers > 1:
        outcome = run_group(spec, job, workdir, timeout_s)
        if outcome.failure is not None:
            return None, outcome.failure
    else:
        job = {**job, "spec": spec.to_dict(), "out_dir": str(workdir), "rank_cpus": core_slots(1)}
        (workdir / "job.json").write_text(json.dumps(job))
        ended = run_job(RANK_MODULE, [str(workdir / "job.json")], "", timeout_s, workdir)
        result = read_result(workdir, 0)
        if result is None or not result.ok:
            return None, (result.error if result else None) or ended.death_cause("the one-process run")
    ranks = [dict(np.load(workdir / f"rank{r}.npz", allow_pickle=False)) for r in range(spec.workers)]
    return (group_arrays(ranks), replica_spread(ranks)), None


def group_arrays(ranks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Worker 0's state, with every loss the mean of the workers' (each the mean over an equal shard)."""
    arrays = dict(ranks[0])
    for key in arrays:
        if key.endswith("/loss"):
            arrays[key] = np.mean([rank[key] for rank in ranks], axis=0)
    return arrays


def is_local_statistic(key: str) -> bool:
    """A BatchNorm running mean or variance: each worker keeps its own shard's."""
    return "/weights/" in key and key.rsplit(".", 1)[-1] in ("running_mean", "running_var")


def replica_spread(ranks: list[dict[str, np.ndarray]]) -> float:
    """Largest |worker r - worker 0| over every weight and slot but BatchNorm's statistics: data parallel
    keeps the replicas of what trains identical."""
    spread = 0.0
    for rank in ranks[1:]:
        for key, value in ranks[0].items():
            if ("/weights/" in key or "/slots/" in key) and not is_local_statistic(key):
                spread = max(spread, float(np.max(np.abs(value - rank[key]))) if value.size else 0.0)
    return spread


def judge_training(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> Judgement:
    result = Judgement(PRECISION, TOLERANCES[PRECISION])
    for name in PARITY_OPTIMIZERS:
        judge_state(result, reference, other, f"{name}-step1", [])
        judge_state(result, reference, other, name, [])
        judge_loss(result, reference, other, name)
    return result
