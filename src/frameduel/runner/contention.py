"""How much CPU *other* processes used while we measured: a timing taken on a busy machine is suspect.

On a small machine one background process can multiply a step time (OpenMP workers spin waiting for a
descheduled sibling), so every measurement records this figure and the report flags it.
"""

from __future__ import annotations

import time

import psutil

# Other processes keeping more than this many cores busy, on average, marks a cell "contended".
CONTENTION_THRESHOLD_CORES = 0.25


def system_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def own_cpu_seconds(peer_pids: tuple[int, ...] = ()) -> float:
    """CPU seconds of this process and of its peers (a data-parallel group's other workers, which do
    this measurement's work on the other cores: they are not background load)."""
    total = 0.0
    for pid in (None, *peer_pids):
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class BackgroundLoad:
    """Context manager: after the block, `.cores` holds other processes' average busy cores."""

    def __init__(self, peer_pids: tuple[int, ...] = ()) -> None:
        self.peer_pids = peer_pids

    def __enter__(self) -> BackgroundLoad:
        self.cores = 0.0
        self._start = (time.perf_counter(), system_busy_seconds(), own_cpu_seconds(self.peer_pids))
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall_0, system_0, own_0 = self._start
        wall = time.perf_counter() - wall_0
        others = (system_busy_seconds() - system_0) - (own_cpu_seconds(self.peer_pids) - own_0)
        self.cores = max(0.0, others / wall) if wall > 0 else 0.0
