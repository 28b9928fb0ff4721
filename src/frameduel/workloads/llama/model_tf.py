"""Llama-style decoder in TensorFlow/Keras. Mirrors model_torch.py block for block.

Attribute names are the torch (Hugging Face) module names, so weight_map and probe_points read as a
list of the same names. Norms and rotary angles run in full precision (float32 under mixed precision,
float64 under the float64 policy), as torch's twin does.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from frameduel.workloads.common_tf import full_precision, normal_init, token_ids_as_they_are
from frameduel.workloads.decoding_tf import decode_step, prefill, zero_caches  # noqa: F401 - the backends call model_module.prefill and .decode_step
from frameduel.workloads.llama import LlamaConfig, inverse_frequencies
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries, entry


def linear(units: int, config: LlamaConfig) -> keras.layers.Dense:
    """nn.Linear(bias=False) with Hugging Face's N(0, initializer_range) init."""
    return keras.layers.Dense(units, use_bias=False, kernel_initializer=normal_init(config.initializer_range))


class RMSNorm(keras.layers.Layer):
    """x / rms(x) * weight, with the normalisation in full precision (see model_torch.RMSNorm)."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = self.add_weight(shape=(width,), initializer="ones", name="weight")
        self.eps = eps

    def call(self, x):
        full = keras.ops.cast(x, full_precision())
        full = full * keras.ops.rsqrt(keras.ops.mean(keras.ops.square(full), axis=-1, keepdims=True) + self.eps)
        return self.weight * keras.ops.cast(full, x.dtype)


class RotaryEmbedding:
    """cos and sin of position * inverse frequency (T, head_dim), in full precision. Not a layer: it has
    no weights, and torch's twin is a module only to hold its table as a buffer."""

    def __init__(self, config: LlamaConfig) -> None:
        self.inv_freq = inverse_frequencies(config)  # float64; cast at call time to the policy's precision

    def __call__(self, positions):
        """positions (T,) shared by the batch, or (B, T) per row (a server's ragged batch) -> (..., T, hd)."""
        full = full_precision()
        inv_freq = keras.ops.convert_to_tensor(self.inv_freq.astype(full))
        angles = keras.ops.expand_dims(keras.ops.cast(positions, full), -1) * inv_freq  # (..., T, hd/2)
        angles = keras.ops.concatenate((angles, angles), axis=-1)  # (..., T, hd)
        return keras.ops.cos(angles), keras.ops.sin(angles)


def rotate_half(x):
    half = x.shape[-1] // 2
    return keras.ops.concatenate((-x[..., half:], x[..., :half]), axis=-1)


def apply_rotary(x, cos, sin):
    """x (B, heads, T, hd) rotated by the angles of its positions, (T, hd) or (B, T, hd), in x's dtype."""
    cos = keras.ops.expand_dims(keras.ops.cast(cos, x.dtype), -3)  # broadcast over the heads
    sin = keras.ops.expand_dims(keras.ops.cast(sin, x.dtype), -3)
    return x * cos + rotate_half(x) * sin


def repeat_kv(x, groups: int):
    """(B, nkv, T, hd) -> (B, nkv * groups, T, hd): query head h reads key/value head h // groups."""
    return x if groups == 1 else keras.ops.repeat(x, groups, axis=1)


def split_heads(x, heads: int, head_dim: int):
    """(B, T, heads * hd) -> (B, heads, T, hd)."""
    # keras.ops.shape: T may be known only when the graph runs (a traced server step of any prompt length)
    return keras.ops.transpose(keras.ops.reshape(x, (-1, keras.ops.shape(x)[1], heads, head_dim)), (0, 2, 1, 3))


