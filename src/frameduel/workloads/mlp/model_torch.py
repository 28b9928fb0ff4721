"""MLP in PyTorch. Mirrors model_tf.py layer for layer."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from frameduel.workloads.common_torch import init_linear
from frameduel.workloads.mlp import MLPConfig


class MLP(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = config.in_features
        for _ in range(config.depth):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, config.classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init_linear(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, in_features) -> logits (B, classes)


def build(config: MLPConfig) -> nn.Module:
    return MLP(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, in_features) is the same in both frameworks
