"""nanoGPT-style decoder in TensorFlow/Keras. Mirrors model_torch.py block for block."""

from __future__ import annotations

import math

import keras
import numpy as np

from frameduel.workloads.common_tf import normal_init
from frameduel.workloads.gpt import GPTConfig

INIT_STD = 0.02  # GPT-2's N(0, 0.02) for every Dense and Embedding weight; biases zero (Keras' default)
LN_EPS = 1e-5  # torch's default, pinned: Keras' LayerNormalization defaults to 1e-3


def dense(units: int, std: float) -> keras.layers.Dense:
    return keras.layers.Dense(units, kernel_initializer=normal_init(std))


def embedding(rows: int, width: int) -> keras.layers.Embedding:
    return keras.layers.Embedding(rows, width, embeddings_initializer=normal_init(INIT_STD))


def layer_norm() -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=LN_EPS)


def residual_std(config: GPTConfig) -> float:
    """GPT-2's scaled init for projections into the residual stream: each block adds two of them,
    so shrinking them by sqrt(2 * n_layer) keeps the stream's variance from growing with depth."""
    return INIT_STD / math.sqrt(2 * config.n_layer)


def split_heads(x, n_head: int):
    """(B, T, C) -> (B, nh, T, hd)."""
    T, C = x.shape[1], x.shape[2]
    return keras.ops.transpose(keras.ops.reshape(x, (-1, T, n_head, C // n_head)), (0, 2, 1, 3))


class CausalSelfAttention(keras.layers.Layer):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = dense(3 * config.n_embd, INIT_STD)  # fused q, k, v projection
        self.c_proj = dense(config.n_embd, residual_std(config))
        # True where a query may look: itself and earlier positions. A constant, not a weight.
        self.causal = np.tril(np.ones((config.block_size, config.block_size), dtype=bool))

    def call(self, x):
        T, C = x.shape[1], x.shape[2]
        q, k, v = keras.ops.split(self.c_attn(x), 3, axis=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        y = self.attend(q, k, v)  # (B, nh, T, hd)
        y = keras.ops.reshape(keras.ops.transpose(y, (0, 2, 1, 3)), (-1, T, C))  # heads side by side
        return self.c_proj(y)

    def attend(self, q, k, v):
        """Masked attention of Tq queries over Tk keys; the queries are the last Tq positions.

        Tq == Tk here; kept apart so a KV cache (keys longer than queries) slots in unchanged.
        """
        Tq, Tk = q.shape[2], k.shape[2]
        att = keras.ops.matmul(q, keras.ops.swapaxes(k, -2, -1)) / math.sqrt(k.shape[-1])  # (B, nh, Tq, Tk)
        # Mask and softmax in float32 under mixed precision, as torch autocast does; a no-op in fp32.
        att = keras.ops.where(self.causal[Tk - Tq : Tk, :Tk], keras.ops.cast(att, "float32"), float("-inf"))
        att = keras.ops.cast(keras.ops.softmax(att, axis=-1), v.dtype)
        return keras.ops.matmul(att, v)  # (B, nh, Tq, hd)


class MLP(keras.layers.Layer):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = dense(4 * config.n_embd, INIT_STD)
        self.c_proj = dense(config.n_embd, residual_std(config))

    def call(self, x):
        # Exact erf GELU, pinned: keras.ops.gelu defaults to the tanh approximation.
        x = keras.ops.gelu(self.c_fc(x), approximate=False)  # (B, T, 4C)
        return self.c_proj(x)  # (B, T, C)


class Block(keras.layers.Layer):
    """Pre-LN: normalise before each sub-layer, so the residual stream itself is never normalised."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = layer_norm()
        self.attn = CausalSelfAttention(config)
        self.ln_2 = layer_norm()
        self.mlp = MLP(config)

    def call(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(keras.Model):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.wte = embedding(config.vocab_size, config.n_embd)
        self.wpe = embedding(config.block_size, config.n_embd)
        self.blocks = [Block(config) for _ in range(config.n_layer)]
        self.ln_f = layer_norm()

    def call(self, idx, training=False):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(keras.ops.arange(T))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        # Tied head, no bias. The matmul runs in the compute dtype (as under torch autocast); the
        # logits are then cast to float32 so the loss is computed at full precision.
        wte = keras.ops.cast(self.wte.embeddings, x.dtype)  # (vocab, C)
        logits = keras.ops.matmul(x, keras.ops.transpose(wte))  # (B, T, vocab)
        return keras.ops.cast(keras.ops.reshape(logits, (-1, logits.shape[-1])), "float32")  # (B*T, vocab)


def build(config: GPTConfig) -> keras.Model:
    model = GPT(config)
    model(np.zeros((1, config.block_size), np.int64))  # create the weights now, before optimizers see them
    return model


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    # Kept int64, not TF's usual int32: TF pins int32 tensors to host memory on GPU (its Identity
    # kernel is host-only for int32), which would add a copy to every step.
    return inputs  # (B, T) token ids
