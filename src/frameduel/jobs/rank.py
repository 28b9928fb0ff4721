"""One worker of a data-parallel group (group.py starts them all): the group job's child side.

    python -m frameduel.jobs.rank JOB_PATH

Its rank comes from torchrun (RANK) or from the launcher (FRAMEDUEL_RANK, beside TF_CONFIG). The job's
"kind" names its part in kinds.GROUP_PARTS: "measure" (runner: the cell's train step and the all-reduce
alone) or "train" (parity: training passes from given weights). Every worker writes rank<R>.pid first
and its Envelope to rank<R>.json last. On a Ray cluster (cluster/train_group.py) Ray Train starts the
workers instead, and the same parts run inside its worker actors (run_part).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from frameduel.jobs.child import error_line
from frameduel.jobs.envelope import Envelope, write_envelope
from frameduel.jobs.group import RANK_ENV
from frameduel.jobs.kinds import group_part
from frameduel.spec import RunSpec

PEER_WAIT_S = 60.0


def worker_rank() -> int:
    return int(os.environ.get("RANK", os.environ.get(RANK_ENV, "0")))


def run_part(job: dict[str, Any]) -> Envelope:
    """This worker's part of the job; never raises (a failure is the group's to record)."""
    try:
        return group_part(job["kind"])(job, RunSpec.from_dict(job["spec"]))
    except Exception as exc:  # noqa: BLE001 - the launcher records it as the group's failure
        return Envelope("failed", error_line(exc))


def wait_for_peers(out_dir: Path, workers: int) -> None:
    """Stay until every worker has written its result. A worker whose last collective has ended may
    still be asked for its part of it: TF's peers pull buffers from its collective server (RecvBuf),
    and one that left fails theirs ("Socket closed"). A peer that never finishes is the launcher's to
    kill; the bound only keeps an orphan from waiting for ever."""
    deadline = time.monotonic() + PEER_WAIT_S
    while time.monotonic() < deadline and not all((out_dir / f"rank{r}.json").exists() for r in range(workers)):
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text())
    rank, out_dir = worker_rank(), Path(job["out_dir"])
    (out_dir / f"rank{rank}.pid").write_text(str(os.getpid()))
    os.sched_setaffinity(0, job["rank_cpus"][rank])  # before the framework starts its thread pools
    write_envelope(out_dir / f"rank{rank}.json", run_part(job))
    wait_for_peers(out_dir, len(job["rank_cpus"]))
    # Exit without the interpreter's teardown: there, threads of torch's c10d store and gloo that are
    # still joinable abort the process now and then ("terminate called without an active exception",
    # SIGABRT) after the result is written, which would fail a finished group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
