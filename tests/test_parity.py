"""Same weights, same model: float64 parity across frameworks, and proof that a wrong mapping is caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frameduel.parity.check import ParityReport, ParityRequest, judge_direction, spawn_parity_job
from frameduel.store import Store
from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

WORKLOADS = ["mlp", "cnn", "transformer", "gpt", "llama", "lstm"]
# Parity's default LoRA check adapts every Linear LoRA may target, at rank 4 and alpha 8.
LORA_TASKS = {"gpt": "finetune-r4a8-c_attn+c_proj+c_fc",
              "llama": "finetune-r4a8-q_proj+k_proj+v_proj+o_proj+gate_proj+up_proj+down_proj"}


# The modes check (torch.compile, tf.function, XLA against eager) of every workload costs ~3 minutes
# here: it runs for a dense, a convolutional and an attention model with LoRA; the others prove float64.
MODES_CHECKED = ("mlp", "cnn", "gpt")


@pytest.mark.parametrize("workload", WORKLOADS)
def test_parity_holds_both_ways_in_float64_and_every_mode(workload, db_path, cxx_compiler):
    modes_flag = [] if workload in MODES_CHECKED else ["--no-modes"]
    result = run_cli("parity", workload, "--size", "tiny", "--json", "--db", str(db_path), *modes_flag)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    output = json.loads(result.stdout)
    stored = {record.key: record.data for record in Store(db_path).results("parity")}
    prefixes = [f"{workload}/tiny"] + ([f"{workload}/tiny/{LORA_TASKS[workload]}"] if workload in LORA_TASKS else [])
    directions = ("torch-to-tf", "tf-to-torch")
    assert set(stored) == {f"{prefix}/{direction}" for prefix in prefixes for direction in directions}
    assert [report["task"] for report in output["directions"]] == [
        task for task in ["train", LORA_TASKS.get(workload)] if task for _ in range(2)]
    for report in output["directions"]:
        assert report["passed"] and report["first_divergence"] is None, report["first_divergence"]
        assert report["proven"] == ["float64", "stressed weights", "post-training state"]
        proof, fp32 = report["judgements"]
        assert (proof["precision"], fp32["precision"]) == ("fp64", "fp32") and report["informational"] == ["fp32"]
        for label, figure in proof["figures"].items():
            assert figure["rel"] <= figure["tolerance"] <= 1e-9, label
        labels = set(proof["figures"])
        assert {"forward, stressed", "adam: state after step 1", "adam: state after training",
                "adam: eval after training", "layers, stressed train step"} <= labels
        assert all(proof["layers"][name] for name in ("eval", "train step", "stressed", "stressed train step"))
        sgd = proof["loss_curves"]["sgd"]["reference"]
        assert len(sgd) == 10 and sgd[0] != sgd[-1]  # training really moved
        assert fp32["figures"]["forward"]["rel"] <= 1e-4  # the fp32 noise level, shown beside the proof
    if workload not in MODES_CHECKED:
        return
    modes = output["modes"]
    assert modes["passed"], modes["failures"]
    assert all(m["passed"] for m in output["modes_by_task"]), [m["failures"] for m in output["modes_by_task"]]
    assert {fw: sorted(m) for fw, m in modes["judgements"].items()} == {"torch": ["compile"], "tf": ["function", "xla"]}
    assert Store(db_path).results("parity-modes")[0].data["passed"]


def transfer_with_a_wrong_mapping(tmp_path: Path, workload: str, corrupt) -> ParityReport:
    """torch initialises; its weights reach TF through a mapping with one mistake in it; compare."""
    request = ParityRequest(workload, directions=("torch-to-tf",), steps=3, check_modes=False)
    common = {"precisions": ["fp64", "fp32"], "steps": 3}
    torch_side = spawn_parity_job("side", "torch", request.spec("torch"), tmp_path, 300, weight_sets={"torch": None},
                                  **common)
    assert torch_side.ok, torch_side
    with np.load(tmp_path / "init-torch.npz") as archive:
        wrong = {name: corrupt(name.removeprefix("weights/"), archive[name]) for name in archive.files}
    np.savez(tmp_path / "wrong.npz", **wrong)
    tf_side = spawn_parity_job("side", "tf", request.spec("tf"), tmp_path, 300,
                               weight_sets={"torch": str(tmp_path / "wrong.npz")}, **common)
    assert tf_side.ok, tf_side
    return judge_direction(request, "torch-to-tf", tmp_path, tf_side.data["shared_weights"])


def layers_before_first_are_ok(report: ParityReport, label: str = "eval") -> bool:
    layers = report.proof.layers[label]
    first = next(i for i, layer in enumerate(layers) if not layer.ok)
    return all(layer.ok for layer in layers[:first])


def test_an_untransposed_dense_kernel_is_caught_and_located(tmp_path):
    # body.2 is the square hidden->hidden Linear (32x32 at tiny), so a missing transpose still fits.
    report = transfer_with_a_wrong_mapping(tmp_path, "mlp", lambda name, v: v.T if name == "body.2.weight" else v)
    assert not report.passed
    assert report.findings[0].line().startswith("layer body.3 (eval)")  # the ReLU after the mis-mapped Linear
    assert layers_before_first_are_ok(report)
    assert any(finding.check == "weights" and finding.name == "body.2.weight" for finding in report.findings)


def test_a_spatially_flipped_conv_kernel_is_caught_and_located(tmp_path):
    def swap_kernel_axes(name, value):  # OIHW read as OIWH: the classic conv-port mistake
        return value.transpose(0, 1, 3, 2) if name == "blocks.0.conv2.weight" else value

    report = transfer_with_a_wrong_mapping(tmp_path, "cnn", swap_kernel_axes)
    assert report.findings[0].line().startswith("layer blocks.0.conv2 (eval)")
    assert layers_before_first_are_ok(report)


def test_swapped_query_and_key_projections_are_caught_and_located(tmp_path):
    # The fused qkv Linear (3C, C) read as k, q, v: both thirds have the same shape, so it loads silently.
    def swap_q_and_k(name, value):
        if name != "blocks.0.attn.qkv.weight":
            return value
        q, k, v = np.split(value, 3, axis=0)
        return np.concatenate([k, q, v], axis=0)

    report = transfer_with_a_wrong_mapping(tmp_path, "transformer", swap_q_and_k)
    assert report.findings[0].line().startswith("layer blocks.0.attn.qkv (eval)")
    assert layers_before_first_are_ok(report)


def test_swapped_lstm_gates_are_caught(tmp_path):
    # Input and forget gates exchanged along the 4H axis: the gate-order slip of LSTM ports.
    def swap_input_and_forget_gates(name, value):
        if name != "lstm.weight_ih_l0":
            return value
        i, f, g, o = np.split(value, 4, axis=0)
        return np.concatenate([f, i, g, o], axis=0)

    report = transfer_with_a_wrong_mapping(tmp_path, "lstm", swap_input_and_forget_gates)
    # torch's nn.LSTM returns a tuple and is not probed, so the first layer after it takes the blame.
    assert [(layer.name, layer.ok) for layer in report.proof.layers["eval"]] == [("embed", True), ("head", False)]
    assert report.findings[0].line().startswith("layer head (eval)")


def test_a_weights_file_missing_a_tensor_is_reported_by_name(tmp_path):
    request = ParityRequest("mlp", check_modes=False)
    np.savez(tmp_path / "partial.npz", **{"weights/head.weight": np.zeros((4, 32), np.float32)})
    envelope = spawn_parity_job("side", "tf", request.spec("tf"), tmp_path, 300,
                                weight_sets={"torch": str(tmp_path / "partial.npz")}, precisions=["fp64"], steps=1)
    assert envelope.status == "failed" and "missing body.0.bias" in envelope.error


def test_parity_cli_rejects_bad_input_in_one_line(tmp_path):
    for args, message in [(("nope",), "unknown workload 'nope'"),
                          (("mlp", "--direction", "sideways"), "unknown direction 'sideways'"),
                          (("mlp", "--size", "huge"), "unknown size 'huge'"),
                          (("mlp", "--steps", "0"), "--steps and --batch-size must be >= 1")]:
        result = run_cli("parity", *args, "--db", str(tmp_path / "db.sqlite"))
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_plugin_without_a_weight_map_is_refused_with_the_fix(tmp_path):
    package = tmp_path / "noparity"
    package.mkdir()
    example = Path(__file__).resolve().parents[1] / "examples" / "softmax_regression"
    for name in ("__init__.py", "model_torch.py"):
        (package / name).write_text((example / name).read_text().replace("softmax_regression", "noparity"))
    source = (example / "model_tf.py").read_text()
    (package / "model_tf.py").write_text(source.split("def weight_map")[0])
    result = run_cli("parity", "noparity", "--db", str(tmp_path / "db.sqlite"), env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert "does not support parity" in result.stderr and "weight_map, probe_points" in result.stderr
