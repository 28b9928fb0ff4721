"""frameduel export: every format from both frameworks, gated and benchmarked, through the real CLI.

One module-scoped fixture exports MLP and CNN (size "digits": trained on load_digits, so int8 is
judged by accuracy) from torch and from tf, each in real worker processes; the tests then read the
model repository, the manifests and the results database it left behind, and corrupt copies of the
artefacts to check that the gate rejects them.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from frameduel.export.gate import judge
from frameduel.export.manifest import DEFAULT_FORMATS, read_manifest
from frameduel.export.reference import REFERENCE_FILE, Reference, load_reference, save_reference
from frameduel.export.routes import ROUTES, Route
from frameduel.export.run import new_version_dir, validate_artefact
from frameduel.export.runtimes import check_inputs, load_runtime
from frameduel.store import Store
from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

EXPORTS = [("mlp", "torch"), ("mlp", "tf"), ("cnn", "torch"), ("cnn", "tf")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{(workload, framework): {format: result}}, plus the repository and database they went to."""
    root = tmp_path_factory.mktemp("export")
    out, db = root / "models", root / "results.sqlite"

    def export(workload: str, framework: str) -> dict:
        proc = run_cli("export", workload, "--framework", framework, "--out", str(out), "--db", str(db),
                       "--epochs", "2", "--threads", "1", "--bench-seconds", "0.2", "--json", timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return {r["format"]: r for r in json.loads(proc.stdout)["results"]}

    # Two exports at a time, one thread each, on the two cores here: each model has its own names in
    # the repository and the database takes concurrent writers; the benchmark figures are not checked.
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {pair: pool.submit(export, *pair) for pair in EXPORTS}
    return {"results": {pair: future.result() for pair, future in done.items()}, "out": out, "db": db}


def artefact_dir(exported: dict, workload: str, framework: str, fmt: str) -> Path:
    return Path(exported["results"][workload, framework][fmt]["directory"])


@pytest.mark.parametrize(("workload", "framework"), EXPORTS)
def test_every_format_passes_its_gate_or_is_unsupported_with_a_reason(exported, workload, framework):
    results = exported["results"][workload, framework]
    assert list(results) == list(DEFAULT_FORMATS)
    for fmt, result in results.items():
        if isinstance(ROUTES[framework][fmt], Route):
            assert result["status"] == "valid", (fmt, result["reason"])
            validation = result["manifest"]["validation"]
            assert validation["batch_sizes"] == [1, 2, 32]
            assert validation["metric"]["accuracy_drop"] <= 0.01
            bench = result["benchmark"]
            assert bench["latency_ms_p50"] > 0 and bench["latency_ms_p99"] >= bench["latency_ms_p50"]
            assert bench["throughput_sps"] > 0 and bench["throughput_batch"] == 32
            assert bench["size_bytes"] > 0 and bench["load_s"] > 0
        else:
            assert result["status"] == "unsupported" and result["reason"] == ROUTES[framework][fmt]


def test_repository_layout_and_manifests(exported):
    directory = artefact_dir(exported, "cnn", "tf", "tflite-int8-full")
    assert directory == exported["out"] / "cnn-digits-tf-tflite-int8-full" / "1"
    manifest = read_manifest(directory)
    assert (directory / manifest.artefact).is_file() and (directory / REFERENCE_FILE).is_file()
    # Every artefact takes the canonical layout (CNN: NCHW), float32 I/O even when fully int8 inside.
    assert [(t.name, t.shape, t.dtype) for t in manifest.inputs] == [("x", (None, 1, 8, 8), "float32")]
    assert [(t.name, t.shape, t.dtype) for t in manifest.outputs] == [("logits", (None, 10), "float32")]
    assert manifest.quantization["activations"] == "int8" and manifest.quantization["io"].startswith("float32")
    assert manifest.validation.valid and manifest.source["train"]["epochs"] == 2
    assert manifest.source["weights_sha256"] and manifest.source["export_id"].startswith("export-")
    onnx = read_manifest(artefact_dir(exported, "mlp", "torch", "onnx"))
    assert onnx.opset and onnx.batch_sizes is None and onnx.max_batch == 32


def test_torch_twin_tflite_matches_the_torch_source(exported):
    """torch -> TFLite goes through the Keras twin; its gate compares against the torch model."""
    manifest = read_manifest(artefact_dir(exported, "cnn", "torch", "tflite"))
    assert manifest.framework == "torch" and manifest.source["converter"] == "tf"
    assert manifest.validation.max_rel_diff <= 1e-4


def test_results_are_stored(exported):
    stored = {r.key: r for r in Store(exported["db"]).results("export")}
    assert len(stored) == len(EXPORTS) * len(DEFAULT_FORMATS)
    data = stored["mlp-digits-torch-onnx"].data
    assert data["status"] == "valid" and data["benchmark"]["runtime"] == "onnxruntime"
    assert data["runtime_packages"]["onnxruntime"] and data["request"]["max_batch"] == 32
    assert stored["mlp-digits-tf-torch-export"].data["status"] == "unsupported"


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_loaded_runtime_serves_every_accepted_batch(exported, fmt):
    """The serving contract: load_runtime + infer at any batch 1..max_batch, checked inputs beyond."""
    directory = artefact_dir(exported, "mlp", "torch", fmt)
    runtime = load_runtime(directory, threads=1)
    reference = load_reference(directory / REFERENCE_FILE)
    for batch in (1, 5, 32):
        inputs = reference.digits[0][:batch]
        assert runtime.infer({"x": inputs})["logits"].shape == (batch, 10)
    with pytest.raises(Exception, match="batch size 33 is not accepted"):
        check_inputs(runtime.manifest, {"x": np.zeros((33, 64), np.float32)})


def corrupt_copy(exported: dict, tmp_path: Path, workload: str, framework: str, fmt: str) -> tuple[Path, Path]:
    """A copy of an artefact's version directory, and the path of its artefact inside it."""
    source = artefact_dir(exported, workload, framework, fmt)
    copy = tmp_path / fmt
    shutil.copytree(source, copy)
    return copy, copy / read_manifest(copy).artefact


def test_gate_rejects_a_truncated_onnx(exported, tmp_path):
    directory, path = corrupt_copy(exported, tmp_path, "mlp", "torch", "onnx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    validation, bench, _ = validate_artefact(directory, budget=None, timeout_s=120)
    assert not validation.valid and validation.reason.startswith("cannot load") and bench is None


def test_gate_rejects_a_tflite_with_flipped_weight_bytes(exported, tmp_path):
    """Flipped bytes either break the flatbuffer (cannot load) or change the outputs (diff too large)."""
    directory, path = corrupt_copy(exported, tmp_path, "mlp", "tf", "tflite")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(b ^ 0x5A for b in data[middle : middle + 4096])  # inside the weights
    path.write_bytes(bytes(data))
    validation, *_ = validate_artefact(directory, budget=None, timeout_s=120)
    assert not validation.valid and validation.reason


def test_pt2_loader_refuses_pickled_payloads(exported, tmp_path):
    """A .pt2 whose weights are marked use_pickle would be unpickled by torch.export.load: refused first."""
    directory, path = corrupt_copy(exported, tmp_path, "mlp", "torch", "torch-export")
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    config_name = next(name for name in entries if name.endswith("_weights_config.json"))
    config = json.loads(entries[config_name])
    next(iter(config["config"].values()))["use_pickle"] = True
    entries[config_name] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    validation, *_ = validate_artefact(directory, budget=None, timeout_s=120)
    assert not validation.valid and "pickled object" in validation.reason


def test_int8_gate_is_decided_by_the_task_metric(exported, tmp_path):
    """A source that scores 100% makes the int8 artefact's (real) accuracy a drop of > 1 point: rejected."""
    directory, _ = corrupt_copy(exported, tmp_path, "mlp", "tf", "tflite-int8")
    reference = load_reference(directory / REFERENCE_FILE)
    inputs, labels, _ = reference.digits
    perfect = np.eye(10, dtype=np.float32)[labels] * 10  # logits that are always right
    save_reference(directory / REFERENCE_FILE, Reference(reference.batches, (inputs, labels, perfect)))
    validation = judge(load_runtime(directory), load_reference(directory / REFERENCE_FILE))
    assert not validation.valid and validation.reason.startswith("accuracy drop")
    assert validation.metric["source_accuracy"] == 1.0 and "max_accuracy_drop" in validation.tolerance


def test_exporting_again_adds_the_next_version(tmp_path):
    model_dir = tmp_path / "mlp-digits-torch-onnx"
    assert [new_version_dir(model_dir).name for _ in range(3)] == ["1", "2", "3"]


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--framework", "torch"], "unknown workload 'nope'"),
    (["mlp", "--framework", "jax"], "unknown framework 'jax'"),
    (["mlp", "--framework", "torch", "--formats", "onnx,coreml"], "unknown format 'coreml'"),
    (["gpt", "--framework", "torch", "--size", "digits"], "has no digits model"),
    (["mlp", "--framework", "torch", "--max-batch", "1"], "--max-batch must be >= 2"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    proc = run_cli("export", *args, "--out", str(tmp_path / "models"), "--db", str(tmp_path / "db.sqlite"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "models").exists()
