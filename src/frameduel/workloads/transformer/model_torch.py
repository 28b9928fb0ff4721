"""Encoder classifier in PyTorch. Mirrors model_tf.py block for block.

Weight layout notes for transfer to Keras: nn.Linear.weight is (out, in), a Dense kernel is (in, out),
so every Linear weight transposes; embeddings and LayerNorm vectors copy as they are. qkv is one fused
Linear in both frameworks, with q, k, v in that order along its output axis.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from frameduel.workloads.common_torch import init_normal
from frameduel.workloads.transformer import TransformerConfig

INIT_STD = 0.02  # BERT's N(0, 0.02) for every Linear and Embedding weight
LN_EPS = 1e-5  # torch's default, pinned in both files: Keras' LayerNormalization defaults to 1e-3


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, nh, T, hd)."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention, written out (no fused SDPA) to match the TF twin."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)  # fused q, k, v projection
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, T)
        att = torch.softmax(att, dim=-1)
        y = att @ v  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="none")  # exact erf form, pinned: keras.ops.gelu defaults to tanh
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.gelu(self.fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-LN: normalise before each sub-layer, so the residual stream itself is never normalised."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class EncoderClassifier(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.seq_len, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.head = nn.Linear(config.n_embd, config.classes)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                init_normal(module, INIT_STD)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x).mean(dim=1)  # mean-pool over tokens: (B, C)
        return self.head(x)  # logits (B, classes)


def build(config: TransformerConfig) -> nn.Module:
    return EncoderClassifier(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, T) int64 token ids, torch's index dtype
