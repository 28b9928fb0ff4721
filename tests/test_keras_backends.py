"""The third answer: the Keras models of the "tf" framework on Keras' torch and JAX backends
(frameworks keras-torch and keras-jax), measured beside native code and held to native torch."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.test_cli import assert_user_error
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

require_module("jax")

KERAS = ("keras-torch", "keras-jax")


def test_keras_backends_are_measured_beside_native_torch_with_a_best_of_verdict(db_path, cxx_compiler):
    # Train only: Keras' predict path runs in the fork-server test and in parity's forward checks.
    result = run_cli("compare", "--workloads", "mlp", "--size", "tiny", "--tasks", "train",
                     "--frameworks", "torch,keras-torch,keras-jax", "--repeats", "1", "--no-parity", "--json",
                     "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    cells = {(c["spec"]["framework"], c["spec"]["mode"], c["spec"]["task"]): c for c in data["cells"]}
    expected = {(fw, mode, "train") for fw, mode in
                [("torch", "eager"), ("torch", "compile"), ("keras-torch", "eager"), ("keras-torch", "compile"),
                 ("keras-jax", "eager"), ("keras-jax", "jit")]}
    assert set(cells) == expected
    assert all(cell["status"] == "ok" for cell in cells.values()), [c["error"] for c in cells.values()]
    facts = cells[("keras-jax", "jit", "train")]["runtime"]
    assert facts["keras_backend"] == "jax" and facts["precision_policy"] == "float32"
    assert cells[("keras-torch", "eager", "train")]["runtime"]["keras_backend"] == "torch"
    assert cells[("keras-jax", "jit", "train")]["compile_s"] is not None  # jax.jit's first call, apart
    # torch against each Keras backend, then the fastest of the three against the runner-up.
    train = [line for line in data["verdict"] if " train " in line]
    assert sum("keras-torch" in line and "torch " in line for line in train) >= 1
    assert any("best of 3: " in line for line in train)
    labels = {ratio["label"] for ratio in data["ratios"]}
    assert {"keras-jax jit vs keras-jax eager", "keras-torch compile vs keras-torch eager"} <= labels


def test_a_mode_a_backend_cannot_run_is_a_cell_with_its_reason(db_path):
    result = run_cli("compare", "--workloads", "gpt", "--size", "tiny", "--tasks", "generate",
                     "--frameworks", "keras-jax", "--repeats", "1", "--no-parity", "--json", "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    cells = {c["spec"]["mode"]: c for c in json.loads(result.stdout)["cells"]}
    assert cells["eager"]["status"] == "ok"
    assert cells["jit"]["status"] == "unsupported" and "eager mode only" in cells["jit"]["error"]


def test_keras_on_torch_and_jax_is_the_same_model_as_native_torch_in_float64(db_path):
    result = run_cli("parity", "mlp", "--frameworks", "torch,keras-torch,keras-jax", "--json", "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(r["source"], r["target"]) for r in data["directions"]] == [("torch", fw) for fw in KERAS]
    for report in data["directions"]:
        assert report["passed"], report["first_divergence"]
        proof = report["judgements"][0]
        assert proof["precision"] == "fp64"
        assert max(f["rel"] for f in proof["figures"].values()) < 1e-12
    assert set(data["modes"]["judgements"]) == {"torch", *KERAS} and data["modes"]["passed"]


@pytest.mark.parametrize("args, fragment", [
    (("compare", "--frameworks", "torch,keras-tensorflow"), "unknown framework 'keras-tensorflow'; choose from: "
                                                             "torch, tf, keras-torch, keras-jax"),
    (("compare", "--frameworks", "keras-jax", "--modes", "xla"), "keras-jax: eager, jit"),
    (("parity", "mlp", "--frameworks", "tf,keras-jax"), "name torch and at least one of them"),
])
def test_bad_framework_choices_are_one_line(args, fragment, db_path):
    assert_user_error(run_cli(*args, "--db", str(db_path)), fragment)