class LlamaAttention(keras.layers.Layer):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.q_proj = linear(self.n_head * self.head_dim, config)
        self.k_proj = linear(self.n_kv * self.head_dim, config)
        self.v_proj = linear(self.n_kv * self.head_dim, config)
        self.o_proj = linear(config.hidden_size, config)

    def call(self, x, rotary, positions, cache=None):
        T = keras.ops.shape(x)[1]
        q = split_heads(self.q_proj(x), self.n_head, self.head_dim)  # (B, nh, T, hd)
        k = split_heads(self.k_proj(x), self.n_kv, self.head_dim)  # (B, nkv, T, hd)
        v = split_heads(self.v_proj(x), self.n_kv, self.head_dim)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is not None:
            k, v = cache.write(k, v, positions)  # (B, nkv, length, hd)
        groups = self.n_head // self.n_kv
        y = self.attend(q, repeat_kv(k, groups), repeat_kv(v, groups), positions)  # (B, nh, T, hd)
        y = keras.ops.reshape(keras.ops.transpose(y, (0, 2, 1, 3)), (-1, T, self.n_head * self.head_dim))
        return self.o_proj(y)  # heads side by side, then projected back to the model width

    def attend(self, q, k, v, positions):
        """Queries at `positions`, (T,) or (B, T), attend to keys 0..Tk-1 at or before their own position."""
        att = keras.ops.matmul(q, keras.ops.swapaxes(k, -2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, Tk)
        visible = keras.ops.arange(k.shape[2]) <= keras.ops.expand_dims(keras.ops.cast(positions, "int32"), -1)
        visible = keras.ops.expand_dims(visible, -3)  # (1, T, Tk) or (B, 1, T, Tk): the same for every head
        # Mask and softmax in float32 under mixed precision, as torch autocast does; a no-op in fp32.
        att = keras.ops.where(visible, keras.ops.cast(att, full_precision()), float("-inf"))
        att = keras.ops.cast(keras.ops.softmax(att, axis=-1), v.dtype)
        return keras.ops.matmul(att, v)


class LlamaMLP(keras.layers.Layer):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = linear(config.intermediate_size, config)
        self.up_proj = linear(config.intermediate_size, config)
        self.down_proj = linear(config.hidden_size, config)

    def call(self, x):
        return self.down_proj(keras.ops.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(keras.layers.Layer):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def call(self, x, rotary, positions, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions, cache=cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(keras.layers.Layer):
    """The decoder stack without its head: Hugging Face's `model.` prefix."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.embed_tokens = keras.layers.Embedding(config.vocab_size, config.hidden_size,
                                                   embeddings_initializer=normal_init(config.initializer_range))
        self.layers = [LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers)]
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config)

    def call(self, idx, positions, caches=None):
        """Final hidden states (B, T, C) of tokens idx (B, T) sitting at `positions`, (T,) or (B, T)."""
        x = self.embed_tokens(idx)
        rotary = self.rotary_emb(positions)
        for i, layer in enumerate(self.layers):
            x = layer(x, rotary, positions, cache=caches[i] if caches else None)
        return self.norm(x)


class Llama(keras.Model):
    """LlamaForCausalLM: the decoder and an LM head (the embedding itself when the config ties them)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = None if config.tie_word_embeddings else linear(config.vocab_size, config)

    def call(self, idx, training=False):
        logits = self.head(self.hidden(idx, keras.ops.arange(idx.shape[1])))  # (B, T, vocab)
        # Flattened for the (N, classes) loss contract, in full precision for the loss (as gpt).
        return keras.ops.cast(keras.ops.reshape(logits, (-1, logits.shape[-1])), full_precision())

    def hidden(self, idx, positions, caches=None):
        """Final hidden states (B, T, C) of tokens idx (B, T) at `positions` (T,): the decoder stack."""
        return self.model(idx, positions, caches=caches)

    def head(self, x):
        if self.lm_head is not None:
            return self.lm_head(x)
        embeddings = keras.ops.cast(self.model.embed_tokens.embeddings, x.dtype)  # (vocab, C), tied
        return keras.ops.matmul(x, keras.ops.transpose(embeddings))


def build(config: LlamaConfig) -> keras.Model:
    model = Llama(config)
    model(np.zeros((1, config.block_size), np.int64))  # create the weights now, before optimizers see them
    return model


to_native_layout = token_ids_as_they_are  # (B, T) int64 token ids, see common_tf


# -- Generation: greedy decoding with a static KV cache (workloads/decoding_tf.py, as gpt), prefill then
# one token per step; prefill and decode_step come from there, for this model's hidden() and head().


def new_cache(model: Llama, config: LlamaConfig, batch_size: int, length: int | None = None) -> list[tuple]:
    """Zeroed (k, v) per layer, (length, B, nkv, hd), length defaulting to the context."""
    shape = (length or config.block_size, batch_size, config.num_key_value_heads, config.head_dim)
    return zero_caches(config.num_hidden_layers, shape)


# -- Transfer to and from PyTorch: torch (Hugging Face) state_dict names for every Keras variable. --


def weight_map(model: Llama) -> list[WeightEntry]:
    embed = model.model.embed_tokens.embeddings
    if model.lm_head is None:  # tied: torch's state_dict lists the one tensor under both names
        entries = [WeightEntry(("model.embed_tokens.weight", "lm_head.weight"), embed, "tied")]
    else:
        entries = [entry("model.embed_tokens.weight", embed)]
    for i, layer in enumerate(model.model.layers):
        prefix = f"model.layers.{i}"
        entries.append(entry(f"{prefix}.input_layernorm.weight", layer.input_layernorm.weight))
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            entries += dense_entries(f"{prefix}.self_attn.{name}", getattr(layer.self_attn, name))
        entries.append(entry(f"{prefix}.post_attention_layernorm.weight", layer.post_attention_layernorm.weight))
        for name in ("gate_proj", "up_proj", "down_proj"):
            entries += dense_entries(f"{prefix}.mlp.{name}", getattr(layer.mlp, name))
    entries.append(entry("model.norm.weight", model.model.norm.weight))
    if model.lm_head is not None:
        entries += dense_entries("lm_head", model.lm_head)
    return entries


def probe_points(model: Llama) -> dict[str, keras.layers.Layer]:
    """Keras layers whose output equals the output of the torch module of the same name.

    Not probed: torch's rotary_emb (it returns a (cos, sin) pair, which the hooks skip) and a tied
    lm_head (a matmul here, not a layer); the logits still compare the head.
    """
    points: dict[str, keras.layers.Layer] = {"model.embed_tokens": model.model.embed_tokens}
    for i, layer in enumerate(model.model.layers):
        prefix = f"model.layers.{i}"
        points.update({f"{prefix}.input_layernorm": layer.input_layernorm, f"{prefix}.self_attn": layer.self_attn,
                       f"{prefix}.post_attention_layernorm": layer.post_attention_layernorm,
                       f"{prefix}.mlp": layer.mlp, prefix: layer})
        points.update({f"{prefix}.self_attn.{name}": getattr(layer.self_attn, name)
                       for name in ("q_proj", "k_proj", "v_proj", "o_proj")})
        points.update({f"{prefix}.mlp.{name}": getattr(layer.mlp, name)
                       for name in ("gate_proj", "up_proj", "down_proj")})
    points.update({"model.norm": model.model.norm, "model": model.model})
    if model.lm_head is not None:
        points["lm_head"] = model.lm_head
    return points


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation  # (B, T, features): the same layout in both frameworks
