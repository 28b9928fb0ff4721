"""The one entry point of every job, spawned or forked from a zygote alike.

    python -m frameduel.jobs.entry KIND RESULT_PATH   < payload.json

It runs the kind's function on the payload and writes its Envelope to RESULT_PATH. An exception the
function did not turn into an envelope of its own is this job's failure ("oom" for a MemoryError); a
death (signal, os._exit) leaves no file, and the parent reads the cause from the process (spawn.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from frameduel.jobs.child import error_line
from frameduel.jobs.envelope import Envelope, write_envelope
from frameduel.jobs.kinds import job_function


def run_kind(kind: str, payload: dict) -> Envelope:
    try:
        return job_function(kind)(payload)
    except MemoryError as exc:
        return Envelope("oom", error_line(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is this job's result
        return Envelope("failed", error_line(exc))


def main(argv: list[str]) -> int:
    kind, result_path = argv[1], Path(argv[2])
    write_envelope(result_path, run_kind(kind, json.loads(sys.stdin.read() or "{}")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
