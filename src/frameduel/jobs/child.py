"""What every job's process reports about itself: the key line of an error, its memory."""

from __future__ import annotations

import resource

import psutil


def error_line(exc: BaseException) -> str:
    """The key line of an error: its type and the first line of its message, truncated.

    tf.function errors open with "in user code:" and a traceback, and end with the real cause.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("in user code"):
        lines = lines[-1:]
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS: on Linux VmHWM, the high-water mark of its own address space. ru_maxrss is
    not that in a spawned job: subprocess starts it by vfork + exec, and exec folds the parent's peak (the
    address space the child borrowed) into the child's ru_maxrss (measured: a child of a 525 MB parent read
    525 MB there, 9 MB in VmHWM)."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
