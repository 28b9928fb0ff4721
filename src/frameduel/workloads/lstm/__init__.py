"""LSTM sequence classifier: the recurrent case, where a sequential loop dominates the step.

Embedding -> stacked LSTM -> hidden state after the last token -> linear head.

Canonical data: inputs int64 token ids (B, T) with T = seq_len, targets int64 (B,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads.base import Batch, Workload, side_by_side

SIGNAL = 0.25  # share of a sequence's tokens drawn from its class's bucket; the rest are uniform noise


@dataclass(frozen=True)
class LSTMConfig:
    vocab_size: int
    seq_len: int
    embed_dim: int
    hidden: int  # H, the LSTM state size of every layer
    n_layer: int
    classes: int


PRESETS = {
    "tiny": LSTMConfig(vocab_size=64, seq_len=16, embed_dim=16, hidden=32, n_layer=1, classes=4),
    # A train step of tens of ms at batch 32 on 2 CPU cores.
    "small": LSTMConfig(vocab_size=512, seq_len=32, embed_dim=64, hidden=128, n_layer=2, classes=10),
    "base": LSTMConfig(vocab_size=8192, seq_len=128, embed_dim=256, hidden=1024, n_layer=2, classes=10),
}


def make_batch(config: LSTMConfig, batch_size: int, seed: int) -> Batch:
    """Class-conditional sequences: a label is drawn first, then each token comes from that class's
    bucket of ids with probability SIGNAL, else uniformly from the whole vocabulary (learnable).

    Token ids are split into `classes` contiguous buckets; the model must integrate evidence over time.
    """
    rng = np.random.default_rng(seed)
    shape = (batch_size, config.seq_len)
    labels = rng.integers(0, config.classes, size=batch_size, dtype=np.int64)  # (B,)
    bucket = config.vocab_size // config.classes
    in_bucket = labels[:, None] * bucket + rng.integers(0, bucket, size=shape)  # (B, T)
    noise = rng.integers(0, config.vocab_size, size=shape)  # (B, T)
    tokens = np.where(rng.random(shape) < SIGNAL, in_bucket, noise).astype(np.int64)
    return Batch(inputs=tokens, targets=labels)


def forward_flops(config: LSTMConfig) -> float:
    """Per token and layer the four gates' matmuls, 2 * 4H * (input + H); then the head."""
    H = config.hidden
    inputs = [config.embed_dim] + [H] * (config.n_layer - 1)
    per_token = sum(8.0 * H * (width + H) for width in inputs)
    return config.seq_len * per_token + 2.0 * H * config.classes


LSTM_WORKLOAD = Workload(
    name="lstm",
    description="LSTM sequence classifier (embedding, stacked LSTM, last hidden state, Adam)",
    presets=PRESETS,
    make_batch=make_batch,
    forward_flops=forward_flops,
    model_modules=side_by_side(__name__),
)
