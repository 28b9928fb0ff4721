"""The compare track from plan to stored run, above both runner and parity: parity proven before any timed
cell, the run started, every round measured with the processes verdicts ask for (adaptive.py), the machine
read again after. What it shows as it goes is a CompareView's (report/progress.py draws one on a terminal)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from frameduel import environment
from frameduel.analysis.adaptive import AdaptiveRounds
from frameduel.analysis.evidence import Evidence, load_evidence
from frameduel.analysis.summary import RunSummary, summarize_planned_run
from frameduel.parity.cache import ParityStep, prove_parity
from frameduel.parity.check import spawned
from frameduel.runner.plan import MatrixRequest, Plan, build_plan
from frameduel.runner.scheduler import CellCallback, CellExecutor, LocalCells, record_doctor_after, run_plan, start_run
from frameduel.store import RunRecord, Store


class CompareView(Protocol):
    """What a compare shows as it goes."""

    def threads_lowered(self, machine: dict[str, Any], threads: int) -> None: ...

    def parity_started(self, plan: Plan) -> None: ...

    def parity_proven(self, steps: list[ParityStep], evidence: Evidence) -> None: ...

    def run_started(self, run_id: str, plan: Plan, db: Path) -> None: ...

    def measuring(self, store: Store, run_id: str, plan: Plan) -> AbstractContextManager[CellCallback]: ...


class RunInterrupted(Exception):
    """Ctrl-C while measuring: the finished cells are stored, and `compare --resume run_id` runs the rest."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def run_compare(store: Store, start: MatrixRequest | str, executor: CellExecutor | None, view: CompareView,
                machine: dict[str, Any] | None = None, prove: bool = True, recheck: bool = False) -> str:
    """A new run of a request's plan (machine: doctor's reading before it), or the stored run of that id
    resumed, measured to the end; a new run's parity proven first unless prove is False (recheck: even where
    a proof is stored). Returns the run id. executor None: this machine."""
    if isinstance(start, str):
        run_id: str | None = start
        plan = Plan.from_dict(store.get_run(start).plan)
    else:
        run_id, plan = None, build_plan(start)
        if start.threads_lowered and machine is not None:
            view.threads_lowered(machine, plan.specs[0].threads)
    executor = executor or LocalCells()
    if run_id is None:
        if prove:
            view.parity_started(plan)
            steps = prove_plan_parity(store, plan, executor, recheck)
            view.parity_proven(steps, load_evidence(store, plan.workloads))
        run_id = start_run(store, plan, machine)
    view.run_started(run_id, plan, store.path)
    try:
        with view.measuring(store, run_id, plan) as on_cell:
            run_plan(store, run_id, plan, on_cell, executor, AdaptiveRounds(store, run_id, plan))
    except KeyboardInterrupt:
        raise RunInterrupted(run_id) from None
    record_doctor_after(store, run_id)
    return run_id


def prove_plan_parity(store: Store, plan: Plan, executor: CellExecutor, recheck: bool) -> list[ParityStep]:
    """Parity of the plan's workloads in its frameworks (float64, tiny, every mode; a proof stored with these
    package versions is reused unless recheck), forked from the run's zygotes where it runs locally."""
    local = isinstance(executor, LocalCells) and plan.launch == "fork"
    steps = prove_parity(store, plan.workloads, plan.frameworks, plan.specs[0].checkpoint,
                         environment.fingerprint(), recheck, executor.launcher if local else spawned)
    if local:
        executor.close_slot(1)  # the modes checks' second zygotes: measuring forks from slot 0 only
    return steps


def summarize_stored_run(store: Store, run_id: str) -> tuple[RunRecord, RunSummary]:
    run = store.get_run(run_id)
    return run, summarize_planned_run(store.measurements(run_id), Plan.from_dict(run.plan))
