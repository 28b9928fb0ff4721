"""Runs a plan: one worker subprocess per cell round, each result stored the moment it finishes.

A worker that crashes, runs out of memory or overstays its timeout becomes that cell's status; the
rest of the matrix goes on. Finished rounds are never redone, which is what makes --resume work.
"""

from __future__ import annotations

import json
import queue
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol

from frameduel import environment
from frameduel.doctor import diagnose
from frameduel.errors import FrameduelError
from frameduel.jobs.cores import core_slots
from frameduel.jobs.process import run_job
from frameduel.jobs.servers import ForkServers
from frameduel.jobs.spawn import Launcher, spawn_job
from frameduel.runner.plan import Plan
from frameduel.runner.store_writer import CellWriter, when_writable
from frameduel.spec import LOST, MeasureBudget, Measurement, RunSpec
from frameduel.store import Store

CellCallback = Callable[[int, RunSpec, "Measurement | None"], None]  # None = the cell is starting


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def spawn_measure(spec: RunSpec, budget: MeasureBudget, workdir: Path, launch: Launcher = run_job,
               cpus: list[int] | None = None) -> Measurement:
    """Measure one cell in a fresh process (spawned, or forked from the framework's zygote), pinned to
    cpus if given; always returns a Measurement, never raises for the cell."""
    started = time.perf_counter()
    envelope = spawn_job("measure", job_payload(spec, budget, cpus), budget.timeout_s, workdir, "worker", launch)
    if envelope.data.get("spec"):
        return Measurement.from_json(json.dumps(envelope.data))
    hint = "; raise it with --timeout" if envelope.status == "timeout" else ""
    return Measurement(spec=spec, status=envelope.status, error=f"{envelope.error}{hint}",
                       wall_s=time.perf_counter() - started)


def job_payload(spec: RunSpec, budget: MeasureBudget, cpus: list[int] | None = None) -> dict[str, Any]:
    return {"spec": spec.to_dict(), "budget": budget.to_dict(), "cpus": cpus}


def start_run(store: Store, plan: Plan, doctor_before: dict[str, Any] | None = None) -> str:
    """A new run in the store, with the environment and what `frameduel doctor` read of the machine before it
    (read now unless given)."""
    run_id = new_run_id()
    before = doctor_before or diagnose().to_dict()
    store.create_run(run_id, plan.to_dict(), {**environment.fingerprint(), "doctor": {"before": before}})
    return run_id


def record_doctor_after(store: Store, run_id: str) -> None:
    """The machine's readings after the run, beside those from before it (the report's environment section)."""
    recorded = store.get_run(run_id).environment
    doctor = {**recorded.get("doctor", {}), "after": diagnose().to_dict()}
    store.set_run_environment(run_id, {**recorded, "doctor": doctor})


def pending_cells(store: Store, run_id: str, plan: Plan) -> list[tuple[int, RunSpec]]:
    done = store.finished_rounds(run_id)
    return [(round_index, spec) for round_index, spec in plan.schedule() if (spec.key, round_index) not in done]


Cell = tuple[int, RunSpec]  # (round index, spec)
CellStream = Iterator[tuple[Cell, Measurement]]
StartHook = Callable[[Cell], None]  # told as each cell starts


class CellExecutor(Protocol):
    """Runs cells and yields each one's measurement as it ends (in any order); never raises for a cell.
    run() may be called again for added rounds: what it started (fork servers, a cluster) stays up until
    close()."""

    def run(self, cells: list[Cell], plan: Plan, on_start: StartHook) -> CellStream:
        ...

    def close(self) -> None:
        ...


def local_placement(plan: Plan, cpus: list[int] | None) -> dict[str, Any]:
    fingerprint = environment.fingerprint()
    return {"executor": "local", "host": fingerprint["hostname"],
            "machine_class": environment.machine_class(fingerprint), "concurrent": plan.parallel,
            **({"cpus": cpus} if cpus else {})}


class LocalCells:
    """On this machine: one cell at a time, or (plan.parallel > 1) that many at once, each pinned to its
    own cores, every one of them then flagged as having shared the machine. A fork server per framework
    and slot (jobs/servers.py) serves every run() until close()."""

    def __init__(self) -> None:
        self.servers = ForkServers()

    def launcher(self, framework: str, slot: int = 0) -> Launcher:
        return self.servers.launcher(framework, slot)

    def close_slot(self, slot: int) -> None:
        self.servers.close_slot(slot)

    def run(self, cells: list[Cell], plan: Plan, on_start: StartHook) -> CellStream:
        workdir = self.servers.directory()

        def measure(cell: Cell, slot: int, cpus: list[int] | None) -> Measurement:
            launch = self.launcher(cell[1].framework, slot) if plan.launch == "fork" else run_job
            measurement = spawn_measure(cell[1], plan.budget, workdir, launch, cpus)
            measurement.placement = local_placement(plan, cpus)
            return measurement

        if plan.parallel == 1:
            for cell in cells:
                on_start(cell)
                yield cell, measure(cell, 0, None)
        else:
            yield from self.run_parallel(cells, plan, on_start, measure)

    def close(self) -> None:
        self.servers.close()

    @staticmethod
    def run_parallel(cells: list[Cell], plan: Plan, on_start: StartHook,
                     measure: Callable[[Cell, int, list[int] | None], Measurement]) -> CellStream:
        slots: queue.Queue[int] = queue.Queue()
        cores = core_slots(plan.parallel)
        for slot in range(len(cores)):
            slots.put(slot)

        def in_slot(cell: Cell) -> Measurement:
            slot = slots.get()
            try:
                on_start(cell)
                return measure(cell, slot, cores[slot])
            finally:
                slots.put(slot)

        with ThreadPoolExecutor(max_workers=len(cores)) as pool:
            futures = {pool.submit(in_slot, cell): cell for cell in cells}
            for future in as_completed(futures):  # handed to the caller's thread, which stores it
                yield futures[future], future.result()


AddedRounds = Callable[[], list[Cell]]  # the next cells to measure once more; empty: none (analysis/adaptive.py)


def run_plan(store: Store, run_id: str, plan: Plan, on_cell: CellCallback | None = None,
             executor: CellExecutor | None = None, added_rounds: AddedRounds | None = None) -> None:
    """Run every cell round not yet stored for run_id (on this machine, or with the executor given),
    then the rounds added_rounds asks for until it asks for none, storing each cell as it ends, from this
    thread: the database has one writer. Cells whose machine was lost (status LOST) are reported, not stored,
    and end the run incomplete with one line saying how to finish it; so does a store that cannot be written."""
    notify = on_cell or (lambda *_: None)
    executor = executor or LocalCells()
    writer = CellWriter(store, run_id)
    lost: list[Cell] = []
    when_writable(store, lambda: store.set_run_status(run_id, "running"), "the run's status")
    try:
        # the plan's rounds not stored yet; once they all are (a resumed run), whatever processes verdicts need
        cells = pending_cells(store, run_id, plan) or (added_rounds() if added_rounds else [])
        while cells:
            for (round_index, spec), measurement in executor.run(cells, plan, lambda c: notify(c[0], c[1], None)):
                if measurement.status == LOST:
                    lost.append((round_index, spec))
                else:
                    writer.save(round_index, measurement)
                notify(round_index, spec, measurement)
            writer.flush()  # added rounds are chosen from what the store holds
            cells = added_rounds() if added_rounds and not lost else []
    except BaseException as exc:
        mark_interrupted(store, run_id)
        if isinstance(exc, FrameduelError):  # the store could not be written: the cells stored so far are kept
            raise FrameduelError(f"{exc}; the cells stored before it are kept: once fixed, finish the run with "
                                 f"frameduel compare --resume {run_id}") from None
        raise
    finally:
        executor.close()
    if lost:
        mark_interrupted(store, run_id)
        raise FrameduelError(f"{len(lost)} cell round(s) were lost with their machine ({named(lost)}) and are not "
                             f"stored; the rest are: finish the run with frameduel compare --resume {run_id}")
    when_writable(store, lambda: store.set_run_status(run_id, "complete"), "the run's status")


def named(cells: list[Cell], shown: int = 4) -> str:
    """'mlp infer numpy eager round 2, ...' for the first `shown` cells, then how many more."""
    names = [f"{spec.workload} {spec.task} {spec.framework} {spec.mode} round {round_index + 1}"
             for round_index, spec in cells[:shown]]
    return ", ".join(names) + (f" and {len(cells) - shown} more" if len(cells) > shown else "")


def mark_interrupted(store: Store, run_id: str) -> None:
    """Best effort: a run left "running" resumes the same way, and the store may be what failed."""
    try:
        store.set_run_status(run_id, "interrupted")
    except FrameduelError:
        pass
