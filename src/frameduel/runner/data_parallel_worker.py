"""One worker of a data-parallel group (runner/data_parallel.py starts them all).

    python -m frameduel.runner.data_parallel_worker JOB_PATH

Its rank comes from torchrun (RANK) or from the launcher (FRAMEDUEL_RANK, beside TF_CONFIG). Jobs:

    measure   the cell's train step, timed by runner/worker.py's measure_cell with the framework's
              data-parallel backend, then the gradient all-reduce on its own (series "allreduce");
    train     parity's training passes from given weights (parity/data_parallel.py): every loss and
              the whole state afterwards ("arrays").

Every worker writes rank<R>.pid first and rank<R>.json last: {"status", "error"?, "measurement"?}, with
a train job's arrays beside it in rank<R>.npz. On a Ray cluster (cluster/train_group.py) Ray Train
starts the workers instead, and the same job functions run inside its worker actors.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.frameworks import load_backend
from frameduel.runner.data_parallel import RANK_ENV
from frameduel.runner.process import write_result
from frameduel.runner.worker import error_line, measure_cell
from frameduel.spec import MeasureBudget, RunSpec

ALLREDUCE_REPEATS = 20
PEER_WAIT_S = 60.0


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
    if spec.workers > 1:
        backend.close()  # as measure_job does
    return {"status": "ok", "arrays": arrays}


JOBS = {"measure": measure_job, "train": train_job}


def run_worker_job(job: dict[str, Any]) -> dict[str, Any]:
    """This worker's part of the job, as its result; never raises (a failure is the group's to record)."""
    try:
        return JOBS[job["kind"]](job, RunSpec.from_dict(job["spec"]))
    except Exception as exc:  # noqa: BLE001 - the launcher records it as the group's failure
        return {"status": "failed", "error": error_line(exc)}


def wait_for_peers(out_dir: Path, workers: int) -> None:
    """Stay until every worker has written its result. A worker whose last collective has ended may
    still be asked for its part of it: TF's peers pull buffers from its collective server (RecvBuf),
    and one that left fails theirs ("Socket closed"). A peer that never finishes is the launcher's to
    kill; the bound only keeps an orphan from waiting for ever."""
    deadline = time.monotonic() + PEER_WAIT_S
    while time.monotonic() < deadline and not all((out_dir / f"rank{r}.json").exists() for r in range(workers)):
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    job_path = Path(argv[1])
    job = json.loads(job_path.read_text())
    rank, out_dir = worker_rank(), Path(job["out_dir"])
    (out_dir / f"rank{rank}.pid").write_text(str(os.getpid()))
    os.sched_setaffinity(0, job["rank_cpus"][rank])  # before the framework starts its thread pools
    result = run_worker_job(job)
    arrays = result.pop("arrays", None)
    if arrays is not None:
        np.savez(out_dir / f"rank{rank}.npz", **arrays)
    write_result(out_dir / f"rank{rank}.json", json.dumps(result))
    wait_for_peers(out_dir, len(job["rank_cpus"]))
    # Exit without the interpreter's teardown: there, threads of torch's c10d store and gloo that are
    # still joinable abort the process now and then ("terminate called without an active exception",
    # SIGABRT) after the result is written, which would fail a finished group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
