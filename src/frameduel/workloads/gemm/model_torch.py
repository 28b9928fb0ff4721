"""The GEMM in PyTorch: a bias-free Linear over each (n, n) sample."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from frameduel.workloads.common_torch import init_linear
from frameduel.workloads.gemm import GEMMConfig


class GEMM(nn.Module):
    def __init__(self, config: GEMMConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.n, config.n, bias=False)
        init_linear(self.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).reshape(-1, x.shape[-1])  # (B, n, n) @ (n, n) -> rows (B*n, n)


def build(config: GEMMConfig) -> nn.Module:
    return GEMM(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs
