"""KV-cache generation: cached decoding reproduces uncached greedy decoding, in both frameworks,
and generate cells report prefill and per-token decode apart."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from frameduel.runner.scheduler import spawn_measure
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from tests.conftest import TINY_BUDGET
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

LANGUAGE_MODELS = ["gpt", "llama"]


def tiny(name: str):
    workload = get_workload(name)
    config = workload.config("tiny")
    return workload, config, *workload.generation(config)


def prompt(name: str) -> np.ndarray:
    workload, config, prompt_len, _ = tiny(name)
    return workload.make_batch(config, 2, seed=3).inputs[:, :prompt_len]  # (B, P)


def uncached_greedy(name: str, logits_of) -> np.ndarray:
    """Greedy decoding by re-running the whole sequence each step: the reference a cache must match."""
    _, _, prompt_len, new_tokens = tiny(name)
    sequence = prompt(name)
    for _ in range(new_tokens):
        logits = logits_of(sequence).reshape(sequence.shape[0], sequence.shape[1], -1)  # (B, T, vocab)
        sequence = np.concatenate([sequence, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return sequence[:, prompt_len:]


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_torch_cached_generation_matches_uncached(name):
    torch = require_module("torch")
    workload, config, prompt_len, new_tokens = tiny(name)
    module = importlib.import_module(workload.model_modules["torch"])
    torch.manual_seed(0)
    model = module.build(config).eval()
    with torch.no_grad():
        tokens, cache = module.prefill(model, torch.from_numpy(prompt(name)), module.new_cache(model, config, 2))
        generated = [tokens]
        for i in range(new_tokens - 1):
            tokens, cache = module.decode_step(model, tokens, torch.tensor(prompt_len + i), cache)
            generated.append(tokens)
        reference = uncached_greedy(name, lambda seq: model(torch.from_numpy(seq)).numpy())
    assert np.array_equal(torch.stack(generated, 1).numpy(), reference)


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_tf_cached_generation_matches_uncached(name):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = require_module("keras")
    workload, config, prompt_len, new_tokens = tiny(name)
    module = importlib.import_module(workload.model_modules["tf"])
    keras.utils.set_random_seed(0)
    model = module.build(config)
    tokens, cache = module.prefill(model, prompt(name), module.new_cache(model, config, 2))
    generated = [np.asarray(tokens)]
    for i in range(new_tokens - 1):
        tokens, cache = module.decode_step(model, tokens, np.int32(prompt_len + i), cache)
        generated.append(np.asarray(tokens))
    reference = uncached_greedy(name, lambda seq: np.asarray(model(seq)))
    assert np.array_equal(np.stack(generated, 1), reference)


@pytest.mark.parametrize("framework, mode", [("torch", "eager"), ("tf", "function")])
def test_generate_cell_reports_prefill_and_decode(framework, mode, tmp_path):
    spec = RunSpec(workload="gpt", framework=framework, mode=mode, task="generate", batch_size=1, size="tiny",
                   threads=1)
    measurement = spawn_measure(spec, TINY_BUDGET, tmp_path)
    assert measurement.status == "ok", measurement.error
    rounds = len(measurement.step_seconds)
    assert len(measurement.series["prefill"]) == rounds
    assert len(measurement.series["decode_token"]) == rounds * tiny("gpt")[3]
    # A generation is its prefill plus its decode steps (timer overhead aside).
    total = sum(measurement.series["prefill"]) + sum(measurement.series["decode_token"])
    assert abs(total - sum(measurement.step_seconds)) / sum(measurement.step_seconds) < 1e-6
