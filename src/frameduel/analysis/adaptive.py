"""Adaptive processes per cell: after the first rounds, more worker processes go to the cells a verdict
rests on, until it is decided, a cell reaches the cap, or the run's time budget is spent.

The rule (README, "Conclusive answers"):
* A verdict that is inconclusive gets one more process for each of its two cells (each framework's best
  mode), until a cell has MAX_PROCESSES (kept and left out together).
* Once every verdict is decided (or capped), the budget left replaces disturbed processes: a verdict cell
  with fewer than MIN_KEPT_PROCESSES clean processes (the others contended or outliers) gets one
  replacement per process it lost, so a decided verdict does not rest on a disturbed sample; a machine
  that stays busy cannot make this loop forever (the cap on re-runs). Undecided verdicts come first:
  beside a bursty one-core load, replacements for verdicts already decided had taken 51-78 s of the
  160-190 s the added rounds had, and three of ten verdicts ran out of budget.
* Each added round runs the chosen cells interleaved, A B A B across groups, swapping which side goes
  first every round (A B, then B A), so both sides sample the same machine periods.
* A round is run only if its estimated cost (each cell's median process wall time) fits the budget left;
  otherwise the cheapest groups that fit go first, and when none fits the run stops: the verdicts still
  inconclusive then say the budget ran out, and by how much to raise it.
The budget counts the wall time of the worker processes measured so far (base rounds included), read from
the store, so a resumed run continues with what it had left.
"""

from __future__ import annotations

from frameduel.analysis.summary import MIN_KEPT_PROCESSES, Budget, CellSummary, RunSummary, summarize_planned_run
from frameduel.analysis.verdict import Verdict, verdicts
from frameduel.runner.contention import CONTENTION_THRESHOLD_CORES
from frameduel.runner.plan import Plan
from frameduel.spec import RunSpec
from frameduel.store import Store


def clean_processes(cell: CellSummary) -> int:
    """Kept processes that sampled a quiet machine."""
    return sum(busy <= CONTENTION_THRESHOLD_CORES for busy in cell.kept_background)


def needs_replacement(cell: CellSummary, base_processes: int) -> bool:
    """Disturbed processes (left out, or kept only because the machine stayed busy) get one re-run each."""
    lost = MIN_KEPT_PROCESSES - clean_processes(cell)
    return lost > 0 and cell.processes < base_processes + MIN_KEPT_PROCESSES


def process_cost(cell: CellSummary) -> float:
    """The cell's typical process wall time: the median, so the first process's cold compile does not count."""
    return cell.process_wall_s or 1.0


def undecided_cells(verdict: Verdict, budget: Budget) -> list[CellSummary]:
    """An inconclusive verdict's cells below the cap: each gets one more process."""
    if verdict.ratio.verdict != "inconclusive":
        return []
    return [cell for cell in (verdict.first, verdict.second) if cell.processes < budget.max_processes]


def disturbed_cells(verdict: Verdict, base_processes: int) -> list[CellSummary]:
    """A verdict's cells that lost clean processes: each gets a replacement."""
    return [cell for cell in (verdict.first, verdict.second) if needs_replacement(cell, base_processes)]


def next_round(summary: RunSummary, budget: Budget, base_processes: int, round_number: int) -> list[RunSpec]:
    """The cells to measure once more, in the order to run them; empty when nothing more is worth the budget."""
    found = verdicts(summary)
    wanted = [undecided_cells(verdict, budget) for verdict in found]
    if not any(wanted):  # every verdict decided: what is left of the budget replaces disturbed processes
        wanted = [disturbed_cells(verdict, base_processes) for verdict in found]
    groups: list[list[CellSummary]] = []
    chosen: set[str] = set()
    for cells in wanted:
        cells = [cell for cell in cells if cell.spec.key not in chosen]
        if cells:
            chosen.update(cell.spec.key for cell in cells)
            groups.append(cells if round_number % 2 == 0 else cells[::-1])  # A B, then B A
    groups.sort(key=lambda cells: sum(process_cost(cell) for cell in cells))  # cheapest decisions first
    picked, cost = [], 0.0
    for cells in groups:
        group_cost = sum(process_cost(cell) for cell in cells)
        if cost + group_cost <= budget.left:
            picked += [cell.spec for cell in cells]
            cost += group_cost
    return picked


class AdaptiveRounds:
    """The scheduler's source of added processes for one run: each call reads what the store holds, and
    returns the next round's (round index, spec) cells, or nothing once the verdicts need no more."""

    def __init__(self, store: Store, run_id: str, plan: Plan) -> None:
        self.store, self.run_id, self.plan = store, run_id, plan
        self.rounds = 0

    def __call__(self) -> list[tuple[int, RunSpec]]:
        measurements = self.store.measurements(self.run_id)
        summary = summarize_planned_run(measurements, self.plan)
        if summary.budget is None:
            return []
        specs = next_round(summary, summary.budget, self.plan.repeats, self.rounds)
        self.rounds += 1
        taken: dict[str, int] = {}
        for round_index, measurement in measurements:
            taken[measurement.spec.key] = max(taken.get(measurement.spec.key, -1), round_index)
        # One round index for the whole added round: the processes run side by side pair up (summary.speedup).
        next_index = 1 + max((taken.get(spec.key, -1) for spec in specs), default=-1)
        return [(next_index, spec) for spec in specs]
