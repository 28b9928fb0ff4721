"""KV-cache generation: cached decoding reproduces uncached greedy decoding, in both frameworks,
and generate cells report prefill and per-token decode apart."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from frameduel.runner.scheduler import run_worker
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from tests.conftest import TINY_BUDGET

GPT = get_workload("gpt")
CONFIG = GPT.config("tiny")
PROMPT_LEN, NEW_TOKENS = GPT.generation(CONFIG)


def prompt() -> np.ndarray:
    return GPT.make_batch(CONFIG, 2, seed=3).inputs[:, :PROMPT_LEN]  # (B, P)


def uncached_greedy(logits_of) -> np.ndarray:
    """Greedy decoding by re-running the whole sequence each step: the reference a cache must match."""
    sequence = prompt()
    for _ in range(NEW_TOKENS):
        logits = logits_of(sequence).reshape(sequence.shape[0], sequence.shape[1], -1)  # (B, T, vocab)
        sequence = np.concatenate([sequence, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return sequence[:, PROMPT_LEN:]


def test_torch_cached_generation_matches_uncached():
    torch = pytest.importorskip("torch")
    module = importlib.import_module(GPT.model_modules["torch"])
    torch.manual_seed(0)
    model = module.build(CONFIG).eval()
    with torch.no_grad():
        tokens, cache = module.prefill(model, torch.from_numpy(prompt()), module.new_cache(model, CONFIG, 2))
        generated = [tokens]
        for i in range(NEW_TOKENS - 1):
            tokens, cache = module.decode_step(model, tokens, torch.tensor(PROMPT_LEN + i), cache)
            generated.append(tokens)
        reference = uncached_greedy(lambda seq: model(torch.from_numpy(seq)).numpy())
    assert np.array_equal(torch.stack(generated, 1).numpy(), reference)


def test_tf_cached_generation_matches_uncached():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = pytest.importorskip("keras")
    module = importlib.import_module(GPT.model_modules["tf"])
    keras.utils.set_random_seed(0)
    model = module.build(CONFIG)
    tokens, cache = module.prefill(model, prompt(), module.new_cache(model, CONFIG, 2))
    generated = [np.asarray(tokens)]
    for i in range(NEW_TOKENS - 1):
        tokens, cache = module.decode_step(model, tokens, np.int32(PROMPT_LEN + i), cache)
        generated.append(np.asarray(tokens))
    reference = uncached_greedy(lambda seq: np.asarray(model(seq)))
    assert np.array_equal(np.stack(generated, 1), reference)


@pytest.mark.parametrize("framework, mode", [("torch", "eager"), ("tf", "function")])
def test_generate_cell_reports_prefill_and_decode(framework, mode, tmp_path):
    spec = RunSpec(workload="gpt", framework=framework, mode=mode, task="generate", batch_size=1, size="tiny",
                   threads=1)
    measurement = run_worker(spec, TINY_BUDGET, tmp_path)
    assert measurement.status == "ok", measurement.error
    rounds = len(measurement.step_seconds)
    assert len(measurement.series["prefill"]) == rounds
    assert len(measurement.series["decode_token"]) == rounds * NEW_TOKENS
    # A generation is its prefill plus its decode steps (timer overhead aside).
    total = sum(measurement.series["prefill"]) + sum(measurement.series["decode_token"])
    assert abs(total - sum(measurement.step_seconds)) / sum(measurement.step_seconds) < 1e-6
