"""One framework's training run on the digits data, in a process of its own.

    python -m frameduel.accuracy.worker RESULT_PATH < job.json   ({"spec": ..., "max_epochs": N})

Optional job keys (a sweep trial's): "learning_rate" replaces the workload's; "stop_at" ends training
after the first epoch whose test accuracy reaches it (the epochs after it would not change the time to
target); "cpus" pins the process to those cores before the framework starts its thread pools;
"progress" streams each epoch to a file and stops on request (EpochProgress).

Trains for max_epochs epochs on the digits train split and evaluates on the test split after every
epoch; writes one JSON object to RESULT_PATH: per-epoch training seconds (the training steps only,
evaluation and batch preparation excluded; epoch 1 includes tracing/compilation), test accuracy and
mean training loss. The parent (run.py) decides when the target was reached.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from frameduel.datasets import DigitsSplit, epoch_batches, load_digits_split, shuffle_rng
from frameduel.frameworks import load_backend
from frameduel.runner.worker import error_line
from frameduel.spec import SIZES, RunSpec
from frameduel.workloads import Workload, get_workload
from frameduel.workloads.base import Batch


def digits_workload(workload: Workload) -> Workload:
    """The workload with its digits config as every size preset, so the backend builds the digits-sized model."""
    return dataclasses.replace(workload, presets=dict.fromkeys(SIZES, workload.digits.config))


def digits_batch(workload: Workload, images: np.ndarray, labels: np.ndarray) -> Batch:
    return Batch(inputs=workload.digits.to_inputs(images), targets=labels)


def train_epochs(backend: ModuleType, spec: RunSpec, data: DigitsSplit, max_epochs: int,
                 learning_rate: float | None = None, stop_at: float | None = None,
                 on_epoch: Callable[[dict[str, float]], bool] | None = None) -> dict[str, list[float]]:
    workload = digits_workload(get_workload(spec.workload))
    if learning_rate is not None:
        workload = dataclasses.replace(workload, optimizer=dataclasses.replace(workload.optimizer,
                                                                               learning_rate=learning_rate))
    return fit_digits(backend, workload, spec, backend.build_model(workload, spec), data, max_epochs, stop_at,
                      on_epoch)


def fit_digits(backend: ModuleType, workload: Workload, spec: RunSpec, model: Any, data: DigitsSplit,
               max_epochs: int, stop_at: float | None = None,
               on_epoch: Callable[[dict[str, float]], bool] | None = None) -> dict[str, list[float]]:
    """Train model in place on the digits train split (workload: a digits_workload); return its per-epoch
    curve. on_epoch sees each epoch's figures and returns False to stop there."""
    infer = backend.make_infer_fn(model, spec)
    train = backend.make_train_fn(model, spec, backend.make_optimizer(model, spec, workload.optimizer))
    test_inputs, _ = backend.to_tensors(workload, spec, digits_batch(workload, data.test_images, data.test_labels))
    rng = shuffle_rng(spec.seed)
    curve: dict[str, list[float]] = {"epoch_seconds": [], "accuracy": [], "loss": []}
    for _ in range(max_epochs):
        batches = [backend.to_tensors(workload, spec, digits_batch(workload, data.train_images[idx],
                                                                   data.train_labels[idx]))
                   for idx in epoch_batches(len(data.train_labels), spec.batch_size, rng)]
        backend.set_training(model, True)
        started = time.perf_counter()
        losses = [train(inputs, targets) for inputs, targets in batches]
        backend.to_numpy(losses[-1])  # reading the last loss waits for the device: the epoch has finished
        curve["epoch_seconds"].append(time.perf_counter() - started)
        curve["loss"].append(float(np.mean([backend.to_numpy(loss) for loss in losses])))
        backend.set_training(model, False)
        predictions = np.argmax(backend.to_numpy(infer(test_inputs)), axis=1)  # logits (N_test, 10) -> (N_test,)
        curve["accuracy"].append(float(np.mean(predictions == data.test_labels)))
        if on_epoch is not None and not on_epoch({key: values[-1] for key, values in curve.items()}):
            break
        if stop_at is not None and curve["accuracy"][-1] >= stop_at:
            break
    return curve


class EpochProgress:
    """A job's "progress" option: each epoch's figures appended to that file as a JSON line as it ends, for
    a parent that decides while the run goes on (Ray Tune's early stopping); the run stops after the
    epoch at which a file named like it plus ".stop" exists."""

    def __init__(self, path: Path) -> None:
        self.path, self.stop_path = path, path.with_name(path.name + ".stop")

    def __call__(self, epoch: dict[str, float]) -> bool:
        with open(self.path, "a") as progress:
            progress.write(json.dumps(epoch) + "\n")
        return not self.stop_path.exists()


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    spec = RunSpec.from_dict(job["spec"])
    started = time.perf_counter()
    result: dict[str, Any] = {"spec": spec.to_dict(), "status": "ok"}
    try:
        if job.get("cpus"):  # before the framework exists: its thread pools start on these cores only
            os.sched_setaffinity(0, job["cpus"])
        backend = load_backend(spec.framework)
        result["runtime"] = {**backend.configure(spec), "cpus": sorted(os.sched_getaffinity(0))}
        progress = EpochProgress(Path(job["progress"])) if job.get("progress") else None
        result.update(train_epochs(backend, spec, load_digits_split(), job["max_epochs"], job.get("learning_rate"),
                                   job.get("stop_at"), progress))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this run's failure
        result.update(status="failed", error=error_line(exc))
    result["wall_s"] = time.perf_counter() - started
    return result


def main() -> int:
    result = run_job(json.loads(sys.stdin.read()))
    Path(sys.argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
