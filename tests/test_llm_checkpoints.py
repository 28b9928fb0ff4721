"""Open-weight checkpoints against the reference implementation: tiny random models built and saved by
Hugging Face `transformers` itself (nothing downloaded), loaded into frameduel's torch and TF models.

Logits must equal transformers' (fp32 within 1e-4 relative; fp64 far tighter), and greedy generation
must give exactly transformers' token ids, in both frameworks. Bad checkpoints are one line, exit 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frameduel.checkpoints import open_checkpoint
from frameduel.errors import FrameduelError
from tests.conftest import run_cli
from tests.test_cli import assert_user_error
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

transformers = require_module("transformers")
torch = require_module("torch")
safetensors_torch = require_module("safetensors.torch")

VOCAB = 96
PROMPT = [5, 17, 3, 42, 8]
NEW_TOKENS = 32
# A wide initialisation makes random logits peaked and varied, so greedy decoding wanders through
# the vocabulary instead of settling into a two-token loop that any near-miss model would also produce.
WIDE_INIT = 0.3


def llama_config(**overrides) -> transformers.LlamaConfig:
    settings = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=72, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rope_theta=50000.0,
                    rms_norm_eps=1e-5, initializer_range=WIDE_INIT, tie_word_embeddings=False,
                    bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return transformers.LlamaConfig(**{**settings, **overrides})


def gpt2_config() -> transformers.GPT2Config:
    return transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                   initializer_range=WIDE_INIT, bos_token_id=None, eos_token_id=None)


def save(model, directory: Path, **kwargs) -> Path:
    model.eval()
    model.save_pretrained(directory, **kwargs)
    return directory


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-checkpoints")
    torch.manual_seed(0)
    built = {
        "llama": save(transformers.LlamaForCausalLM(llama_config()), root / "llama"),
        "llama-tied": save(transformers.LlamaForCausalLM(llama_config(tie_word_embeddings=True)), root / "llama-tied"),
        "gpt2": save(transformers.GPT2LMHeadModel(gpt2_config()), root / "gpt2"),
    }
    # The same llama, sharded: model.safetensors.index.json and several files.
    reference = transformers.AutoModelForCausalLM.from_pretrained(built["llama"])
    built["llama-sharded"] = save(reference, root / "llama-sharded", max_shard_size="20KB")
    return built


def reference_model(directory: Path, dtype: torch.dtype):
    return transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).eval()


@pytest.fixture(scope="module")
def token_ids() -> np.ndarray:
    return np.random.default_rng(7).integers(0, VOCAB, size=(2, 24), dtype=np.int64)


@pytest.fixture(scope="module")
def frameduel_logits(checkpoints, token_ids, tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """framework -> '<checkpoint>/<precision>' -> logits, each framework in its own process."""
    tmp = tmp_path_factory.mktemp("llm-logits")
    np.save(tmp / "ids.npy", token_ids)
    logits = {}
    for framework in ("torch", "tf"):
        out = tmp / f"{framework}.npz"
        done = subprocess.run([sys.executable, "-m", "tests.llm_reference", framework, str(out), str(tmp / "ids.npy"),
                               *map(str, checkpoints.values())], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        with np.load(out) as archive:
            logits[framework] = dict(archive)
    return logits


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


# transformers computes Llama's rotary angles, RMSNorm and attention softmax in float32 even in a float64
# model, so its own float64 logits are only float32-accurate; GPT-2 stays float64 throughout.
FP64_TOLERANCE = {"llama": 1e-5, "llama-tied": 1e-5, "llama-sharded": 1e-5, "gpt2": 1e-12}


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("name", ["llama", "llama-tied", "llama-sharded", "gpt2"])
def test_logits_equal_the_reference_implementation(checkpoints, token_ids, frameduel_logits, framework, name):
    for precision, dtype, tolerance in (("fp32", torch.float32, 1e-4), ("fp64", torch.float64, FP64_TOLERANCE[name])):
        with torch.no_grad():
            reference = reference_model(checkpoints[name], dtype)(torch.from_numpy(token_ids)).logits
        reference = reference.reshape(-1, VOCAB).numpy()
        difference = relative_difference(frameduel_logits[framework][f"{name}/{precision}"], reference)
        assert difference <= tolerance, f"{framework} {name} {precision}: {difference:.2e} > {tolerance:g}"


def reference_ids(directory: Path) -> list[int]:
    model = reference_model(directory, torch.float32)
    with torch.no_grad():
        out = model.generate(torch.tensor([PROMPT]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             do_sample=False)
    return out[0, len(PROMPT):].tolist()


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_greedy_generation_gives_the_reference_token_ids(checkpoints, name):
    expected = reference_ids(checkpoints[name])
    assert len(set(expected)) >= 8, f"degenerate reference sequence {expected}: the test would prove little"
    # torch eager, TF eager and TF function (the KV-cache paths both compiled modes share)
    result = run_cli("generate", "--checkpoint", str(checkpoints[name]), "--prompt", ",".join(map(str, PROMPT)),
                     "--new-tokens", str(NEW_TOKENS), "--modes", "eager,function", "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout)["results"]
    assert [(r["framework"], r["mode"]) for r in runs] == [("torch", "eager"), ("tf", "eager"), ("tf", "function")]
    for run in runs:
        assert run["status"] == "ok", run["error"]
        assert run["ids"] == [expected], f"{run['framework']} {run['mode']}"
        assert run["prefill_ms"] > 0 and run["decode_ms_p50"] > 0


# -- Bad checkpoints: refused before any framework starts, in one line that names the problem. --


def rewrite_tensors(directory: Path, change) -> None:
    path = directory / "model.safetensors"
    tensors = safetensors_torch.load_file(path)
    change(tensors)
    safetensors_torch.save_file(tensors, path, metadata={"format": "pt"})


def rewrite_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def pickle_only(directory: Path) -> None:
    (directory / "model.safetensors").unlink()
    torch.save({"weights": torch.zeros(1)}, directory / "pytorch_model.bin")


BAD_CHECKPOINTS = {
    "pickle": (pickle_only, "pickle-based weights (pytorch_model.bin)"),
    "model-type": (lambda d: rewrite_config(d, model_type="bert"), "model_type 'bert', which frameduel cannot load"),
    "missing": (lambda d: rewrite_tensors(d, lambda t: t.pop("model.layers.1.mlp.up_proj.weight")),
                "missing tensor model.layers.1.mlp.up_proj.weight"),
    "extra": (lambda d: rewrite_tensors(d, lambda t: t.update({"model.layers.0.self_attn.q_norm.weight":
                                                               torch.ones(8)})),
              "checkpoint tensor model.layers.0.self_attn.q_norm.weight is not part of"),
    "shape": (lambda d: rewrite_config(d, intermediate_size=80),
              "checkpoint tensor model.layers.0.mlp.down_proj.weight has shape [32, 72], but config.json implies "
              "[32, 80]"),
    "activation": (lambda d: rewrite_config(d, hidden_act="gelu"), "sets hidden_act='gelu'"),
    "rope-scaling": (lambda d: rewrite_config(d, rope_parameters={"rope_type": "yarn", "factor": 4.0}),
                     "rope_type 'yarn'"),
    "config-json": (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
}


@pytest.fixture
def bad_checkpoint(checkpoints, tmp_path, request) -> tuple[Path, str]:
    damage, message = BAD_CHECKPOINTS[request.param]
    directory = tmp_path / request.param
    shutil.copytree(checkpoints["llama"], directory)
    damage(directory)
    open_checkpoint.cache_clear()
    return directory, message


@pytest.mark.parametrize("bad_checkpoint", list(BAD_CHECKPOINTS), indirect=True)
def test_a_bad_checkpoint_is_refused_in_one_line(bad_checkpoint):
    directory, message = bad_checkpoint
    with pytest.raises(FrameduelError) as caught:
        open_checkpoint(directory)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("bad_checkpoint", ["pickle", "missing"], indirect=True)
@pytest.mark.parametrize("command", ["compare", "parity", "generate"])
def test_each_command_exits_2_on_a_bad_checkpoint(bad_checkpoint, command, db_path):
    directory, message = bad_checkpoint
    extra = ["--prompt", "1,2"] if command == "generate" else ["--db", str(db_path)]
    assert_user_error(run_cli(command, "--checkpoint", str(directory), *extra), message)


def test_a_checkpoint_of_another_family_names_the_workload_to_use(checkpoints, db_path):
    assert_user_error(run_cli("compare", "--checkpoint", str(checkpoints["gpt2"]), "--workloads", "llama",
                              "--db", str(db_path)), "is a gpt model; run it with the gpt workload, not llama")


def test_prompt_tokens_outside_the_vocabulary_are_refused(checkpoints):
    assert_user_error(run_cli("generate", "--checkpoint", str(checkpoints["gpt2"]), "--prompt", f"1,{VOCAB}"),
                      f"prompt token {VOCAB} is outside the vocabulary (0..{VOCAB - 1})")
