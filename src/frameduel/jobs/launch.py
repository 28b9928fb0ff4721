"""Start a job module so that it dies with the process that started it.

    python -m frameduel.jobs.launch MODULE [ARGS...]     (run_job starts every job this way)

A job runs in a session of its own (so a timeout can kill its whole group), which also means nothing
kills it when its parent dies without cleaning up: a driver killed with SIGKILL, or a Ray worker
process killed in the middle of a cell. Left alone, such a job would go on measuring, contending with
the next cell and outliving the test that started it. Linux delivers a chosen signal to a process
when its parent thread exits (prctl PR_SET_PDEATHSIG); this sets SIGKILL before the job's module
is even imported, then runs the module as __main__.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1
PARENT_PID_ENV = "FRAMEDUEL_PARENT_PID"  # set by the parent: the pid this process must not outlive


def die_with_parent(parent_pid: int | None) -> None:
    """SIGKILL this process when its parent exits; exit now if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return  # no such signal elsewhere: jobs there rely on their parent's cleanup alone
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return
    # The parent may have died between fork and prctl; then we were re-parented and no signal will come.
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def main() -> None:
    parent = os.environ.pop(PARENT_PID_ENV, None)
    die_with_parent(int(parent) if parent else None)
    module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
