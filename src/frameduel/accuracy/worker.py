"""One framework's training run on the digits data, in a process of its own.

    the "accuracy" job (jobs/kinds.py), payload {"spec": ..., "max_epochs": N}

Optional job keys (a sweep trial's): "learning_rate" replaces the workload's; "stop_at" ends training
after the first epoch whose test accuracy reaches it (the epochs after it would not change the time to
target); "cpus" pins the process to those cores before the framework starts its thread pools;
"progress" streams each epoch to a file and stops on request (EpochProgress).

Trains for max_epochs epochs on the digits train split and evaluates on the test split after every
epoch; its envelope's data: per-epoch training seconds (the training steps only,
evaluation and batch preparation excluded; epoch 1 includes tracing/compilation), test accuracy and
mean training loss. The parent (run.py) decides when the target was reached.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from frameduel.datasets import load_digits_split
from frameduel.frameworks import load_backend
from frameduel.jobs.child import error_line
from frameduel.jobs.envelope import Envelope
from frameduel.spec import RunSpec
from frameduel.training.digits import train_epochs


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


def accuracy_in_worker(job: dict[str, Any]) -> Envelope:
    """The "accuracy" job: one training run to max_epochs (or stop_at), its curve in the envelope's data."""
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
    status, error = result.pop("status"), result.pop("error", None)
    return Envelope(status, error, result)
