"""frameduel advise: scenario weights, measured criteria and the no-winner-within-noise rule."""

from __future__ import annotations

import pytest

from frameduel.report.advise import ECOSYSTEM_FACTS, SCENARIO_WEIGHTS, advise
from frameduel.report.summary import summarize_run
from tests.conftest import run_cli
from tests.test_summary import fake


def summary_with(torch_train_s: float, tf_train_s: float, spread: float = 0.01):
    cells = [fake("torch", "eager", torch_train_s, spread=spread), fake("tf", "eager", tf_train_s, spread=spread,
                                                                        seed=7)]
    for measurement, peak in zip(cells, (300.0, 300.0), strict=True):
        measurement.peak_rss_mb = peak
    return summarize_run([(0, m) for m in cells], [m.spec for m in cells])


def test_weights_are_a_readable_table_that_sums_to_one():
    for scenario, weights in SCENARIO_WEIGHTS.items():
        assert sum(weights.values()) == pytest.approx(1.0), scenario


def test_clearly_faster_training_wins_the_training_scenario():
    advice = advise(summary_with(0.005, 0.010), "training")
    assert advice.winner == "torch" and advice.torch_score > 0.55
    criteria = {criterion.name: (criterion, weight) for criterion, weight in advice.criteria}
    assert criteria["training speed"][0].torch_share == pytest.approx(2 / 3, rel=0.02)
    assert sum(weight for _, weight in advice.criteria) == pytest.approx(1.0)  # renormalised: no compile cells


def test_a_difference_inside_the_noise_band_names_no_winner():
    advice = advise(summary_with(0.0100, 0.0101, spread=0.05), "training")
    assert advice.winner is None
    assert "within noise" in dict((c.name, c) for c, _ in advice.criteria)["training speed"].evidence


def test_documented_facts_are_marked_as_not_measured():
    advice = advise(summary_with(0.01, 0.01), "edge")
    facts = [criterion for criterion, _ in advice.criteria if not criterion.measured]
    assert [c.name for c in facts] == ["edge ecosystem"] and facts[0].evidence.startswith("documented fact")
    assert facts[0].torch_share == ECOSYSTEM_FACTS["edge ecosystem"][0]


def test_unknown_scenario_is_exit_2(db_path):
    result = run_cli("advise", "any", "--scenario", "moon", "--db", str(db_path))
    assert result.returncode == 2 and "unknown scenario 'moon'" in result.stderr
