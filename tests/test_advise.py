"""frameduel advise: scenario weights, measured criteria and the no-winner-within-noise rule."""

from __future__ import annotations

import pytest

from frameduel.analysis.evidence import Evidence
from frameduel.analysis.summary import summarize_run
from frameduel.report.advise import SCENARIO_WEIGHTS, advise, ecosystem_facts
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
    assert advice.winner == "torch" and advice.scores["torch"] > 0.55
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
    assert facts[0].torch_share == ecosystem_facts()["edge ecosystem"][0]["torch"]  # torch and tf add up to 1


def test_unknown_scenario_is_exit_2(db_path):
    result = run_cli("advise", "any", "--scenario", "moon", "--db", str(db_path))
    assert result.returncode == 2 and "unknown scenario 'moon'" in result.stderr


def export_result(framework: str, fmt: str, status: str, p50_ms: float | None = None) -> dict:
    bench = {"latency_ms_p50": p50_ms} if p50_ms is not None else None
    return {"workload": "mlp", "framework": framework, "format": fmt, "status": status, "benchmark": bench}


def loadtest_result(framework: str, sps: float) -> dict:
    return {"source": {"workload": "mlp", "size": "tiny", "framework": framework, "format": "onnx"},
            "config": {"concurrency": 8, "batch": 4}, "errors": {}, "requests": 100, "throughput_sps": sps}


def test_export_and_serving_results_weigh_in_where_both_frameworks_have_them():
    evidence = Evidence(
        exports=[export_result("torch", "onnx", "valid", 0.05), export_result("tf", "onnx", "valid", 0.10),
                 export_result("torch", "tflite", "valid", 0.030), export_result("tf", "tflite", "valid", 0.0302),
                 export_result("tf", "tflite-int8", "invalid"), export_result("torch", "savedmodel", "unsupported")],
        loadtests=[loadtest_result("torch", 900.0), loadtest_result("tf", 300.0)])
    serving = {c.name: (c, w) for c, w in advise(summary_with(0.01, 0.01), "serving", evidence).criteria}
    # each framework's best artefact counts: both are TFLite here, 0.030 vs 0.0302 ms, inside the noise band
    deployed = serving["deployed latency"][0]
    assert deployed.torch_share == 0.5 and "torch 0.03 (tflite) vs tf 0.0302 (tflite)" in deployed.evidence
    assert serving["served throughput"][0].torch_share == pytest.approx(0.75)  # 900 vs 300 samples/s
    assert "inference latency" not in serving  # the run has no batch-1 cells: dropped, the rest renormalised
    assert sum(w for _, w in serving.values()) == pytest.approx(1.0)
    edge = {c.name: c for c, _ in advise(summary_with(0.01, 0.01), "edge", evidence).criteria}
    assert edge["edge latency"].torch_share == 0.5 and "within noise" in edge["edge latency"].evidence
    # torch 2 of 2 valid (the unsupported SavedModel does not count), tf 2 of 3
    assert edge["export success"].torch_share == pytest.approx(1 / (1 + 2 / 3))


def proof(direction: tuple[str, str], worst: float = 2e-14, first_divergence: str | None = None) -> dict:
    """A stored float64 parity report (ParityReport.to_dict's shape) for the mlp at tiny size."""
    figures = {"forward": {"rel": worst, "tolerance": 1e-9}, "weights round trip (max abs)": {"rel": 0.0,
                                                                                             "tolerance": 0.0}}
    return {"workload": "mlp", "size": "tiny", "source": direction[0], "target": direction[1],
            "passed": first_divergence is None, "error": None,
            "proven": [] if first_divergence else ["float64", "stressed weights", "post-training state"],
            "first_divergence": {"line": first_divergence} if first_divergence else None,
            "judgements": [{"precision": "fp64", "figures": figures}]}


def modes(failures: list[str]) -> dict:
    return {"workload": "mlp", "size": "tiny", "passed": not failures, "failures": failures}


