"""Encoder classifier in TensorFlow/Keras. Mirrors model_torch.py block for block."""

from __future__ import annotations

import math

import keras
import numpy as np

from frameduel.workloads.common_tf import full_precision, gelu_exact, normal_init, token_ids_as_they_are
from frameduel.workloads.transformer import TransformerConfig
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries, entry, layer_norm_entries

INIT_STD = 0.02  # BERT's N(0, 0.02) for every Dense and Embedding weight; biases zero (Keras' default)
LN_EPS = 1e-5  # torch's default, pinned: Keras' LayerNormalization defaults to 1e-3


def dense(units: int, dtype: str | None = None) -> keras.layers.Dense:
    return keras.layers.Dense(units, kernel_initializer=normal_init(INIT_STD), dtype=dtype)


def embedding(rows: int, width: int) -> keras.layers.Embedding:
    return keras.layers.Embedding(rows, width, embeddings_initializer=normal_init(INIT_STD))


def layer_norm() -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=LN_EPS)


def split_heads(x, n_head: int):
    """(B, T, C) -> (B, nh, T, hd)."""
    T, C = x.shape[1], x.shape[2]
    x = keras.ops.reshape(x, (-1, T, n_head, C // n_head))
    return keras.ops.transpose(x, (0, 2, 1, 3))


class SelfAttention(keras.layers.Layer):
    """Bidirectional multi-head self-attention, written out exactly as in the torch twin."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = dense(3 * config.n_embd)  # fused q, k, v projection
        self.proj = dense(config.n_embd)

    def call(self, x):
        T, C = x.shape[1], x.shape[2]
        q, k, v = keras.ops.split(self.qkv(x), 3, axis=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        att = keras.ops.matmul(q, keras.ops.swapaxes(k, -2, -1)) / math.sqrt(k.shape[-1])  # (B, nh, T, T)
        # Softmax in float32 under mixed precision, as torch autocast does; a no-op in fp32.
        att = keras.ops.cast(keras.ops.softmax(keras.ops.cast(att, full_precision()), axis=-1), v.dtype)
        y = keras.ops.matmul(att, v)  # (B, nh, T, hd)
        y = keras.ops.reshape(keras.ops.transpose(y, (0, 2, 1, 3)), (-1, T, C))  # heads side by side
        return self.proj(y)


class MLP(keras.layers.Layer):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc = dense(4 * config.n_embd)
        self.proj = dense(config.n_embd)

    def call(self, x):
        # Exact erf GELU, pinned (keras.ops.gelu defaults to the tanh approximation); see common_tf.
        x = gelu_exact(self.fc(x))  # (B, T, 4C)
        return self.proj(x)  # (B, T, C)


class Block(keras.layers.Layer):
    """Pre-LN: normalise before each sub-layer, so the residual stream itself is never normalised."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = layer_norm()
        self.attn = SelfAttention(config)
        self.ln_2 = layer_norm()
        self.mlp = MLP(config)

    def call(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class EncoderClassifier(keras.Model):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.wte = embedding(config.vocab_size, config.n_embd)
        self.wpe = embedding(config.seq_len, config.n_embd)
        self.blocks = [Block(config) for _ in range(config.n_layer)]
        self.ln_f = layer_norm()
        # Logits stay in full precision (float32 under mixed precision) so the loss is computed at full precision.
        self.head = dense(config.classes, dtype=full_precision())

    def call(self, idx, training=False):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(keras.ops.arange(T))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = keras.ops.mean(self.ln_f(x), axis=1)  # mean-pool over tokens: (B, C)
        return self.head(x)  # logits (B, classes)


def build(config: TransformerConfig) -> keras.Model:
    model = EncoderClassifier(config)
    model(np.zeros((1, config.seq_len), np.int64))  # create the weights now, before optimizers see them
    return model


to_native_layout = token_ids_as_they_are  # (B, T) int64 token ids, see common_tf


# -- Transfer to and from PyTorch: torch state_dict names (model_torch.py) for every Keras variable. --


def weight_map(model: EncoderClassifier) -> list[WeightEntry]:
    entries = [entry("wte.weight", model.wte.embeddings), entry("wpe.weight", model.wpe.embeddings)]
    for i, block in enumerate(model.blocks):
        entries += block_entries(f"blocks.{i}", block)
    return entries + layer_norm_entries("ln_f", model.ln_f) + dense_entries("head", model.head)


def block_entries(prefix: str, block: Block) -> list[WeightEntry]:
    """One block; the fused qkv kernel keeps q, k, v in the same order in both, so it only transposes."""
    return (layer_norm_entries(f"{prefix}.ln_1", block.ln_1)
            + dense_entries(f"{prefix}.attn.qkv", block.attn.qkv)
            + dense_entries(f"{prefix}.attn.proj", block.attn.proj)
            + layer_norm_entries(f"{prefix}.ln_2", block.ln_2)
            + dense_entries(f"{prefix}.mlp.fc", block.mlp.fc)
            + dense_entries(f"{prefix}.mlp.proj", block.mlp.proj))


def probe_points(model: EncoderClassifier) -> dict[str, keras.layers.Layer]:
    """Keras layers whose output equals the output of the torch module of the same name.

    torch's mlp.gelu has no Keras layer (gelu_exact inside MLP.call), so it is not probed; ln_f is
    probed before the mean-pool in both.
    """
    points: dict[str, keras.layers.Layer] = {"wte": model.wte, "wpe": model.wpe}
    for i, block in enumerate(model.blocks):
        prefix = f"blocks.{i}"
        points.update({f"{prefix}.ln_1": block.ln_1, f"{prefix}.attn.qkv": block.attn.qkv,
                       f"{prefix}.attn.proj": block.attn.proj, f"{prefix}.attn": block.attn,
                       f"{prefix}.ln_2": block.ln_2, f"{prefix}.mlp.fc": block.mlp.fc,
                       f"{prefix}.mlp.proj": block.mlp.proj, f"{prefix}.mlp": block.mlp, prefix: block})
    points.update({"ln_f": model.ln_f, "head": model.head})
    return points


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation  # (B, T, C), (T, C) for wpe, (B, classes): the same layout in both frameworks
