"""LoRA fine-tuning: PEFT on the torch side, Keras' built-in LoRA on the TF side, one adapter format.

A tiny Llama checkpoint built by transformers (nothing downloaded) is fine-tuned with `frameduel
finetune` in both frameworks from the same start; then each adapter is loaded where the other
framework's users would load it: the TF-trained one through PEFT into transformers' LlamaForCausalLM,
the PEFT-written one into frameduel's Keras model. Logits must agree, merged must equal unmerged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frameduel.checkpoints.adapters import CONFIG_FILE, WEIGHTS_FILE, merge_adapter, read_adapter, save_adapter
from frameduel.errors import FrameduelError
from frameduel.spec import LoraSettings, RunSpec
from tests.conftest import run_cli
from tests.test_cli import assert_user_error
from tests.test_llm_checkpoints import VOCAB, llama_config, relative_difference, save
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

transformers = require_module("transformers")
peft = require_module("peft")
torch = require_module("torch")

RANK, ALPHA = 4, 8.0  # alpha / r = 2: a scaling left at Keras' default (alpha = r) would show
TARGETS = ("q_proj", "v_proj", "down_proj")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    return save(transformers.LlamaForCausalLM(llama_config()), tmp_path_factory.mktemp("lora") / "llama")


@pytest.fixture(scope="module")
def finetuned(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("adapters")
    # A high learning rate, so a few steps move B far from zero and the adapters change the logits.
    done = run_cli("finetune", "--checkpoint", str(checkpoint), "--steps", "4", "--batch-size", "2", "--lr", "0.05",
                   "--lora-rank", str(RANK), "--lora-alpha", str(ALPHA), "--lora-targets", ",".join(TARGETS),
                   "--threads", "1", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def token_ids() -> np.ndarray:
    return np.random.default_rng(3).integers(0, VOCAB, size=(2, 12), dtype=np.int64)


def adapter_dir(finetuned: dict, framework: str) -> Path:
    return Path(next(r["adapter_dir"] for r in finetuned["results"] if r["spec"]["framework"] == framework))


def frameduel_logits(framework: str, checkpoint: Path, adapter: Path, token_ids: np.ndarray, tmp: Path) -> dict:
    """adapted/<precision> and merged/<precision> logits from tests/adapter_logits.py, in its own process."""
    np.save(tmp / "ids.npy", token_ids)
    out = tmp / f"{framework}-{adapter.name}.npz"
    done = subprocess.run([sys.executable, "-m", "tests.adapter_logits", framework, str(out), str(tmp / "ids.npy"),
                           str(checkpoint), str(adapter)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as archive:
        return dict(archive)


def peft_logits(checkpoint: Path, adapter: Path, token_ids: np.ndarray, dtype=torch.float32) -> np.ndarray:
    """transformers' LlamaForCausalLM with the adapter loaded by PEFT, as a PEFT user would."""
    base = transformers.LlamaForCausalLM.from_pretrained(checkpoint, dtype=dtype)
    model = peft.PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(token_ids)).logits
    return logits.reshape(-1, logits.shape[-1]).numpy()


def lora_parameters(config) -> int:
    """r (in + out) per adapted module per layer, from the architecture: what both sides must train."""
    kv = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    widths = {"q_proj": (config.hidden_size, config.hidden_size), "v_proj": (config.hidden_size, kv),
              "down_proj": (config.intermediate_size, config.hidden_size)}
    return config.num_hidden_layers * sum(RANK * (fan_in + fan_out) for fan_in, fan_out in
                                          (widths[t] for t in TARGETS))


def test_both_frameworks_train_the_same_adapters_from_the_same_start(finetuned):
    torch_run, tf_run = (next(r for r in finetuned["results"] if r["spec"]["framework"] == fw)
                         for fw in ("torch", "tf"))
    assert torch_run["status"] == tf_run["status"] == "ok"
    assert torch_run["trainable_parameters"] == tf_run["trainable_parameters"] == lora_parameters(llama_config())
    assert torch_run["parameters"] == tf_run["parameters"]
    assert finetuned["loss_max_rel_diff"] < 1e-4  # fp32, 4 Adam steps at lr 0.05


