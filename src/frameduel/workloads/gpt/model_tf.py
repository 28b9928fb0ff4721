"""nanoGPT-style decoder in TensorFlow/Keras. Mirrors model_torch.py block for block."""

from __future__ import annotations

import math

import keras
import numpy as np

from frameduel.workloads.common_tf import full_precision, gelu_exact, gelu_tanh, normal_init, token_ids_as_they_are
from frameduel.workloads.decoding_tf import decode_step, prefill, zero_caches  # noqa: F401 - the backends call model_module.prefill and .decode_step
from frameduel.workloads.gpt import GPTConfig
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries, entry, layer_norm_entries

INIT_STD = 0.02  # GPT-2's N(0, 0.02) for every Dense and Embedding weight; biases zero (Keras' default)


def dense(units: int, std: float) -> keras.layers.Dense:
    return keras.layers.Dense(units, kernel_initializer=normal_init(std))


def embedding(rows: int, width: int) -> keras.layers.Embedding:
    return keras.layers.Embedding(rows, width, embeddings_initializer=normal_init(INIT_STD))


def layer_norm(config: GPTConfig) -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=config.ln_eps)  # pinned: Keras' default is 1e-3


def residual_std(config: GPTConfig) -> float:
    """GPT-2's scaled init for projections into the residual stream: each block adds two of them,
    so shrinking them by sqrt(2 * n_layer) keeps the stream's variance from growing with depth."""
    return INIT_STD / math.sqrt(2 * config.n_layer)


