"""One worker of a data-parallel group (runner/data_parallel.py starts them all).

    python -m frameduel.runner.data_parallel_worker JOB_PATH

Its rank comes from torchrun (RANK) or from the launcher (FRAMEDUEL_RANK, beside TF_CONFIG). Jobs:

    measure   the cell's train step, timed by runner/worker.py's measure_cell with the framework's
              data-parallel backend, then the gradient all-reduce on its own (series "allreduce");
    train     parity's training passes from given weights (parity/data_parallel.py), every loss and,
              from worker 0, the whole state afterwards, in rank<R>.npz.

Every worker writes rank<R>.pid first and rank<R>.json last: {"status", "error"?, "measurement"?}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.frameworks import load_backend
from frameduel.runner.data_parallel import RANK_ENV
from frameduel.runner.process import write_result
from frameduel.runner.worker import error_line, measure_cell
from frameduel.spec import MeasureBudget, RunSpec

ALLREDUCE_REPEATS = 20


def worker_rank() -> int:
    return int(os.environ.get("RANK", os.environ.get(RANK_ENV, "0")))


def measure_job(job: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    backend = load_backend(spec.framework, data_parallel=True)
    measurement = measure_cell(spec, MeasureBudget.from_dict(job["budget"]), backend=backend)
    if measurement.status == "ok":
        measurement.series["allreduce"] = backend.allreduce_seconds(spec, ALLREDUCE_REPEATS)
    # Leave the group before exiting: gloo's threads, still running at interpreter exit, abort the
    # process ("terminate called without an active exception") after its result is written.
    backend.close()
    return {"status": measurement.status, "error": measurement.error, "measurement": json.loads(measurement.to_json())}


def train_job(job: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    from frameduel.parity.data_parallel import train_arrays  # parity's passes, framework-free until called

    backend = load_backend(spec.framework, data_parallel=spec.workers > 1)  # one worker: the plain reference
    backend.configure(spec)
    arrays = train_arrays(backend, spec, job)
    np.savez(Path(job["out_dir"]) / f"rank{worker_rank()}.npz", **arrays)
    if spec.workers > 1:
        backend.close()  # as measure_job does
    return {"status": "ok"}


JOBS = {"measure": measure_job, "train": train_job}


def main(argv: list[str]) -> int:
    job_path = Path(argv[1])
    job = json.loads(job_path.read_text())
    rank, out_dir = worker_rank(), Path(job["out_dir"])
    (out_dir / f"rank{rank}.pid").write_text(str(os.getpid()))
    os.sched_setaffinity(0, job["rank_cpus"][rank])  # before the framework starts its thread pools
    spec = RunSpec.from_dict(job["spec"])
    try:
        result = JOBS[job["kind"]](job, spec)
    except Exception as exc:  # noqa: BLE001 - the launcher records it as the group's failure
        result = {"status": "failed", "error": error_line(exc)}
    write_result(out_dir / f"rank{rank}.json", json.dumps(result))
    # Exit without the interpreter's teardown: there, threads of torch's c10d store and gloo that are
    # still joinable abort the process now and then ("terminate called without an active exception",
    # SIGABRT) after the result is written, which would fail a finished group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