def test_both_adapters_are_in_peft_format_with_the_same_tensors(finetuned):
    names, configs = {}, {}
    for framework in ("torch", "tf"):
        directory = adapter_dir(finetuned, framework)
        configs[framework] = json.loads((directory / CONFIG_FILE).read_text())
        settings, weights = read_adapter(directory)
        assert settings == LoraSettings(RANK, ALPHA, tuple(sorted(TARGETS))) or set(settings.targets) == set(TARGETS)
        names[framework] = {name: value.shape for name, value in weights.items()}
        assert (directory / WEIGHTS_FILE).stat().st_size > 0
    assert names["torch"] == names["tf"]
    assert "model.layers.1.mlp.down_proj.lora_B.weight" in names["tf"]
    for key in ("peft_type", "r", "lora_alpha", "use_dora", "use_rslora", "bias"):
        assert configs["torch"][key] == configs["tf"][key], key


def test_a_tf_trained_adapter_loaded_by_peft_into_transformers_gives_the_same_logits(
        finetuned, checkpoint, token_ids, tmp_path):
    adapter = adapter_dir(finetuned, "tf")
    ours = frameduel_logits("tf", checkpoint, adapter, token_ids, tmp_path)
    theirs = peft_logits(checkpoint, adapter, token_ids)
    base = transformers.LlamaForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        untuned = base(torch.from_numpy(token_ids)).logits.reshape(theirs.shape).numpy()
    assert relative_difference(theirs, untuned) > 1e-3  # the adapter really changes the model
    assert relative_difference(ours["adapted/fp32"], theirs) < 1e-4
    # transformers keeps RoPE, RMSNorm and softmax in float32 even in a float64 model (see the checkpoint tests).
    assert relative_difference(ours["adapted/fp64"], peft_logits(checkpoint, adapter, token_ids, torch.float64)) < 1e-5


def test_a_peft_written_adapter_loads_into_the_keras_model(finetuned, checkpoint, token_ids, tmp_path):
    adapter = adapter_dir(finetuned, "torch")
    ours = frameduel_logits("tf", checkpoint, adapter, token_ids, tmp_path)
    assert relative_difference(ours["adapted/fp32"], peft_logits(checkpoint, adapter, token_ids)) < 1e-4


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_merging_an_adapter_gives_the_unmerged_outputs(finetuned, checkpoint, token_ids, tmp_path, framework):
    logits = frameduel_logits(framework, checkpoint, adapter_dir(finetuned, "tf"), token_ids, tmp_path)
    assert relative_difference(logits["merged/fp64"], logits["adapted/fp64"]) < 1e-12
    assert relative_difference(logits["merged/fp32"], logits["adapted/fp32"]) < 1e-5


def test_the_merge_equals_peft_merge_and_unload(finetuned, checkpoint):
    adapter = adapter_dir(finetuned, "torch")
    settings, weights = read_adapter(adapter)
    base = transformers.LlamaForCausalLM.from_pretrained(checkpoint, dtype=torch.float64)
    state = {k: v.numpy().copy() for k, v in base.state_dict().items()}  # merge_and_unload works in place
    ours = merge_adapter({**state, **{k: v.astype(np.float64) for k, v in weights.items()}}, settings)
    theirs = peft.PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().state_dict()
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        np.testing.assert_allclose(ours[name], theirs[name].numpy(), rtol=0, atol=1e-12)
        assert np.abs(ours[name] - state[name]).max() > 0  # the merge moved it


# -- Bad adapters: one line each. --


def write_adapter(directory: Path, config: dict, tensors: dict | None = None) -> Path:
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    if tensors is not None:
        save_file(tensors, str(directory / WEIGHTS_FILE))
    return directory


GOOD_CONFIG = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}
A_NAME = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
B_NAME = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
GOOD_TENSORS = {A_NAME: np.zeros((2, 8), np.float32), B_NAME: np.zeros((8, 2), np.float32)}


