from __future__ import annotations

import numpy as np
from torch import nn

from frameduel.workloads.common_torch import init_linear


def build(config) -> nn.Module:
    layer = nn.Linear(config.features, config.classes)  # (B, features) -> logits (B, classes)
    init_linear(layer)
    return layer


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs
