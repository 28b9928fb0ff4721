"""Same weights, same model: parity across frameworks, and proof that a wrong mapping is caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frameduel.parity.check import ParityReport, Tolerances, compare_sides, load_side, run_side
from frameduel.spec import RunSpec
from frameduel.store import Store
from tests.conftest import run_cli

WORKLOADS = ["mlp", "cnn", "transformer", "gpt", "lstm"]


@pytest.mark.parametrize("workload", WORKLOADS)
def test_parity_holds_both_ways(workload, db_path):
    result = run_cli("parity", workload, "--size", "tiny", "--json", "--db", str(db_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    stored = {record.key: record.data for record in Store(db_path).results("parity")}
    assert set(stored) == {f"{workload}/tiny/torch-to-tf", f"{workload}/tiny/tf-to-torch"}
    for report in json.loads(result.stdout):
        assert report["passed"], report
        assert report["weights_max_abs"] == 0.0
        assert report["forward_rel"] <= 1e-4
        assert set(report["loss_rel"]) == {"sgd", "adam"} and max(report["loss_rel"].values()) <= 1e-4
        assert all(len(curve) == 10 for curve in report["loss_source"].values())
        assert report["loss_source"]["sgd"][0] != report["loss_source"]["sgd"][-1]  # training really moved
        assert report["layers"] and report["first_divergent_layer"] is None


def transfer_with_a_wrong_mapping(tmp_path: Path, workload: str, corrupt) -> ParityReport:
    """torch exports; the weights reach TF through a mapping with one mistake in it; compare."""
    spec = {fw: RunSpec(workload=workload, framework=fw, mode="eager", task="train", size="tiny", batch_size=8)
            for fw in ("torch", "tf")}
    assert run_side(spec["torch"], 3, tmp_path, None, 300)["status"] == "ok"
    source = load_side(tmp_path, "torch")
    wrongly_mapped = {name: corrupt(name, value) for name, value in source.items() if name.startswith("weights/")}
    np.savez(tmp_path / "wrong.npz", **wrongly_mapped)
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    manifest = run_side(spec["tf"], 3, target_dir, tmp_path / "wrong.npz", 300)
    assert manifest["status"] == "ok", manifest
    report = ParityReport(workload=workload, size="tiny", source="torch", target="tf", tolerances=Tolerances())
    compare_sides(report, source, load_side(target_dir, "tf"), list(source_activation_order(source)))
    return report


def source_activation_order(arrays: dict[str, np.ndarray]) -> list[str]:
    return [name.removeprefix("act/") for name in arrays if name.startswith("act/")]


def test_an_untransposed_dense_kernel_is_caught_and_located(tmp_path):
    # body.2 is the square hidden->hidden Linear (32x32 at tiny), so a missing transpose still fits.
    def forget_transpose(name, value):
        return value.T if name == "weights/body.2.weight" else value

    report = transfer_with_a_wrong_mapping(tmp_path, "mlp", forget_transpose)
    assert not report.passed and not report.forward_ok and not report.loss_ok
    assert report.weights_max_abs > 0
    assert report.first_divergent_layer.name == "body.3"  # the ReLU right after the mis-mapped Linear
    assert all(layer.ok for layer in report.layers[: report.layers.index(report.first_divergent_layer)])


def test_a_spatially_flipped_conv_kernel_is_caught_and_located(tmp_path):
    def swap_kernel_axes(name, value):  # OIHW read as OIWH: the classic conv-port mistake
        return value.transpose(0, 1, 3, 2) if name == "weights/blocks.0.conv2.weight" else value

    report = transfer_with_a_wrong_mapping(tmp_path, "cnn", swap_kernel_axes)
    assert not report.passed
    assert report.first_divergent_layer.name == "blocks.0.conv2"


def test_swapped_query_and_key_projections_are_caught_and_located(tmp_path):
    # The fused qkv Linear (3C, C) read as k, q, v: both thirds have the same shape, so it loads silently.
    def swap_q_and_k(name, value):
        if name != "weights/blocks.0.attn.qkv.weight":
            return value
        q, k, v = np.split(value, 3, axis=0)
        return np.concatenate([k, q, v], axis=0)

    report = transfer_with_a_wrong_mapping(tmp_path, "transformer", swap_q_and_k)
    assert not report.passed and not report.forward_ok
    assert report.first_divergent_layer.name == "blocks.0.attn.qkv"
    assert all(layer.ok for layer in report.layers[: report.layers.index(report.first_divergent_layer)])
    assert not next(layer for layer in report.layers if layer.name == "blocks.0.attn").ok


def test_swapped_lstm_gates_are_caught(tmp_path):
    # Input and forget gates exchanged along the 4H axis: the gate-order slip of LSTM ports.
    def swap_input_and_forget_gates(name, value):
        if name != "weights/lstm.weight_ih_l0":
            return value
        i, f, g, o = np.split(value, 4, axis=0)
        return np.concatenate([f, i, g, o], axis=0)

    report = transfer_with_a_wrong_mapping(tmp_path, "lstm", swap_input_and_forget_gates)
    assert not report.passed and not report.forward_ok
    # torch's nn.LSTM returns a tuple and is not probed, so the first layer after it takes the blame.
    assert [(layer.name, layer.ok) for layer in report.layers] == [("embed", True), ("head", False)]


def test_a_weights_file_missing_a_tensor_is_reported_by_name(tmp_path):
    spec = RunSpec(workload="mlp", framework="torch", mode="eager", task="train", size="tiny")
    assert run_side(spec, 1, tmp_path, None, 300)["status"] == "ok"
    arrays = load_side(tmp_path, "torch")
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "weights/head.bias"})
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    tf_spec = RunSpec(workload="mlp", framework="tf", mode="eager", task="train", size="tiny")
    manifest = run_side(tf_spec, 1, target_dir, tmp_path / "partial.npz", 300)
    assert manifest["status"] == "failed" and "missing head.bias" in manifest["error"]


def test_parity_cli_rejects_unknown_workload_and_direction():
    result = run_cli("parity", "nope")
    assert result.returncode == 2 and "unknown workload 'nope'" in result.stderr
    result = run_cli("parity", "mlp", "--direction", "sideways")
    assert result.returncode == 2 and "unknown direction 'sideways'" in result.stderr
