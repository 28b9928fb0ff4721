"""Disjoint sets of this process's cores, for jobs run side by side (sweep trials, parallel cells)."""

from __future__ import annotations

import os

import numpy as np

from frameduel.errors import FrameduelError


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def core_slots(parallel: int | None) -> list[list[int]]:
    """`parallel` disjoint sets of this process's cores, as even as they divide (None: one core each)."""
    cores = available_cores()
    count = len(cores) if parallel is None else parallel
    if count < 1:
        raise FrameduelError(f"--parallel must be >= 1 (leave it out for the default), got {parallel}")
    if count > len(cores):
        raise FrameduelError(f"--parallel {count} needs {count} cores, but this process may use {len(cores)}; "
                             "jobs run side by side never share a core")
    return [[int(core) for core in chunk] for chunk in np.array_split(np.asarray(cores), count)]