@pytest.mark.parametrize("config, tensors, message", [
    (GOOD_CONFIG, None, "adapter_model.safetensors is missing"),
    ({**GOOD_CONFIG, "use_dora": True}, GOOD_TENSORS, "only plain LoRA adapters are supported"),
    ({**GOOD_CONFIG, "target_modules": "q_proj|v_proj"}, GOOD_TENSORS, "target_modules must be a list"),
    (GOOD_CONFIG, {**GOOD_TENSORS, "base_model.model.lm_head.weight": np.zeros((2, 2), np.float32)},
     "tensor base_model.model.lm_head.weight is not a LoRA matrix"),
    ({**GOOD_CONFIG, "r": 3}, GOOD_TENSORS, "do not make a rank-3 update"),
    (GOOD_CONFIG, {A_NAME: GOOD_TENSORS[A_NAME]}, "has only one of lora_A and lora_B"),
])
def test_a_bad_adapter_is_refused_in_one_line(tmp_path, config, tensors, message):
    with pytest.raises(FrameduelError) as caught:
        read_adapter(write_adapter(tmp_path / "adapter", config, tensors))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_pickled_adapter_is_never_loaded(tmp_path):
    directory = write_adapter(tmp_path / "adapter", GOOD_CONFIG)
    (directory / "adapter_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(FrameduelError, match="only pickled adapter_model.bin is there"):
        read_adapter(directory)


@pytest.mark.parametrize("args, message", [
    (["--lora-targets", "lm_head"], "unknown LoRA target module of llama 'lm_head'"),
    (["--lora-rank", "0"], "LoRA rank must be >= 1"),
    (["--lora-alpha", "0"], "LoRA alpha must be > 0"),
])
def test_bad_lora_settings_are_one_line_exit_2(args, message):
    assert_user_error(run_cli("finetune", "llama", "--size", "tiny", *args), message)


def test_finetune_needs_a_language_model():
    assert_user_error(run_cli("finetune", "mlp"), "workload 'mlp' has no finetune task")


def test_generate_with_an_adapter_gives_transformers_peft_ids_in_both_frameworks(finetuned, checkpoint):
    """The TF-trained adapter: PEFT's loader on frameduel's torch model, Keras LoRA on the TF one, and
    transformers' LlamaForCausalLM through PEFT as the reference."""
    prompt, new_tokens = [5, 17, 3, 42], 12
    adapter = adapter_dir(finetuned, "tf")
    done = run_cli("generate", "--checkpoint", str(checkpoint), "--adapter", str(adapter), "--prompt",
                   ",".join(map(str, prompt)), "--new-tokens", str(new_tokens), "--modes", "eager", "--threads", "1",
                   "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    ids = {r["framework"]: r["ids"][0] for r in json.loads(done.stdout)["results"]}
    base = transformers.LlamaForCausalLM.from_pretrained(checkpoint)
    reference = peft.PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        expected = reference.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False)
    assert ids["torch"] == ids["tf"] == expected[0, len(prompt):].tolist()


def test_an_adapter_of_another_model_is_refused_before_any_worker(finetuned, tmp_path):
    settings, weights = read_adapter(adapter_dir(finetuned, "tf"))
    wider = {name: np.zeros((value.shape[0], 2 * value.shape[1]), value.dtype) if ".lora_A." in name else value
             for name, value in weights.items()}
    save_adapter(tmp_path / "other", wider, settings, "another-model")
    done = run_cli("generate", "llama", "--size", "tiny", "--adapter", str(tmp_path / "other"), "--prompt", "1,2")
    assert_user_error(done, "do not fit its weight")


def test_plain_torch_cells_do_not_carry_peft():
    """peft pulls in transformers (seconds and tens of MB): only LoRA cells may pay for it."""
    code = ("import sys, frameduel.frameworks.torch_backend; "
            "print(sorted({'peft', 'transformers'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


def test_a_finetune_cell_measures_lora_and_stores_what_it_trained(tmp_path):
    """A benchmark cell of task finetune, in each framework's own worker process: timed like a train cell,
    with the parameter counts and the adapter's size on disk stored beside the timings."""
    from frameduel.runner.scheduler import spawn_measure
    from frameduel.workloads import get_workload
    from tests.conftest import TINY_BUDGET

    lora = get_workload("llama").lora_settings(RANK, ALPHA)
    facts = {}
    for framework in ("torch", "tf"):
        spec = RunSpec(workload="llama", framework=framework, mode="eager", task="finetune", size="tiny",
                       batch_size=4, threads=1, lora=lora)
        measurement = spawn_measure(spec, TINY_BUDGET, tmp_path)
        assert measurement.status == "ok", measurement.error
        assert measurement.step_seconds and measurement.spec.key.split("/")[2] == f"finetune-{lora.label}"
        facts[framework] = measurement.model_facts
    config = get_workload("llama").config("tiny")
    adapted = config.num_hidden_layers * RANK * ((config.hidden_size + config.hidden_size)  # q_proj
                                                 + (config.hidden_size + config.num_key_value_heads * config.head_dim))
    assert facts["torch"]["trainable_parameters"] == facts["tf"]["trainable_parameters"] == adapted
    assert facts["torch"]["parameters"] > adapted and facts["torch"]["adapter_bytes"] > 4 * adapted
