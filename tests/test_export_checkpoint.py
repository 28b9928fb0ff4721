"""frameduel export --checkpoint: a Hugging Face checkpoint's forward pass (token ids in, logits out) as
deployment artefacts, gated against the source model loaded from it, through the real CLI.

Tiny random checkpoints are built and saved by `transformers` itself (nothing downloaded), as in
tests/test_llm_checkpoints.py; each artefact is then also run here, outside frameduel's gate, and
held to the logits of `transformers`' own model of the checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from frameduel.export.manifest import read_manifest
from frameduel.export.reference import REFERENCE_FILE, load_reference
from frameduel.export.runtimes import load_runtime
from frameduel.store import Store
from tests.conftest import run_cli
from tests.test_cli import assert_user_error
from tests.test_llm_checkpoints import (
    BAD_CHECKPOINTS,
    VOCAB,
    gpt2_config,
    llama_config,
    reference_model,
    relative_difference,
    save,
)
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

transformers = require_module("transformers")
torch = require_module("torch")

CONTEXT = 64  # the configs' max_position_embeddings / n_positions: the artefacts' fixed sequence length
# (checkpoint directory, source framework, formats): each family from one framework, fast formats only.
EXPORTS = {"gpt2": ("torch", "onnx,torch-export"), "tiny-llama": ("tf", "tflite")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The checkpoints, and what exporting each left behind: {name: {format: result}}, repository, database."""
    root = tmp_path_factory.mktemp("export-checkpoint")
    torch.manual_seed(0)
    checkpoints = {"gpt2": save(transformers.GPT2LMHeadModel(gpt2_config()), root / "gpt2"),
                   "tiny-llama": save(transformers.LlamaForCausalLM(llama_config()), root / "tiny-llama")}
    out, db = root / "models", root / "results.sqlite"
    results = {}
    for name, (framework, formats) in EXPORTS.items():
        # No workload argument: it follows the checkpoint's family, as on compare, parity and generate.
        proc = run_cli("export", "--framework", framework, "--checkpoint", str(checkpoints[name]), "--formats",
                       formats, "--max-batch", "4", "--out", str(out), "--db", str(db), "--threads", "1",
                       "--bench-seconds", "0.1", "--json", timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results[name] = {r["format"]: r for r in json.loads(proc.stdout)["results"]}
    return {"checkpoints": checkpoints, "results": results, "out": out, "db": db}


@pytest.mark.parametrize(("name", "workload", "fmt"), [("gpt2", "gpt", "onnx"), ("gpt2", "gpt", "torch-export"),
                                                       ("tiny-llama", "llama", "tflite")])
def test_artefacts_pass_the_gate_and_name_their_checkpoint(exported, name, workload, fmt):
    result = exported["results"][name][fmt]
    framework = EXPORTS[name][0]
    assert result["status"] == "valid", result["reason"]
    assert result["size"] == f"ckpt:{name}" and result["benchmark"]["throughput_sps"] > 0
    directory = Path(result["directory"])
    assert directory == exported["out"] / f"{workload}-ckpt-{name}-{framework}-{fmt}" / "1"
    manifest = read_manifest(directory)
    assert manifest.workload == workload and manifest.size == f"ckpt:{name}"
    checkpoint = manifest.source["checkpoint"]
    assert checkpoint["directory"] == name and checkpoint["path"] == str(exported["checkpoints"][name])
    assert checkpoint["config"]["vocab_size"] == VOCAB and checkpoint["parameters"] > 0
    # Token ids of the checkpoint's context in, one row of logits per position out.
    assert [(t.name, t.shape, t.dtype) for t in manifest.inputs] == [("x", (None, CONTEXT), "int64")]
    assert [(t.name, t.shape, t.dtype) for t in manifest.outputs] == [("logits", (None, CONTEXT, VOCAB), "float32")]
    assert manifest.validation.batch_sizes == (1, 2, 4) and manifest.validation.max_rel_diff <= 1e-4


@pytest.mark.parametrize(("name", "fmt"), [("gpt2", "onnx"), ("tiny-llama", "tflite")])
def test_artefact_logits_equal_transformers_on_the_checkpoint(exported, name, fmt):
    """Beyond the gate (which compares with frameduel's own model): the reference implementation's logits."""
    directory = Path(exported["results"][name][fmt]["directory"])
    ids, _ = load_reference(directory / REFERENCE_FILE).batches[4]
    logits = load_runtime(directory, threads=1).infer({"x": ids})["logits"]
    with torch.no_grad():
        expected = reference_model(exported["checkpoints"][name], torch.float32)(torch.from_numpy(ids)).logits.numpy()
    assert logits.shape == expected.shape == (4, CONTEXT, VOCAB)
    assert relative_difference(logits, expected) <= 1e-4
    assert np.array_equal(logits.argmax(-1), expected.argmax(-1))


def test_results_are_stored_with_the_checkpoint(exported):
    stored = {r.key: r.data for r in Store(exported["db"]).results("export")}
    data = stored["llama-ckpt-tiny-llama-tf-tflite"]
    assert data["status"] == "valid" and data["request"]["checkpoint"] == str(exported["checkpoints"]["tiny-llama"])
    assert set(stored) == {"gpt-ckpt-gpt2-torch-onnx", "gpt-ckpt-gpt2-torch-torch-export",
                           "llama-ckpt-tiny-llama-tf-tflite"}


@pytest.mark.parametrize("case", ["missing", "pickle", "other-family"])
def test_a_bad_checkpoint_exits_2_in_one_line_before_any_worker(exported, tmp_path, case):
    directory = tmp_path / "bad"
    shutil.copytree(exported["checkpoints"]["tiny-llama"], directory)
    if case == "other-family":
        workload, message = ["gpt"], "checkpoint 'bad' is a llama model; run it with the llama workload, not gpt"
    else:
        damage, message = BAD_CHECKPOINTS[case]
        damage(directory)
        workload = []
    proc = run_cli("export", *workload, "--framework", "torch", "--checkpoint", str(directory),
                   "--out", str(tmp_path / "models"), "--db", str(tmp_path / "db.sqlite"))
    assert_user_error(proc, message)
    assert not (tmp_path / "models").exists()
