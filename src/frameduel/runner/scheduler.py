"""Runs a plan: one worker subprocess per cell round, each result stored the moment it finishes.

A worker that crashes, runs out of memory or overstays its timeout becomes that cell's status; the
rest of the matrix goes on. Finished rounds are never redone, which is what makes --resume work.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from frameduel import environment
from frameduel.runner.plan import Plan
from frameduel.runner.process import JobOutcome, Zygote, run_job
from frameduel.spec import MeasureBudget, Measurement, RunSpec
from frameduel.store import Store

CellCallback = Callable[[int, RunSpec, "Measurement | None"], None]  # None = the cell is starting
Launcher = Callable[[str, list[str], str, float, Path], JobOutcome]  # run_job's signature


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def cgroup_oom_kills() -> int | None:
    """The kernel's OOM-kill counter for our cgroup (v2), to tell an OOM kill from any other SIGKILL."""
    try:
        relative = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        events = Path("/sys/fs/cgroup", relative.lstrip("/"), "memory.events").read_text()
    except (OSError, IndexError):
        return None
    for line in events.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            return int(value)
    return None


def run_worker(spec: RunSpec, budget: MeasureBudget, workdir: Path, launch: Launcher = run_job) -> Measurement:
    """Measure one cell in a fresh process (spawned, or forked from the framework's zygote); always
    returns a Measurement, never raises for the cell."""
    result_path = workdir / f"{secrets.token_hex(4)}.json"
    oom_before = cgroup_oom_kills()
    started = time.perf_counter()
    outcome = launch("frameduel.runner.worker", [str(result_path)], job_json(spec, budget), budget.timeout_s,
                     workdir)
    if outcome.timed_out:
        return Measurement(spec=spec, status="timeout", wall_s=time.perf_counter() - started,
                           error=f"no result within {budget.timeout_s:g}s; raise it with --timeout")
    if result_path.exists():
        return Measurement.from_json(result_path.read_text())
    oom_after = cgroup_oom_kills()
    oom_killed = oom_before is not None and oom_after is not None and oom_after > oom_before
    return Measurement(spec=spec, status="oom" if oom_killed else "failed", error=outcome.death_cause("worker"),
                       wall_s=time.perf_counter() - started)


def job_json(spec: RunSpec, budget: MeasureBudget) -> str:
    return json.dumps({"spec": spec.to_dict(), "budget": budget.to_dict()})


def start_run(store: Store, plan: Plan) -> str:
    run_id = new_run_id()
    store.create_run(run_id, plan.to_dict(), environment.fingerprint())
    return run_id


def pending_cells(store: Store, run_id: str, plan: Plan) -> list[tuple[int, RunSpec]]:
    done = store.finished_rounds(run_id)
    return [(round_index, spec) for round_index, spec in plan.schedule() if (spec.key, round_index) not in done]


def run_plan(store: Store, run_id: str, plan: Plan, on_cell: CellCallback | None = None) -> None:
    """Run every cell round not yet stored for run_id, in schedule order, storing each as it ends."""
    notify = on_cell or (lambda *_: None)
    store.set_run_status(run_id, "running")
    try:
        with tempfile.TemporaryDirectory(prefix="frameduel-") as workdir:
            zygotes: dict[str, Zygote] = {}
            try:
                for round_index, spec in pending_cells(store, run_id, plan):
                    notify(round_index, spec, None)
                    launch = run_job
                    if plan.launch == "fork":
                        launch = zygotes.setdefault(spec.framework, Zygote(spec.framework, Path(workdir))).run_job
                    measurement = run_worker(spec, plan.budget, Path(workdir), launch)
                    store.save_measurement(run_id, round_index, measurement)
                    notify(round_index, spec, measurement)
            finally:
                for zygote in zygotes.values():
                    zygote.close()
    except BaseException:
        store.set_run_status(run_id, "interrupted")
        raise
    store.set_run_status(run_id, "complete")