def test_parity_status_says_exactly_what_was_proven():
    both = [proof(("torch", "tf"), 2e-14), proof(("tf", "torch"), 3e-16)]
    advice = advise(summary_with(0.01, 0.01), "training", Evidence(parity=both, modes=[modes([])]))
    assert advice.notes == ["mlp: parity proven (float64, stressed weights, post-training state, all modes; "
                            "tiny torch->tf, tiny tf->torch; worst float64 diff 2.0e-14)"]
    unchecked = advise(summary_with(0.01, 0.01), "training", Evidence(parity=both)).notes[0]
    assert unchecked.endswith("compiled modes not checked (`frameduel parity mlp` checks them)")
    broken = Evidence(parity=both, modes=[modes(["torch compile: output forward: 3.1e-02 > 0.0001"])])
    assert "but a compiled mode computes something else than eager: torch compile: output forward" in advise(
        summary_with(0.01, 0.01), "training", broken).notes[0]
    failed = [proof(("torch", "tf"), first_divergence="layer body.1 (stressed): 4.9e-01 > 1e-09")]
    assert advise(summary_with(0.01, 0.01), "training", Evidence(parity=failed)).notes == [
        "mlp: parity FAILED (tiny torch->tf: layer body.1 (stressed): 4.9e-01 > 1e-09): the two models differ, "
        "so their timings compare different work"]
    assert "parity not checked" in advise(summary_with(0.01, 0.01), "training").notes[0]


def test_an_older_weaker_parity_result_is_labelled_as_such():
    older = {"workload": "mlp", "size": "tiny", "source": "torch", "target": "tf", "passed": True, "forward_rel": 2e-7}
    note = advise(summary_with(0.01, 0.01), "training", Evidence(parity=[older])).notes[0]
    assert note.startswith("mlp: parity passed an older, weaker check only (fp32 forward and loss curves within 1e-4")
    assert "rerun `frameduel parity mlp` for the float64 proof" in note


def test_a_gap_inside_the_figures_own_spread_is_no_evidence():
    def noisy(framework: str, p50_ms: float, noise: float) -> dict:
        result = export_result(framework, "tflite", "valid", p50_ms)
        result["benchmark"]["latency_noise"] = noise
        return result

    quiet = advise(summary_with(0.01, 0.01), "edge", Evidence(exports=[noisy("torch", 0.050, 0.01),
                                                                       noisy("tf", 0.054, 0.01)]))
    assert {c.name: c for c, _ in quiet.criteria}["edge latency"].torch_share == pytest.approx(0.054 / 0.104)
    spread = advise(summary_with(0.01, 0.01), "edge", Evidence(exports=[noisy("torch", 0.050, 0.15),
                                                                        noisy("tf", 0.054, 0.01)]))
    assert {c.name: c for c, _ in spread.criteria}["edge latency"].torch_share == 0.5  # 8% gap, 15% spread



def test_keras_on_another_backend_can_be_the_recommendation():
    """Four frameworks: each gets a share of every criterion; the fastest by far, Keras on JAX, wins."""
    cells = [fake("torch", "eager", 0.010), fake("tf", "function", 0.012, seed=3),
             fake("keras-torch", "eager", 0.015, seed=5), fake("keras-jax", "jit", 0.002, seed=7)]
    summary = summarize_run([(0, m) for m in cells], [m.spec for m in cells])
    advice = advise(summary, "training")
    assert advice.winner == "keras-jax" and advice.winner_label == "Keras 3 on JAX (keras-jax)"
    assert set(advice.scores) == {"torch", "tf", "keras-torch", "keras-jax"}
    assert sum(advice.scores.values()) == pytest.approx(1.0)
    speed = {c.name: c for c, _ in advice.criteria}["training speed"]
    assert speed.shares["keras-jax"] > speed.shares["torch"] > speed.shares["tf"] > speed.shares["keras-torch"]
