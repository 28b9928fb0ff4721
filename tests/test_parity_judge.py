"""The parity judge and the stressed weights, on arrays built by hand (no framework needed)."""

from __future__ import annotations

import math

import numpy as np

from frameduel.parity.judge import TOLERANCES, judge, normal_form
from frameduel.parity.stress import GAIN, INPUT_GAIN, SCALE_HIGH, SCALE_LOW, stress_inputs, stress_weights


def side(rng: np.random.Generator, *, with_step: bool = True) -> dict[str, np.ndarray]:
    """The arrays one side writes, for a model with one Linear (body) and one BatchNorm (bn)."""
    arrays = {"roundtrip/weights/body.weight": rng.standard_normal((3, 2)),
              "eval/output": rng.standard_normal((4, 3)), "stress/output": rng.standard_normal((4, 3)),
              "eval/act/body": rng.standard_normal((4, 3)), "eval/act/bn": rng.standard_normal((4, 3))}
    for prefix in ("sgd", "adam", "stress-sgd"):
        arrays[f"{prefix}/loss"] = np.array([2.0, 1.5, 1.0])
        arrays[f"{prefix}/weights/body.weight"] = rng.standard_normal((3, 2))
        arrays[f"{prefix}/weights/bn.running_var"] = 1 + rng.random(3)
        if prefix == "adam":
            arrays["adam/slots/body.weight/m"] = rng.standard_normal((3, 2)) * 1e-3
            arrays["adam/slots/body.weight/v"] = rng.random((3, 2)) * 1e-6
            if with_step:
                arrays["adam/slots/step"] = np.array([3.0])
    arrays["sgd/eval_output"] = rng.standard_normal((4, 3))
    arrays["adam/eval_output"] = rng.standard_normal((4, 3))
    return arrays


def copy(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value.copy() for key, value in arrays.items()}


def test_identical_sides_pass_and_every_check_has_a_figure():
    reference = side(np.random.default_rng(0))
    result = judge("fp64", reference, copy(reference), list(reference))
    assert result.passed and result.findings == []
    assert {"forward", "forward, stressed", "layers, eval", "adam: state after training",
            "weights round trip (max abs)", "adam: loss curve (3 steps)"} <= set(result.figures)


def test_rounding_noise_passes_and_a_1e8_deviation_fails_in_float64():
    reference = side(np.random.default_rng(0))
    # rounding noise everywhere but in the round trip, which is a copy and must be exact
    noisy = {key: value if key.startswith("roundtrip/") else value * (1 + 1e-14) for key, value in reference.items()}
    assert judge("fp64", reference, noisy, list(reference)).passed
    deviant = copy(reference)
    deviant["eval/act/bn"] = deviant["eval/act/bn"] * (1 + 1e-8)
    result = judge("fp64", reference, deviant, list(reference))
    assert result.findings[0].line().startswith("layer bn (eval)")
    assert judge("fp32", reference, deviant, list(reference)).passed  # why the proof is float64


def test_a_layer_is_named_before_the_outputs_it_moves():
    reference = side(np.random.default_rng(0))
    other = copy(reference)
    other["eval/act/bn"] += 1.0
    other["eval/output"] += 1.0
    other["adam/loss"] = other["adam/loss"] + 1.0
    checks = [finding.check for finding in judge("fp64", reference, other, list(reference)).findings]
    assert checks == ["layer", "output", "loss"]


def test_state_is_judged_against_the_scale_of_its_kind_and_slots_come_first():
    reference = side(np.random.default_rng(0))
    other = copy(reference)
    # a mathematically-zero gradient's m: tiny noise relative to itself, nothing relative to the other m's
    reference["adam/slots/body.weight/m"][0, 0] = 1e-20
    other["adam/slots/body.weight/m"][0, 0] = -1e-20
    assert judge("fp64", reference, other, list(reference)).passed
    other["adam/slots/body.weight/v"] *= 1.01
    other["adam/weights/body.weight"] += 1e-3
    findings = judge("fp64", reference, other, list(reference)).findings
    assert [f.name for f in findings] == ["adam/slots/body.weight/v", "adam/weights/body.weight"][:1]
    assert findings[0].where == "after training"


