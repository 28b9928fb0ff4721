"""Per-cell statistics and speedups from synthetic measurements (no framework needed)."""

from __future__ import annotations

import numpy as np

from frameduel.analysis.summary import summarize_run
from frameduel.spec import Measurement, RunSpec


def fake(framework: str, mode: str, median_s: float, spread: float = 0.01, seed: int = 0,
         task: str = "train", batch: int = 32, status: str = "ok") -> Measurement:
    rng = np.random.default_rng(seed)
    samples = (median_s * (1 + spread * rng.standard_normal(200))).tolist() if status == "ok" else []
    spec = RunSpec(workload="mlp", framework=framework, mode=mode, task=task, batch_size=batch, size="tiny")
    return Measurement(spec=spec, status=status, step_seconds=samples, compile_s=2.0 if mode != "eager" else 0.0,
                       error=None if status == "ok" else "boom")


def summary_of(*measurements: Measurement):
    stored = [(0, m) for m in measurements]
    return summarize_run(stored, [m.spec for m in measurements])


def ratio(summary, label_start: str):
    [found] = [r for r in summary.ratios if r.label.startswith(label_start)]
    return found


def test_clear_gap_names_a_winner_with_its_ci():
    summary = summary_of(fake("torch", "eager", 0.010), fake("torch", "compile", 0.005, seed=1),
                         fake("tf", "eager", 0.020, seed=2))
    compiled = ratio(summary, "torch compile vs torch eager")
    assert abs(compiled.value - 2.0) < 0.05 and compiled.ci.low > 1.9 and compiled.verdict == "faster"
    cross = ratio(summary, "torch eager vs tf eager")
    assert abs(cross.value - 2.0) < 0.05 and cross.verdict == "faster"
    best = ratio(summary, "torch best (compile) vs tf best (eager)")
    assert abs(best.value - 4.0) < 0.1


def test_difference_inside_the_noise_band_is_no_meaningful_difference():
    summary = summary_of(fake("torch", "eager", 0.0100, spread=0.05), fake("tf", "eager", 0.0101, spread=0.05, seed=3))
    assert ratio(summary, "torch eager vs tf eager").verdict == "no meaningful difference"


def test_slower_candidate_is_called_slower():
    summary = summary_of(fake("torch", "eager", 0.030), fake("tf", "eager", 0.010, seed=4))
    assert ratio(summary, "torch eager vs tf eager").verdict == "slower"


def test_failed_cells_are_reported_but_not_compared():
    summary = summary_of(fake("torch", "eager", 0.01), fake("tf", "eager", 0.0, status="oom"))
    statuses = {c.spec.framework: (c.status, c.error) for c in summary.cells}
    assert statuses == {"torch": ("ok", None), "tf": ("oom", "boom")}
    assert summary.ratios == []


def test_throughput_latency_and_rounds():
    latency = fake("torch", "eager", 0.002, task="infer", batch=1)
    second_round = fake("torch", "eager", 0.0022, task="infer", batch=1, seed=9)
    stored = [(0, latency), (1, second_round)]
    [cell] = summarize_run(stored, [latency.spec]).cells
    assert cell.rounds == 2 and cell.latency
    assert 400 < cell.throughput < 500  # 1 sample / ~2.1 ms
    assert cell.step.p50 <= cell.step.p90 <= cell.step.p99
    assert cell.step_ci.low < 0.002 * 1.05 and cell.step_ci.high > 0.0022 * 0.95  # spans both rounds
    assert summarize_run(stored, [latency.spec]).to_dict()["cells"][0]["key"] == latency.spec.key


def test_contended_cells_are_flagged_in_the_table():
    from rich.console import Console

    from frameduel.report.terminal import cell_table

    busy = fake("torch", "eager", 0.01)
    busy.background_cores = 0.9
    quiet = fake("tf", "eager", 0.01, seed=5)
    quiet.background_cores = 0.0
    summary = summary_of(busy, quiet)
    assert [c.contended for c in summary.cells] == [True, False]
    console = Console(width=250, record=True)
    console.print(cell_table(summary, "t", wide=True))
    assert console.export_text().count("contended (0.9 cores busy elsewhere)") == 1
    compact = Console(width=100, record=True)
    compact.print(cell_table(summary, "t"))
    rows = [line.split() for line in compact.export_text().splitlines() if "eager" in line]
    assert [row[-1] for row in rows] == ["C", "-"]  # the flag column: C for the busy cell, none for tf (peak MB "-")


