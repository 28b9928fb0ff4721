"""Greedy decoding with a static KV cache for the Keras decoders (gpt, llama): one implementation.

A decoder model exposes hidden(idx, positions, caches) -> final hidden states (B, T, C) and
head(x) -> logits; its attention layers call cache.write(k, v, positions). Caches cross the
tf.function boundary as a list of (k, v) tensor pairs, one per layer.
"""

from __future__ import annotations

import keras


class KVCache:
    """Keys and values of one layer for the whole context, stored position-major (length, B, heads, hd)
    so that writing a step's tokens is one row scatter.

    Static shapes on purpose: every decode step then has the same shapes, so XLA (and torch.compile on
    the torch side) compile one graph instead of one per sequence length. Tensors are immutable in
    TF, so write() rebinds k and v; the decode functions hand the new tensors back to the caller.
    """

    def __init__(self, k, v) -> None:
        self.k, self.v = k, v

    def write(self, k, v, positions):
        """k, v (B, heads, T, hd) of the tokens at `positions` (T,) -> the whole cache, (B, heads, length, hd)."""
        rows = keras.ops.expand_dims(positions, 1)  # (T, 1) scatter indices
        self.k = keras.ops.scatter_update(self.k, rows, keras.ops.transpose(k, (2, 0, 1, 3)))  # (T, B, heads, hd)
        self.v = keras.ops.scatter_update(self.v, rows, keras.ops.transpose(v, (2, 0, 1, 3)))
        return keras.ops.transpose(self.k, (1, 2, 0, 3)), keras.ops.transpose(self.v, (1, 2, 0, 3))


def zero_caches(layers: int, shape: tuple[int, int, int, int]) -> list[tuple]:
    """Zeroed (k, v) per layer, position-major `shape`, in the compute dtype (as torch autocast's)."""
    dtype = keras.mixed_precision.global_policy().compute_dtype
    return [(keras.ops.zeros(shape, dtype), keras.ops.zeros(shape, dtype)) for _ in range(layers)]


def run_cached(model, idx, positions, cache_tensors: list[tuple]) -> tuple:
    """Hidden states of idx at positions through the caches -> (greedy next tokens (B,), new caches)."""
    caches = [KVCache(k, v) for k, v in cache_tensors]
    hidden = model.hidden(idx, positions, caches)  # (B, T, C)
    tokens = keras.ops.argmax(model.head(hidden[:, -1, :]), axis=-1)  # (B,)
    return tokens, [(cache.k, cache.v) for cache in caches]


def prefill(model, prompt, cache_tensors: list[tuple]) -> tuple:
    """Run the prompt (B, P) through the model, filling the caches; return the first new token (B,)."""
    return run_cached(model, prompt, keras.ops.arange(prompt.shape[1]), cache_tensors)


def decode_step(model, tokens, position, cache_tensors: list[tuple]) -> tuple:
    """Feed the last tokens (B,) at `position` (a scalar tensor) and return the next ones (B,)."""
    return run_cached(model, keras.ops.expand_dims(tokens, 1), keras.ops.reshape(position, (1,)), cache_tensors)
