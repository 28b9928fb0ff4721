"""A data-parallel train cell: its group of workers started by jobs/group.py, their results folded into one
Measurement (worker 0's timings, every worker's memory, the all-reduce alone)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from frameduel.jobs.group import run_group
from frameduel.spec import FRAMEWORK_INFO, MeasureBudget, Measurement, RunSpec


def measure(spec: RunSpec, budget: MeasureBudget) -> Measurement:
    """One data-parallel train cell: worker 0's timings, every worker's memory, the all-reduce alone."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="frameduel-dp-") as tmp:
        # Leave the scheduler's own timeout a margin, so the group's failure is the one recorded.
        outcome = run_group(spec, {"kind": "measure", "budget": budget.to_dict()}, Path(tmp),
                            max(budget.timeout_s - 10.0, budget.timeout_s * 0.9))
    if outcome.failure is not None:
        return Measurement(spec=spec, status="failed", error=outcome.failure, wall_s=time.perf_counter() - started)
    return group_measurement([Measurement.from_json(json.dumps(r.data["measurement"])) for r in outcome.results],
                             time.perf_counter() - started, FRAMEWORK_INFO[spec.framework].data_parallel_launcher)


def group_measurement(ranks: list[Measurement], wall_s: float, launcher: str) -> Measurement:
    """Worker 0's measurement (the workers step in lockstep: every step ends in the same all-reduce),
    with the group's memory: the sum of the workers' peaks, as the machines had to hold them all, and
    what started the group."""
    first = ranks[0]
    first.runtime.setdefault("data_parallel", {})["launcher"] = launcher
    first.runtime["workers"] = [{"rank": index, "pid": rank.runtime.get("process", {}).get("pid"),
                                 "peak_rss_mb": rank.peak_rss_mb,
                                 "median_step_s": sorted(rank.step_seconds)[len(rank.step_seconds) // 2]}
                                for index, rank in enumerate(ranks)]
    first.peak_rss_mb = sum(rank.peak_rss_mb or 0.0 for rank in ranks)
    first.baseline_rss_mb = sum(rank.baseline_rss_mb or 0.0 for rank in ranks)
    first.wall_s = wall_s
    return first
