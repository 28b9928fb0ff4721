"""nanoGPT-style decoder in PyTorch. Mirrors model_tf.py block for block.

Differences from nanoGPT's model.py, on purpose: no dropout (benchmarks want deterministic steps) and
attention written out instead of F.scaled_dot_product_attention, so both frameworks run the same math.

Weight layout notes for transfer to Keras: nn.Linear.weight is (out, in), a Dense kernel is (in, out),
so every Linear weight transposes; embeddings and LayerNorm vectors copy as they are. The LM head has
no weight of its own: lm_head.weight and wte.weight are one tensor here, and Keras reads wte directly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from frameduel.workloads.common_torch import init_normal
from frameduel.workloads.gpt import GPTConfig

INIT_STD = 0.02  # GPT-2's N(0, 0.02) for every Linear and Embedding weight


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, nh, T, hd)."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # fused q, k, v projection
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        # True where a query may look: itself and earlier positions. A buffer, not a weight.
        size = config.n_positions
        causal = torch.tril(torch.ones(size, size, dtype=torch.bool))  # (positions, positions)
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """x (B, T, C) holds the tokens at `positions`, (T,) or (B, T) per row. With a cache, their keys and
        values are written into it and the queries attend over the whole cache; without, over x alone."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        if cache is not None:
            k, v = cache.write(k, v, positions)  # (B, nh, block_size, hd)
        y = self.attend(q, k, v, positions)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.c_proj(y)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Queries at `positions` attend to every key at or before their own position.

        Keys are positions 0..Tk-1: the tokens themselves (Tk == T) or a static cache (Tk == block_size,
        where slots past the current position are masked out).
        """
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, Tk)
        visible = self.causal[positions, : k.size(-2)].unsqueeze(-3)  # (1, T, Tk) or (B, 1, T, Tk)
        att = att.masked_fill(~visible, float("-inf"))
        att = torch.softmax(att, dim=-1)
        return att @ v  # (B, nh, T, hd)


class KVCache:
    """Keys and values of one layer, preallocated for the whole context (B, nh, length, hd).

    Static shapes on purpose: every decode step then has the same shapes, so torch.compile (and XLA
    on the TF side) compile one graph instead of one per sequence length.
    """

    def __init__(self, batch_size: int, length: int, config: GPTConfig, dtype: torch.dtype,
                 device: torch.device) -> None:
        shape = (batch_size, config.n_head, length, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def write(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k.index_copy_(2, positions, k.to(self.k.dtype))  # in place: O(new tokens), not O(context)
        self.v.index_copy_(2, positions, v.to(self.v.dtype))
        return self.k, self.v


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        # Exact erf form unless a GPT-2 checkpoint asks for its tanh one; Keras' gelu defaults to tanh.
        self.gelu = nn.GELU(approximate="none" if config.activation == "gelu" else "tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-LN: normalise before each sub-layer, so the residual stream itself is never normalised."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), positions, cache=cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        # Weight tying (nanoGPT's idiom): the head *is* wte, so state_dict lists one tensor under two names.
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                init_normal(module, INIT_STD)
        # GPT-2's scaled init: each block adds two projections to the residual stream, so shrinking
        # them by sqrt(2 * n_layer) keeps the stream's variance from growing with depth.
        for block in self.blocks:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                init_normal(proj, INIT_STD / math.sqrt(2 * config.n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        logits = self.lm_head(self.hidden(idx, torch.arange(T, device=idx.device)))  # h @ wte^T: (B, T, vocab)
        return logits.view(B * T, -1)  # flattened for the (N, classes) loss contract, see __init__.py

    def hidden(self, idx: torch.Tensor, positions: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Final hidden states (B, T, C) of tokens idx (B, T) sitting at `positions`, (T,) or (B, T)."""
        x = self.wte(idx) + self.wpe(positions)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, cache=caches[i] if caches else None)
        return self.ln_f(x)


def build(config: GPTConfig) -> nn.Module:
    return GPT(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, T) int64 token ids, torch's index dtype


# -- Generation: greedy decoding with a static KV cache, prefill then one token per step. --


def new_cache(model: GPT, config: GPTConfig, batch_size: int, length: int | None = None) -> list[KVCache]:
    """Zeroed caches of `length` positions (default: the context) in the compute dtype: autocast's when
    it is on (as Keras' mixed policy does)."""
    device = model.lm_head.weight.device
    autocast_on = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if autocast_on else model.lm_head.weight.dtype
    return [KVCache(batch_size, length or config.block_size, config, dtype, device) for _ in range(config.n_layer)]


def next_tokens(model: GPT, hidden: torch.Tensor) -> torch.Tensor:
    """Greedy choice from the last position's logits: (B, T, C) -> (B,)."""
    return model.lm_head(hidden[:, -1, :]).argmax(dim=-1)


def prefill(model: GPT, prompt: torch.Tensor, caches: list[KVCache]) -> tuple[torch.Tensor, list[KVCache]]:
    """Run the prompt (B, P) through the model, filling the caches; return the first new token (B,)."""
    positions = torch.arange(prompt.size(1), device=prompt.device)
    return next_tokens(model, model.hidden(prompt, positions, caches)), caches


def decode_step(
    model: GPT, tokens: torch.Tensor, position: torch.Tensor, caches: list[KVCache]
) -> tuple[torch.Tensor, list[KVCache]]:
    """Feed the last tokens (B,) at `position` (a 0-d tensor) and return the next ones (B,)."""
    return next_tokens(model, model.hidden(tokens[:, None], position.view(1), caches)), caches
