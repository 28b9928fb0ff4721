"""Llama-style decoder in PyTorch, with Hugging Face's module names. Mirrors model_tf.py block for block.

The math is Hugging Face's LlamaForCausalLM (eager attention): RMSNorm in full precision, rotary
embeddings on q and k with the rotate-half convention, keys and values repeated across each group of
query heads, SwiGLU MLP. Written out (no F.scaled_dot_product_attention) so both frameworks run the
same operations, and without dropout, as every workload here.

Weight layout notes for transfer to Keras: every nn.Linear weight (out, in) transposes to a Dense kernel
(in, out); the embedding and the norms' scales copy as they are.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from frameduel.workloads.common_torch import init_normal
from frameduel.workloads.llama import LlamaConfig, inverse_frequencies


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in at least float32 (under autocast too), as Hugging Face does."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = x.to(torch.promote_types(x.dtype, torch.float32))
        full = full * torch.rsqrt(full.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * full.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos and sin of position * inverse frequency (T, head_dim), each half repeated (rotate-half layout)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.register_buffer("inv_freq", torch.from_numpy(inverse_frequencies(config)), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (T,) shared by the batch, or (B, T) per row (a server's ragged batch) -> (..., T, hd)."""
        # The buffer takes the weights' dtype with model.to(): float32, or float64 for fp64 parity.
        angles = positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq  # (..., T, hd/2)
        angles = torch.cat((angles, angles), dim=-1)  # (..., T, hd)
        return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, heads, T, hd) rotated by the angles of its positions, (T, hd) or (B, T, hd), in x's dtype."""
    cos, sin = cos.to(x.dtype).unsqueeze(-3), sin.to(x.dtype).unsqueeze(-3)  # broadcast over the heads
    return x * cos + rotate_half(x) * sin


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, nkv, T, hd) -> (B, nkv * groups, T, hd): query head h reads key/value head h // groups."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


class KVCache:
    """Keys and values of one layer, preallocated (B, nkv, length, hd): static shapes, one compiled decode
    graph for every position (see gpt's KVCache). Keys are cached after rotation, as Hugging Face does."""

    def __init__(self, batch_size: int, length: int, config: LlamaConfig, dtype: torch.dtype,
                 device: torch.device) -> None:
        shape = (batch_size, config.num_key_value_heads, length, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def write(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k.index_copy_(2, positions, k.to(self.k.dtype))
        self.v.index_copy_(2, positions, v.to(self.v.dtype))
        return self.k, self.v


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, self.n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], positions: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is not None:
            k, v = cache.write(k, v, positions)  # (B, nkv, length, hd)
        groups = self.n_head // self.n_kv
        y = self.attend(q, repeat_kv(k, groups), repeat_kv(v, groups), positions)  # (B, nh, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Queries at `positions`, (T,) or (B, T), attend to keys 0..Tk-1 at or before their own position."""
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, Tk)
        visible = torch.arange(k.size(-2), device=q.device) <= positions[..., None]  # (T, Tk) or (B, T, Tk)
        att = att.masked_fill(~visible.unsqueeze(-3), float("-inf"))
        return torch.softmax(att, dim=-1) @ v


class LlamaMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], positions: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions, cache=cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """The decoder stack without its head: Hugging Face's `model.` prefix."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config)

    def forward(self, idx: torch.Tensor, positions: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Final hidden states (B, T, C) of tokens idx (B, T) sitting at `positions`, (T,) or (B, T)."""
        x = self.embed_tokens(idx)
        rotary = self.rotary_emb(positions)
        for i, layer in enumerate(self.layers):
            x = layer(x, rotary, positions, cache=caches[i] if caches else None)
        return self.norm(x)


class Llama(nn.Module):
    """LlamaForCausalLM: the decoder and an LM head (tied to the embedding when the config says so)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                init_normal(module, config.initializer_range)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = self.logits(idx)  # (B, T, vocab)
        return logits.view(-1, logits.size(-1))  # flattened for the (N, classes) loss contract

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.hidden(idx, torch.arange(idx.size(1), device=idx.device)))

    def hidden(self, idx: torch.Tensor, positions: torch.Tensor, caches: list | None = None) -> torch.Tensor:
        """Final hidden states (B, T, C): the decoder stack (gpt's and the Keras twins' name for it)."""
        return self.model(idx, positions, caches)


def build(config: LlamaConfig) -> nn.Module:
    return Llama(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, T) int64 token ids


# -- Generation: greedy decoding with a static KV cache, prefill then one token per step (as gpt). --


def new_cache(model: Llama, config: LlamaConfig, batch_size: int, length: int | None = None) -> list[KVCache]:
    """Zeroed caches of `length` positions (default: the context) in the compute dtype."""
    device = model.lm_head.weight.device
    autocast_on = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if autocast_on else model.lm_head.weight.dtype
    return [KVCache(batch_size, length or config.block_size, config, dtype, device)
            for _ in range(config.num_hidden_layers)]


def next_tokens(model: Llama, hidden: torch.Tensor) -> torch.Tensor:
    """Greedy choice from the last position's logits: (B, T, C) -> (B,)."""
    return model.lm_head(hidden[:, -1, :]).argmax(dim=-1)


def prefill(model: Llama, prompt: torch.Tensor, caches: list[KVCache]) -> tuple[torch.Tensor, list[KVCache]]:
    positions = torch.arange(prompt.size(1), device=prompt.device)
    return next_tokens(model, model.model(prompt, positions, caches)), caches


def decode_step(model: Llama, tokens: torch.Tensor, position: torch.Tensor,
                caches: list[KVCache]) -> tuple[torch.Tensor, list[KVCache]]:
    return next_tokens(model, model.model(tokens[:, None], position.view(1), caches)), caches
