"""nanoGPT-style decoder language model: causal attention, weight-tied LM head, next-token loss.

The shared training contract is cross_entropy(logits (N, classes), targets (N,)). A language model
predicts every position, so it fits that contract flattened:

    inputs   int64 token ids (B, T), T = block_size
    targets  int64 next tokens (B*T,)       -- row-major: targets[b*T + t] follows inputs[b, t]
    forward  logits (B*T, vocab_size)

The mean over the B*T rows is exactly nanoGPT's next-token loss. The batch size is still B, so the
reported throughput (batch_size / step time) is in *sequences* per second, not tokens: multiply by
block_size for tokens per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads.base import Batch, Workload, side_by_side

SUCCESSORS = 4  # each token has this many possible next tokens in the synthetic Markov chain
CHAIN_SEED = 12345  # the chain is fixed; the batch seed only picks the walks through it
ACTIVATIONS = ("gelu", "gelu_tanh")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int  # context length; every batch uses exactly this many tokens
    n_layer: int
    n_head: int
    n_embd: int  # model width C; the MLP is 4C wide
    # What a GPT-2 checkpoint can set (see frameduel.checkpoints); the presets keep the defaults.
    activation: str = "gelu"  # "gelu": exact erf form; "gelu_tanh": GPT-2's gelu_new approximation
    ln_eps: float = 1e-5  # torch's LayerNorm default, pinned in both frameworks (Keras' is 1e-3)
    n_positions: int = 0  # rows of the position table; 0: block_size (a checkpoint's may be longer)

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{self.activation}'; choose from: {', '.join(ACTIVATIONS)}")
        if not self.n_positions:
            object.__setattr__(self, "n_positions", self.block_size)
        if self.n_positions < self.block_size:
            raise ValueError(f"n_positions ({self.n_positions}) must cover block_size ({self.block_size})")


PRESETS = {
    "tiny": GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32),
    # A byte-sized vocabulary; a train step of tens of ms at batch 32 on 2 CPU cores.
    "small": GPTConfig(vocab_size=256, block_size=32, n_layer=2, n_head=4, n_embd=128),
    # nanoGPT's "baby GPT" (shakespeare_char) shape with a word-piece-sized vocabulary; a GPU-scale cell.
    "base": GPTConfig(vocab_size=8192, block_size=256, n_layer=6, n_head=6, n_embd=384),
}


def markov_chain(vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sparse bigram table: successors (V, K) token ids and their cumulative probs (V, K)."""
    rng = np.random.default_rng(CHAIN_SEED)
    successors = rng.integers(0, vocab_size, size=(vocab_size, SUCCESSORS), dtype=np.int64)
    probs = rng.dirichlet(np.ones(SUCCESSORS), size=vocab_size)  # (V, K)
    return successors, np.cumsum(probs, axis=1)


def make_batch(config: GPTConfig, batch_size: int, seed: int) -> Batch:
    """Random walks on a fixed bigram chain: next-token entropy is at most log(4), so loss can fall."""
    successors, cdf = markov_chain(config.vocab_size)
    rng = np.random.default_rng(seed)
    T = config.block_size
    seq = np.empty((batch_size, T + 1), dtype=np.int64)
    seq[:, 0] = rng.integers(0, config.vocab_size, size=batch_size)
    for t in range(T):
        current = seq[:, t]
        draw = rng.random(batch_size)[:, None]  # (B, 1)
        choice = np.minimum((cdf[current] < draw).sum(axis=1), SUCCESSORS - 1)  # inverse-CDF sample
        seq[:, t + 1] = successors[current, choice]
    return Batch(inputs=np.ascontiguousarray(seq[:, :-1]), targets=seq[:, 1:].reshape(-1))  # (B, T), (B*T,)


def forward_flops(config: GPTConfig) -> float:
    """Per sequence: blocks as in the transformer (causal attention counted in full, as computed),
    plus the tied LM head 2CV at every position."""
    T, C = config.block_size, config.n_embd
    return T * (config.n_layer * (24.0 * C * C + 4.0 * T * C) + 2.0 * C * config.vocab_size)


def generation_lengths(config: GPTConfig) -> tuple[int, int]:
    """Prompt half the context, then generate the other half: fixed lengths, identical work."""
    return config.block_size // 2, config.block_size - config.block_size // 2


GPT_WORKLOAD = Workload(
    name="gpt",
    description="nanoGPT-style decoder LM (causal pre-LN blocks, tied head, next-token loss, Adam)",
    presets=PRESETS,
    make_batch=make_batch,
    forward_flops=forward_flops,
    model_modules=side_by_side(__name__),
    generation=generation_lengths,
    lora_modules=("c_attn", "c_proj", "c_fc"),  # c_proj: attention's and the MLP's output projections
    lora_defaults=("c_attn",),  # the fused q, k, v projection: PEFT's default for GPT-2
)
