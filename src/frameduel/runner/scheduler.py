"""Runs a plan: one worker subprocess per cell round, each result stored the moment it finishes.

A worker that crashes, runs out of memory or overstays its timeout becomes that cell's status; the
rest of the matrix goes on. Finished rounds are never redone, which is what makes --resume work.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from frameduel import environment
from frameduel.runner.plan import Plan
from frameduel.spec import MeasureBudget, Measurement, RunSpec
from frameduel.store import Store

CellCallback = Callable[[int, RunSpec, "Measurement | None"], None]  # None = the cell is starting


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


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def died_without_result(spec: RunSpec, returncode: int, stderr_path: Path, oom_killed: bool) -> Measurement:
    if returncode < 0:
        cause = f"worker killed by {signal.Signals(-returncode).name}"
    else:
        cause = f"worker exited with code {returncode}"
    detail = last_line(stderr_path)
    error = f"{cause}: {detail}" if detail else cause
    return Measurement(spec=spec, status="oom" if oom_killed else "failed", error=error)


def run_worker(spec: RunSpec, budget: MeasureBudget, workdir: Path) -> Measurement:
    """Measure one cell in a fresh process; always returns a Measurement, never raises for the cell."""
    token = secrets.token_hex(4)
    result_path, stderr_path = workdir / f"{token}.json", workdir / f"{token}.stderr"
    oom_before = cgroup_oom_kills()
    started = time.perf_counter()
    with open(stderr_path, "w") as stderr:
        # A new session makes the worker a process-group leader, so a timeout also kills anything it
        # spawned (inductor compile workers, for instance).
        process = subprocess.Popen(
            [sys.executable, "-m", "frameduel.runner.worker", str(result_path)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            process.communicate(job_json(spec, budget), timeout=budget.timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            return Measurement(spec=spec, status="timeout", wall_s=time.perf_counter() - started,
                               error=f"no result within {budget.timeout_s:g}s; raise it with --timeout")
        except BaseException:  # Ctrl-C: leave no orphan worker behind
            kill_group(process)
            raise
    if result_path.exists():
        return Measurement.from_json(result_path.read_text())
    oom_after = cgroup_oom_kills()
    oom_killed = oom_before is not None and oom_after is not None and oom_after > oom_before
    measurement = died_without_result(spec, process.returncode, stderr_path, oom_killed)
    measurement.wall_s = time.perf_counter() - started
    return measurement


def job_json(spec: RunSpec, budget: MeasureBudget) -> str:
    return json.dumps({"spec": spec.to_dict(), "budget": budget.to_dict()})


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


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
            for round_index, spec in pending_cells(store, run_id, plan):
                notify(round_index, spec, None)
                measurement = run_worker(spec, plan.budget, Path(workdir))
                store.save_measurement(run_id, round_index, measurement)
                notify(round_index, spec, measurement)
    except BaseException:
        store.set_run_status(run_id, "interrupted")
        raise
    store.set_run_status(run_id, "complete")
