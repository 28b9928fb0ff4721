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
LN_EPS = 1e-5  # torch's default, pinned in both files: Keras' LayerNormalization defaults to 1e-3


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
        size = config.block_size
        causal = torch.tril(torch.ones(size, size, dtype=torch.bool)).view(1, 1, size, size)
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        y = self.attend(q, k, v)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.c_proj(y)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Masked attention of Tq queries over Tk keys; the queries are the last Tq positions.

        Tq == Tk here; kept apart so a KV cache (keys longer than queries) slots in unchanged.
        """
        Tq, Tk = q.size(-2), k.size(-2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, Tq, Tk)
        att = att.masked_fill(~self.causal[:, :, Tk - Tq : Tk, :Tk], float("-inf"))
        att = torch.softmax(att, dim=-1)
        return att @ v  # (B, nh, Tq, hd)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="none")  # exact erf form, pinned: keras.ops.gelu defaults to tanh
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-LN: normalise before each sub-layer, so the residual stream itself is never normalised."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=LN_EPS)
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
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        logits = self.lm_head(x)  # h @ wte^T, no bias: (B, T, vocab)
        return logits.view(B * T, -1)  # flattened for the (N, classes) loss contract, see __init__.py


def build(config: GPTConfig) -> nn.Module:
    return GPT(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, T) int64 token ids, torch's index dtype