def test_a_tensor_on_one_side_only_is_named():
    reference = side(np.random.default_rng(0))
    other = copy(reference)
    other["adam/slots/body.weight/vhat"] = other["adam/slots/body.weight/v"]  # amsgrad on one side
    finding = judge("fp64", reference, other, list(reference)).findings[0]
    assert finding.name == "adam/slots/body.weight/vhat only on the target side" and math.isinf(finding.rel)


def test_a_step_count_is_compared_only_where_both_optimizers_keep_one():
    reference = side(np.random.default_rng(0))
    assert judge("fp64", reference, side(np.random.default_rng(0), with_step=False), list(reference)).passed
    other = copy(reference)
    other["adam/slots/step"] = np.array([6.0])  # stepped twice per batch
    assert judge("fp64", reference, other, list(reference)).findings[0].name == "adam/slots/step"


def test_trained_state_is_compared_in_the_weight_maps_normal_form():
    torch_state = {"sgd/weights/lstm.bias_ih_l0": np.array([1.0, 2.0]), "sgd/weights/lstm.bias_hh_l0": np.ones(2)}
    keras_state = {"sgd/weights/lstm.bias_ih_l0": np.array([2.0, 3.0]), "sgd/weights/lstm.bias_hh_l0": np.zeros(2)}
    shared = [(["lstm.bias_ih_l0", "lstm.bias_hh_l0"], "lstm_bias")]
    normal = normal_form(torch_state, "sgd/weights/", shared)
    assert all(np.array_equal(normal[key], keras_state[key]) for key in keras_state)


def test_tolerances_are_the_documented_ones():
    assert TOLERANCES["fp64"].forward == TOLERANCES["fp64"].state == 1e-9
    assert TOLERANCES["fp32"].forward == 1e-4 and TOLERANCES["fp64"].weights == 0.0


def test_stressed_weights_follow_the_stated_rules():
    rng = np.random.default_rng(0)
    linear = rng.uniform(-0.1, 0.1, (64, 16))
    weights = {"fc.weight": linear, "head.weight": linear.copy(), "ln.weight": np.ones(8), "fc.bias": np.zeros(64),
               "bn.running_var": np.ones(8), "conv.weight": rng.standard_normal((4, 3, 3, 3))}
    stressed = stress_weights(weights, seed=0)
    assert np.isclose(np.sqrt(np.mean(stressed["fc.weight"] ** 2)), GAIN / np.sqrt(16))
    assert np.isclose(np.sqrt(np.mean(stressed["conv.weight"] ** 2)), GAIN / np.sqrt(27))
    assert np.array_equal(stressed["fc.weight"], stressed["head.weight"])  # a tied weight stays tied
    assert np.all((stressed["ln.weight"] >= SCALE_LOW) & (stressed["ln.weight"] <= SCALE_HIGH))
    assert np.std(stressed["fc.bias"]) > 0.2 and np.all(stressed["bn.running_var"] > 0)
    again = stress_weights(weights, seed=0)
    assert all(np.array_equal(again[name], stressed[name]) for name in weights)  # both sides compute the same
    features = rng.standard_normal((2, 3)).astype(np.float32)
    assert np.array_equal(stress_inputs(features), features * INPUT_GAIN)
    tokens = np.arange(6).reshape(2, 3)
    assert np.array_equal(stress_inputs(tokens), tokens)


def test_a_side_that_did_not_compute_in_float64_is_named_first():
    reference = side(np.random.default_rng(0))
    other = copy(reference)
    other["eval/output"] = other["eval/output"].astype(np.float32)  # a layer pinned to float32
    finding = judge("fp64", reference, other, list(reference)).findings[0]
    assert finding.check == "dtype" and "target side computed float32, not float64" in finding.where
    assert not any(f.check == "dtype" for f in judge("fp32", reference, other, list(reference)).findings)


def test_a_judgement_is_strict_json_even_with_a_tensor_missing():
    import json

    reference = side(np.random.default_rng(0))
    other = copy(reference)
    del other["sgd/weights/body.weight"]
    data = judge("fp64", reference, other, list(reference)).to_dict()
    text = json.dumps(data, allow_nan=False)  # no Infinity / NaN tokens
    assert data["findings"][0]["rel"] is None and "only on the source side" in text