def rounds_of(framework: str, medians_s: list[float], seed: int = 0, spread: float = 0.01) -> list:
    """One Measurement per worker process (round), each centred on its own median."""
    return [(index, fake(framework, "eager", median, spread=spread, seed=seed + index))
            for index, median in enumerate(medians_s)]


def test_cells_whose_processes_disagree_are_unstable_and_their_verdict_inconclusive():
    torch_rounds = rounds_of("torch", [0.010, 0.016, 0.011])  # one process 60% off: bimodal
    tf_rounds = rounds_of("tf", [0.0115, 0.0116, 0.0114], seed=10)
    summary = summarize_run(torch_rounds + tf_rounds, [torch_rounds[0][1].spec, tf_rounds[0][1].spec])
    torch_cell, tf_cell = summary.cells
    assert torch_cell.unstable and not tf_cell.unstable
    assert abs(torch_cell.spread - 0.6) < 0.05 and torch_cell.process_range == "3 processes: 10-16 ms/step"
    # each process alone has a tight CI; across processes the interval must reach both modes
    assert torch_cell.step_ci.low < 0.0105 and torch_cell.step_ci.high > 0.0155
    cross = ratio(summary, "torch eager vs tf eager")
    assert cross.unstable and cross.verdict == "inconclusive"
    assert "unstable across processes (3 processes: 10-16 ms/step)" in cell_rows_text(summary)


def test_a_clear_gap_survives_unstable_processes():
    slow = rounds_of("torch", [0.030, 0.036, 0.031])
    fast = rounds_of("tf", [0.010, 0.0101, 0.0099], seed=20)
    summary = summarize_run(slow + fast, [slow[0][1].spec, fast[0][1].spec])
    assert ratio(summary, "torch eager vs tf eager").verdict == "slower"  # 3x, whatever the processes do


def test_stable_processes_keep_tight_intervals():
    steady = rounds_of("torch", [0.0100, 0.0101, 0.0100])
    [cell] = summarize_run(steady, [steady[0][1].spec]).cells
    assert not cell.unstable and cell.step_ci.high / cell.step_ci.low < 1.03


def cell_rows_text(summary) -> str:
    from frameduel.report.tables import cell_rows

    return "\n".join(" | ".join(row) for row in cell_rows(summary))


def test_a_cell_whose_processes_agree_by_chance_borrows_the_spread_of_its_kind():
    """Three processes that happen to agree do not make a cell more precise than its framework and
    task are on this machine: the dispersion pooled over those cells widens its CI."""
    lucky = rounds_of("torch", [0.0100, 0.0100, 0.0100])
    scattered = [(i, fake("torch", "compile", median, seed=30 + i)) for i, median in
                 enumerate([0.0100, 0.0120, 0.0090])]
    alone = summarize_run(lucky, [lucky[0][1].spec]).cells[0]
    pooled = summarize_run(lucky + scattered, [lucky[0][1].spec, scattered[0][1].spec]).cells[0]
    assert alone.step_ci.high / alone.step_ci.low < 1.01
    assert pooled.step_ci.high / pooled.step_ci.low > 1.1 and pooled.pooled_dispersion.df == 2  # its own k - 1


def test_the_verdict_rule_names_a_winner_beyond_2_percent_and_equivalence_within_5():
    from frameduel.analysis.summary import Ratio
    from frameduel.stats import Interval

    def verdict(low: float, high: float, unstable: bool = False) -> str:
        return Ratio("g", "a vs b", "a", "b", 1.0, Interval(low, high), unstable).verdict

    assert verdict(0.97, 1.05) == verdict(1 / 1.05, 1.01) == "no meaningful difference"
    assert verdict(0.94, 1.03) == verdict(0.98, 1.06) == verdict(0.85, 1.3) == "inconclusive"
    # instability widens the CI itself (processes are the units): it needs no rule of its own
    assert verdict(0.97, 1.05, unstable=True) == "no meaningful difference"
    assert (verdict(1.021, 1.6), verdict(0.5, 0.979)) == ("faster", "slower")
    assert verdict(1.03, 1.04) == "faster"  # cleared the noise band: a small but real winner
