"""The next token of each sequence from its logits: greedy, or temperature and top-p sampling, in numpy.

Each request that samples has its own numpy Generator (seeded by its `seed`, else from the OS), and
draws exactly one uniform number per token, so a seeded stream is the same whatever else the batch
holds. Logits arrive as float32 rows; probabilities are computed in float64.
"""

from __future__ import annotations

import numpy as np

from frameduel.llm.params import SamplingParams


def greedy(logits: np.ndarray) -> np.ndarray:
    """(R, V) -> (R,): the first most likely token of each row, as torch.argmax and transformers choose."""
    return np.argmax(logits, axis=-1)


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """One token from one row (V,) of logits."""
    z = logits.astype(np.float64) / params.temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]  # smallest set reaching top_p
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    cumulative = np.cumsum(probs)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(probs) - 1))
