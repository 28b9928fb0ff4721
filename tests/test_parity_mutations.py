"""The mutation suite: every planted one-line deviation makes `frameduel parity` fail (exit 1) and
names the layer or tensor it planted. See tests/parity_mutations.py for the list."""

from __future__ import annotations

import os

import pytest

from tests.parity_mutations import MUTATIONS, PACKAGE, Outcome, run_mutations

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

# Each mutation is a parity run of its own (~20 s of two cores, mostly TensorFlow's import), so the
# default suite runs one per class of porting mistake, every workload, both directions, both sides,
# LoRA and Keras' trainer; FRAMEDUEL_ALL_MUTATIONS=1 (or `python -m tests.parity_mutations`) runs all.
SAMPLE = ("relu6", "gelu-tanh", "hard-sigmoid", "bn-momentum", "ln-eps", "causal-mask", "rope-interleaved",
          "conv-kernel-transposed", "lstm-bias-gates", "adam-beta2", "sgd-learning-rate", "eval-while-training",
          "keras-lora-alpha", "keras-loss-sum")
RUN_ALL = os.environ.get("FRAMEDUEL_ALL_MUTATIONS") == "1"
CHOSEN = [m for m in MUTATIONS if RUN_ALL or m.id in SAMPLE]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return run_mutations(CHOSEN)  # two at a time: ~2.5 minutes on 2 cores for the sample


def test_the_sample_spans_every_class_of_the_suite():
    chosen = [m for m in MUTATIONS if m.id in SAMPLE]
    assert len(chosen) == len(SAMPLE)  # every sampled id still exists
    assert {m.workload for m in chosen} == {m.workload for m in MUTATIONS}
    assert {(m.side, m.direction) for m in chosen} >= {(m.side, m.direction) for m in MUTATIONS
                                                       if "keras" not in m.direction}
    assert {m.task for m in chosen} == {m.task for m in MUTATIONS}


def test_the_suite_covers_every_workload_both_directions_and_both_sides():
    assert len(MUTATIONS) >= 12 and len({m.id for m in MUTATIONS}) == len(MUTATIONS)
    assert {m.workload for m in MUTATIONS} == {"mlp", "cnn", "transformer", "gpt", "llama", "lstm"}
    assert {(m.side, m.direction) for m in MUTATIONS} >= {(side, direction) for side in ("torch", "tf")
                                                          for direction in ("torch-to-tf", "tf-to-torch")}
    assert any(m.direction.startswith("torch-to-keras-") for m in MUTATIONS)  # Keras' own trainer too
    for mutation in MUTATIONS:  # each still applies to exactly one line of today's code
        assert (PACKAGE / mutation.path).read_text().count(mutation.old) == 1, mutation.id


@pytest.mark.parametrize("mutation_id", [m.id for m in CHOSEN])
def test_a_planted_deviation_fails_parity_and_is_located(outcomes, mutation_id):
    outcome = outcomes[mutation_id]
    assert outcome.returncode == 1, f"{mutation_id}: exit {outcome.returncode}\n{outcome.detail}"
    assert outcome.error is None, f"{mutation_id}: a side crashed instead of being compared: {outcome.error}"
    assert outcome.located, f"{mutation_id}: named {outcome.first_divergence!r}, expected /{outcome.mutation.expect}/"