def split_heads(x, n_head: int):
    """(B, T, C) -> (B, nh, T, hd)."""
    T, C = keras.ops.shape(x)[1], x.shape[2]  # T may be known only when the graph runs (a server step)
    return keras.ops.transpose(keras.ops.reshape(x, (-1, T, n_head, C // n_head)), (0, 2, 1, 3))


class CausalSelfAttention(keras.layers.Layer):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = dense(3 * config.n_embd, INIT_STD)  # fused q, k, v projection
        self.c_proj = dense(config.n_embd, residual_std(config))
        # True where a query may look: itself and earlier positions. A constant, not a weight.
        self.causal = np.tril(np.ones((config.n_positions, config.n_positions), dtype=bool))

    def call(self, x, positions, cache=None):
        """x (B, T, C) holds the tokens at `positions`, (T,) or (B, T) per row. With a cache, their keys and
        values are written into it and the queries attend over the whole cache; without, over x alone."""
        T, C = keras.ops.shape(x)[1], x.shape[2]
        q, k, v = keras.ops.split(self.c_attn(x), 3, axis=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        if cache is not None:
            k, v = cache.write(k, v, positions)  # (B, nh, block_size, hd)
        y = self.attend(q, k, v, positions)  # (B, nh, T, hd)
        y = keras.ops.reshape(keras.ops.transpose(y, (0, 2, 1, 3)), (-1, T, C))  # heads side by side
        return self.c_proj(y)

    def attend(self, q, k, v, positions):
        """Queries at `positions` attend to every key at or before their own position.

        Keys are positions 0..Tk-1: the tokens themselves (Tk == T) or a static cache (Tk == block_size,
        where slots past the current position are masked out).
        """
        att = keras.ops.matmul(q, keras.ops.swapaxes(k, -2, -1)) / math.sqrt(k.shape[-1])  # (B, nh, T, Tk)
        visible = keras.ops.take(self.causal[:, : k.shape[2]], positions, axis=0)  # (T, Tk) or (B, T, Tk)
        visible = keras.ops.expand_dims(visible, -3)  # the same for every head
        # Mask and softmax in float32 under mixed precision, as torch autocast does; a no-op in fp32.
        att = keras.ops.where(visible, keras.ops.cast(att, full_precision()), float("-inf"))
        att = keras.ops.cast(keras.ops.softmax(att, axis=-1), v.dtype)
        return keras.ops.matmul(att, v)  # (B, nh, T, hd)


class MLP(keras.layers.Layer):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = dense(4 * config.n_embd, INIT_STD)
        self.c_proj = dense(config.n_embd, residual_std(config))
        # Exact erf GELU unless a GPT-2 checkpoint asks for tanh; both written out, see common_tf.
        self.gelu = gelu_exact if config.activation == "gelu" else gelu_tanh

    def call(self, x):
        x = self.gelu(self.c_fc(x))  # (B, T, 4C)
        return self.c_proj(x)  # (B, T, C)


class Block(keras.layers.Layer):
    """Pre-LN: normalise before each sub-layer, so the residual stream itself is never normalised."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = layer_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = layer_norm(config)
        self.mlp = MLP(config)

    def call(self, x, positions, cache=None):
        x = x + self.attn(self.ln_1(x), positions, cache=cache)
        return x + self.mlp(self.ln_2(x))


class GPT(keras.Model):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.wte = embedding(config.vocab_size, config.n_embd)
        self.wpe = embedding(config.n_positions, config.n_embd)
        self.blocks = [Block(config) for _ in range(config.n_layer)]
        self.ln_f = layer_norm(config)

    def call(self, idx, training=False):
        logits = self.head(self.hidden(idx, keras.ops.arange(idx.shape[1])))  # (B, T, vocab)
        return keras.ops.cast(keras.ops.reshape(logits, (-1, logits.shape[-1])), full_precision())  # (B*T, vocab)

    def hidden(self, idx, positions, caches=None):
        """Final hidden states (B, T, C) of tokens idx (B, T) sitting at `positions`, (T,) or (B, T)."""
        x = self.wte(idx) + self.wpe(positions)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, cache=caches[i] if caches else None)
        return self.ln_f(x)

    def head(self, x):
        """Tied head, no bias: x @ wte^T in the compute dtype (as under torch autocast); the training
        path casts the logits to float32 so the loss is computed at full precision."""
        wte = keras.ops.cast(self.wte.embeddings, x.dtype)  # (vocab, C)
        return keras.ops.matmul(x, keras.ops.transpose(wte))


def build(config: GPTConfig) -> keras.Model:
    model = GPT(config)
    model(np.zeros((1, config.block_size), np.int64))  # create the weights now, before optimizers see them
    return model


to_native_layout = token_ids_as_they_are  # (B, T) int64 token ids, see common_tf


# -- Generation: greedy decoding with a static KV cache (workloads/decoding_tf.py), prefill then one
# token per step; prefill and decode_step come from there, for this model's hidden() and head().


def new_cache(model: GPT, config: GPTConfig, batch_size: int, length: int | None = None) -> list[tuple]:
    """Zeroed (k, v) per layer, (length, B, nh, hd), length defaulting to the context."""
    shape = (length or config.block_size, batch_size, config.n_head, config.n_embd // config.n_head)
    return zero_caches(config.n_layer, shape)


# -- Transfer to and from PyTorch: torch state_dict names (model_torch.py) for every Keras variable. --


def weight_map(model: GPT) -> list[WeightEntry]:
    # One Keras table serves as both torch names: torch's state_dict lists the tied tensor twice.
    entries = [WeightEntry(("wte.weight", "lm_head.weight"), model.wte.embeddings, "tied"),
               entry("wpe.weight", model.wpe.embeddings)]
    for i, block in enumerate(model.blocks):
        entries += block_entries(f"blocks.{i}", block)
    return entries + layer_norm_entries("ln_f", model.ln_f)


def block_entries(prefix: str, block: Block) -> list[WeightEntry]:
    """One block; the fused c_attn kernel keeps q, k, v in the same order in both, so it only transposes."""
    return (layer_norm_entries(f"{prefix}.ln_1", block.ln_1)
            + dense_entries(f"{prefix}.attn.c_attn", block.attn.c_attn)
            + dense_entries(f"{prefix}.attn.c_proj", block.attn.c_proj)
            + layer_norm_entries(f"{prefix}.ln_2", block.ln_2)
            + dense_entries(f"{prefix}.mlp.c_fc", block.mlp.c_fc)
            + dense_entries(f"{prefix}.mlp.c_proj", block.mlp.c_proj))


def probe_points(model: GPT) -> dict[str, keras.layers.Layer]:
    """Keras layers whose output equals the output of the torch module of the same name.

    Not probed: torch's mlp.gelu and lm_head, which are keras.ops calls here (MLP.gelu, the
    tied head's matmul in GPT.head), not layers; the model's output still compares the logits.
    """
    points: dict[str, keras.layers.Layer] = {"wte": model.wte, "wpe": model.wpe}
    for i, block in enumerate(model.blocks):
        prefix = f"blocks.{i}"
        points.update({f"{prefix}.ln_1": block.ln_1, f"{prefix}.attn.c_attn": block.attn.c_attn,
                       f"{prefix}.attn.c_proj": block.attn.c_proj, f"{prefix}.attn": block.attn,
                       f"{prefix}.ln_2": block.ln_2, f"{prefix}.mlp.c_fc": block.mlp.c_fc,
                       f"{prefix}.mlp.c_proj": block.mlp.c_proj, f"{prefix}.mlp": block.mlp, prefix: block})
    points["ln_f"] = model.ln_f
    return points


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation  # (B, T, C), or (T, C) for wpe: the same layout in both frameworks
