"""A fork server per framework: import the framework once, then fork one fresh process per job.

    python -m frameduel.jobs.zygote FRAMEWORK        (JSON lines: requests on stdin, replies on stdout)

A cold `import tensorflow, keras` costs ~8 s here and `import torch` ~3 s; a run measuring every cell in
3 processes would spend most of its time importing. The zygote pays the import once. It never runs
an op, so no framework runtime exists in it yet (no thread pool, allocator, device context or
compiled code); each job's child is forked from that state and builds its own, then exits. One fresh
process per measured cell stays true: children share nothing but the imported, read-only modules.

Forking a process that has threads (TensorFlow's import leaves some) is safe only while none holds a
lock at fork time; the zygote forks from an idle state, between imports and the first op, and the
tests fork it many times in every mode.

Protocol, one JSON object per line. Request: {"module", "args", "stdin", "stderr"}. Replies: {"ready": true}
once the imports are done; {"pid": N} as each child starts; {"pid": N, "returncode": R} when it ends.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import sys
import traceback
from typing import Any, BinaryIO

from frameduel.jobs.launch import PARENT_PID_ENV, die_with_parent
from frameduel.spec import FRAMEWORK_INFO, FRAMEWORKS, check_choice

# What each zygote imports before it forks: the framework's backend (first: a Keras backend module sets
# KERAS_BACKEND before Keras is imported) and what it names in ZYGOTE_PRELOAD, its model files and the
# worker itself.
# Named as strings: the jobs layer imports no track. The entry point, the measuring worker and parity's
# (compare proves parity before it measures); other kinds import their modules in the child.
COMMON_PRELOAD = ("frameduel.jobs.entry", "frameduel.runner.worker", "frameduel.runner.timing",
                  "frameduel.parity.worker")


def preload(framework: str) -> None:
    from frameduel.frameworks import model_module_name
    from frameduel.workloads import WORKLOADS

    backend = importlib.import_module(FRAMEWORK_INFO[framework].backend_module)
    for module in (*getattr(backend, "ZYGOTE_PRELOAD", ()), *COMMON_PRELOAD):
        importlib.import_module(module)
    for workload in WORKLOADS.values():
        if (module := model_module_name(workload, framework)) is not None:
            importlib.import_module(module)


def reply(channel: BinaryIO, message: dict[str, Any]) -> None:
    channel.write((json.dumps(message) + "\n").encode())
    channel.flush()


def run_in_child(request: dict[str, Any], protocol_fds: tuple[int, int], zygote_pid: int) -> None:
    """In the forked child: become a process-group leader, take the job's stdin and stderr, run the
    module's main() and exit with its code. Never returns."""
    code = 1
    try:
        os.setsid()  # the parent kills the job's whole group on a timeout, compile workers included
        die_with_parent(zygote_pid)  # a zygote killed with its parent takes its running job along
        for fd in protocol_fds:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDWR)
        stderr = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(stderr, 2)
        sys.stdin = io.StringIO(request["stdin"])
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.argv = [request["module"], *request["args"]]
        code = importlib.import_module(request["module"]).main(sys.argv) or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the job's stderr, like an uncaught error
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def end_group(pid: int) -> None:
    """Kill what the job left behind in its process group (torch.compile's compile workers: os._exit
    skips the atexit hook that would stop them), so nothing of it runs during the next cell."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def serve(framework: str) -> int:
    parent = os.environ.pop(PARENT_PID_ENV, None)
    die_with_parent(int(parent) if parent else None)
    zygote = os.getpid()
    # The protocol channel gets fds of its own: children's stdout and stderr must never reach it.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDWR), 0)
    os.dup2(2, 1)
    preload(framework)
    reply(replies, {"ready": True})
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_in_child(request, (requests.fileno(), replies.fileno()), zygote)
        reply(replies, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        end_group(pid)
        reply(replies, {"pid": pid, "returncode": os.waitstatus_to_exitcode(status)})
    return 0


def main(argv: list[str]) -> int:
    return serve(check_choice("framework", argv[1], FRAMEWORKS))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
