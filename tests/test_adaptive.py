"""Adaptive processes, contended and outlier processes, and the verdict rule: the real scheduler (run_plan),
the real store and the real policy (analysis/adaptive.py), with an executor that returns synthetic
measurements instead of starting a framework, so every rule is exercised in milliseconds.

The synthetic machine: each cell has a true step time; each process settles at it times a process-level
factor (log-normal, like the scatter measured between real processes), and a process can be made
contended (other processes' busy cores while it sampled) and slow.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from frameduel.analysis.adaptive import AdaptiveRounds, next_round
from frameduel.analysis.summary import Budget, exclusions, summarize_planned_run, summarize_run
from frameduel.analysis.verdict import verdicts
from frameduel.runner.plan import MAX_PROCESSES, AdaptiveSettings, Plan
from frameduel.runner.scheduler import Cell, CellStream, StartHook, run_plan
from frameduel.spec import MeasureBudget, Measurement, RunSpec
from frameduel.store import Store

TRUE_MS = {("torch", "eager"): 1.00, ("torch", "compile"): 1.50, ("tf", "eager"): 3.0, ("tf", "function"): 1.10}
PROCESS_WALL_S = 2.0


def spec(framework: str, mode: str) -> RunSpec:
    return RunSpec(workload="mlp", framework=framework, mode=mode, task="train", size="tiny", threads=2)


SPECS = tuple(spec(fw, mode) for fw, mode in TRUE_MS)


class SyntheticCells:
    """A CellExecutor: a process of a cell settles at true time x exp(N(0, scatter)); `disturb` may make
    a given (key, round) contended and slow. Records the order cells ran in."""

    def __init__(self, true_ms: dict[tuple[str, str], float], scatter: float,
                 disturb: Callable[[str, int], tuple[float, float]] | None = None, seed: int = 0,
                 drift: float = 0.0) -> None:
        self.true_ms, self.scatter, self.disturb = true_ms, scatter, disturb or (lambda key, r: (0.0, 1.0))
        self.drift = drift  # a factor exp(N(0, drift)) per round that moves every cell of the round alike
        self.rng = np.random.default_rng(seed)
        self.ran: list[Cell] = []
        self.closed = 0

    def run(self, cells: list[Cell], plan: Plan, on_start: StartHook) -> CellStream:
        for cell in cells:
            on_start(cell)
            self.ran.append(cell)
            round_index, cell_spec = cell
            busy, slowdown = self.disturb(cell_spec.key, round_index)
            machine = math.exp(self.drift * np.random.default_rng(1000 + round_index).normal())
            level = self.true_ms[(cell_spec.framework, cell_spec.mode)] * machine * math.exp(
                self.scatter * self.rng.normal())
            steps = (level * slowdown * (1 + 0.01 * self.rng.standard_normal(50)) / 1e3).tolist()
            yield cell, Measurement(spec=cell_spec, status="ok", step_seconds=steps, background_cores=busy,
                                    wall_s=PROCESS_WALL_S)

    def close(self) -> None:
        self.closed += 1


def plan_of(budget_s: float | None = None, max_processes: int = MAX_PROCESSES, adaptive: bool = True) -> Plan:
    settings = AdaptiveSettings(budget_s, 0.5, max_processes) if adaptive else None
    return Plan("quick", SPECS, MeasureBudget(), 3, adaptive=settings)


def run(tmp_path, executor: SyntheticCells, plan: Plan) -> tuple[Store, str]:
    store = Store(tmp_path / "results.sqlite")
    store.create_run("r1", plan.to_dict(), {})
    run_plan(store, "r1", plan, executor=executor, added_rounds=AdaptiveRounds(store, "r1", plan))
    return store, "r1"


def processes(store: Store, run_id: str) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for _, m in store.measurements(run_id):
        counts[(m.spec.framework, m.spec.mode)] = counts.get((m.spec.framework, m.spec.mode), 0) + 1
    return counts


def test_an_undecided_verdict_gets_processes_for_its_two_cells_only_interleaved_until_decided(tmp_path):
    # torch eager 1.00 vs tf function 1.20 with 8% process scatter: 3 processes cannot tell, a few more can
    executor = SyntheticCells({**TRUE_MS, ("tf", "function"): 1.2}, scatter=0.08, seed=3)
    store, run_id = run(tmp_path, executor, plan_of(budget_s=200))
    counts = processes(store, run_id)
    assert counts[("torch", "compile")] == counts[("tf", "eager")] == 3  # no verdict rests on them
    assert counts[("torch", "eager")] > 3 and counts[("tf", "function")] > 3
    added = [(cell_spec.framework, cell_spec.mode) for r, cell_spec in executor.ran[len(SPECS) * 3:]]
    pairs = [tuple(added[i:i + 2]) for i in range(0, len(added), 2)]
    assert all(set(pair) == {("torch", "eager"), ("tf", "function")} for pair in pairs)  # A B, B A, ...
    assert pairs[0] != pairs[1]  # the side that goes first alternates
    [verdict] = verdicts(summarize_planned_run(store.measurements(run_id), plan_of(budget_s=200)))
    assert verdict.outcome == "winner" and verdict.winner == "torch"
    assert executor.closed == 1  # the executor (its fork servers) is closed once, after the last added round


def test_drift_that_moves_both_sides_alike_is_taken_out_by_pairing_the_processes_run_side_by_side(tmp_path):
    # 5% apart; each round the machine runs 12% faster or slower for both sides alike, 1% of the processes' own
    close = {**TRUE_MS, ("tf", "function"): 1.05}
    plan = plan_of(budget_s=10_000)
    store, run_id = run(tmp_path, SyntheticCells(close, scatter=0.01, drift=0.12, seed=6), plan)
    summary = summarize_planned_run(store.measurements(run_id), plan)
    [verdict] = verdicts(summary)
    assert verdict.outcome == "winner" and verdict.winner == "torch"
    cells = {(cell.spec.framework, cell.spec.mode): cell for cell in summary.cells}
    torch_eager, tf_function = cells[("torch", "eager")], cells[("tf", "function")]
    assert torch_eager.kept_rounds == tf_function.kept_rounds  # added processes share their round: they pair up
    assert processes(store, run_id)[("torch", "eager")] < MAX_PROCESSES
    # unpaired, the same processes could not have told: their own spread is the machine's 12%
    assert np.std(np.log(torch_eager.process_medians), ddof=1) > 0.06


def test_the_budget_bounds_the_added_processes_and_the_verdict_says_how_to_resolve_it(tmp_path):
    close = {**TRUE_MS, ("tf", "function"): 1.03}  # 3% apart with 8% scatter: more than the budget resolves
    executor = SyntheticCells(close, scatter=0.08, seed=1)
    plan = plan_of(budget_s=50)  # base rounds: 12 processes x 2 s = 24 s; 26 s left = 6 added pairs at most
    store, run_id = run(tmp_path, executor, plan)
    summary = summarize_planned_run(store.measurements(run_id), plan)
    assert summary.budget.spent <= 60
    [verdict] = verdicts(summary)
    assert verdict.outcome == "inconclusive"
    assert any(reason.startswith("budget ran out (") and "rerun with --budget 100s" in reason
               for reason in verdict.reasons)
    assert verdict.to_dict()["reasons"] == verdict.reasons and verdict.to_dict()["outcome"] == "inconclusive"


def test_the_cap_on_processes_per_cell_stops_it_and_is_the_reason_given(tmp_path):
    close = {**TRUE_MS, ("tf", "function"): 1.01}
    plan = plan_of(budget_s=10_000, max_processes=5)
    store, run_id = run(tmp_path, SyntheticCells(close, scatter=0.1, seed=2), plan)
    counts = processes(store, run_id)
    assert counts[("torch", "eager")] == counts[("tf", "function")] == 5
    [verdict] = verdicts(summarize_planned_run(store.measurements(run_id), plan))
    if verdict.outcome == "inconclusive":
        assert verdict.reasons[0].startswith("5 processes per cell measured (the cap)")


def test_equivalent_sides_end_as_no_meaningful_difference(tmp_path):
    same = {**TRUE_MS, ("tf", "function"): 1.00}
    plan = plan_of(budget_s=10_000)
    store, run_id = run(tmp_path, SyntheticCells(same, scatter=0.02, seed=5), plan)
    [verdict] = verdicts(summarize_planned_run(store.measurements(run_id), plan))
    assert verdict.outcome == "no-difference" and verdict.winner is None
    assert 1 / 1.05 <= verdict.ratio.ci.low and verdict.ratio.ci.high <= 1.05


def test_a_fixed_repeats_run_adds_nothing_and_says_so_when_undecided(tmp_path):
    close = {**TRUE_MS, ("tf", "function"): 1.03}
    plan = plan_of(adaptive=False)
    store, run_id = run(tmp_path, SyntheticCells(close, scatter=0.08, seed=1), plan)
    assert set(processes(store, run_id).values()) == {3}
    [verdict] = verdicts(summarize_planned_run(store.measurements(run_id), plan))
    if verdict.outcome == "inconclusive":
        assert "fixed by --repeats" in verdict.reasons[0]


def test_a_contended_straggler_is_rerun_kept_in_the_store_and_left_out(tmp_path):
    torch_eager = spec("torch", "eager").key

    def straggler(key: str, round_index: int) -> tuple[float, float]:
        return (1.0, 27.0) if (key, round_index) == (torch_eager, 1) else (0.0, 1.0)  # 80.6 ms among 3.0s

    plan = plan_of(budget_s=200)
    store, run_id = run(tmp_path, SyntheticCells(TRUE_MS, scatter=0.01, disturb=straggler, seed=4), plan)
    assert processes(store, run_id)[("torch", "eager")] >= 4  # replaced
    summary = summarize_planned_run(store.measurements(run_id), plan)
    cell = next(c for c in summary.cells if c.spec.key == torch_eager)
    assert [(p.round, p.reason.split(" ")[0]) for p in cell.excluded] == [(1, "contended")]
    assert max(cell.process_medians) < 1.1e-3 and cell.step_ci.high / cell.step_ci.low < 1.1
    [verdict] = verdicts(summary)
    assert verdict.outcome == "winner" and verdict.winner == "torch"


def test_a_machine_that_stays_busy_keeps_its_processes_and_the_verdict_says_busy(tmp_path):
    close = {**TRUE_MS, ("tf", "function"): 1.02}
    plan = plan_of(budget_s=40)
    store, run_id = run(tmp_path, SyntheticCells(close, scatter=0.1, disturb=lambda key, r: (1.4, 1.0)), plan)
    summary = summarize_planned_run(store.measurements(run_id), plan)
    assert all(not cell.excluded for cell in summary.cells)  # no clean process to prefer: all stay in
    [verdict] = verdicts(summary)
    assert verdict.outcome == "inconclusive"
    assert any(reason.startswith("machine busy: 1.4 of 2 cores used by other processes") for reason in verdict.reasons)


def test_a_resumed_run_continues_with_the_budget_it_had_left(tmp_path):
    close = {**TRUE_MS, ("tf", "function"): 1.03}
    plan = plan_of(budget_s=50)
    store = Store(tmp_path / "results.sqlite")
    store.create_run("r1", plan.to_dict(), {})
    first = SyntheticCells(close, scatter=0.08, seed=7)
    with pytest.raises(KeyboardInterrupt):
        run_plan(store, "r1", plan, executor=first, added_rounds=interrupt_after(AdaptiveRounds(store, "r1", plan), 2))
    assert store.get_run("r1").status == "interrupted"
    before = len(store.measurements("r1"))
    run_plan(store, "r1", plan, executor=SyntheticCells(close, scatter=0.08, seed=8),
             added_rounds=AdaptiveRounds(store, "r1", plan))
    rows = store.measurements("r1")
    assert len(rows) > before and len({(m.spec.key, r) for r, m in rows}) == len(rows)  # no round twice
    assert summarize_planned_run(rows, plan).budget.spent <= 50


def interrupt_after(rounds: AdaptiveRounds, calls: int) -> Callable[[], list[Cell]]:
    """Ctrl-C after `calls` added rounds were handed out (as a user interrupting mid-run)."""
    seen = {"n": 0}

    def wrapped() -> list[Cell]:
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt
        return rounds()
    return wrapped


def test_outliers_by_the_stated_rule_and_a_bimodal_cell_keeps_both_modes():
    def rounds(medians_ms: list[float], busy: list[float] | None = None) -> list[tuple[int, Measurement]]:
        busy = busy or [0.0] * len(medians_ms)
        return [(i, Measurement(spec=SPECS[0], status="ok", step_seconds=[m / 1e3] * 5, background_cores=b))
                for i, (m, b) in enumerate(zip(medians_ms, busy, strict=True))]

    assert exclusions(rounds([2.98, 3.02, 80.6])) == {2: "outlier (26.7x slower than the median process)"}
    assert exclusions(rounds([0.49, 0.50, 336.0, 0.51])).keys() == {2}
    assert exclusions(rounds([24.6, 30.0, 38.4])) == {}  # 1.28x from the median: scatter, not an outlier
    assert exclusions(rounds([1.6, 1.6, 4.6, 4.6])) == {}  # two modes, equally common: both stay
    # contended processes go when 3 clean ones remain; with fewer, they stay (the machine stayed busy)
    assert set(exclusions(rounds([3.0, 3.1, 3.0, 4.0], busy=[0, 0, 0, 0.9]))) == {3}
    assert exclusions(rounds([3.0, 3.1, 3.3], busy=[0, 0, 0.9])) == {}


def test_next_round_picks_the_cheapest_undecided_groups_that_fit_the_budget():
    measurements = []
    for cell_spec in SPECS:
        for round_index in range(3):
            level = {("torch", "eager"): 1.0, ("tf", "function"): 1.03}.get((cell_spec.framework, cell_spec.mode), 5.0)
            scatter = 1 + 0.08 * (round_index - 1)
            measurements.append((round_index, Measurement(spec=cell_spec, status="ok", wall_s=PROCESS_WALL_S,
                                                          step_seconds=[level * scatter / 1e3] * 20)))
    summary = summarize_run(measurements, list(SPECS))
    roomy = next_round(summary, Budget(100.0, MAX_PROCESSES, 24.0), 3, 0)
    assert [(s.framework, s.mode) for s in roomy] == [("torch", "eager"), ("tf", "function")]
    assert [(s.framework, s.mode) for s in next_round(summary, Budget(100.0, MAX_PROCESSES, 24.0), 3, 1)] == [
        ("tf", "function"), ("torch", "eager")]
    assert next_round(summary, Budget(27.0, MAX_PROCESSES, 24.0), 3, 0) == []  # one pair costs 4 s: over budget
