"""MLP on tabular features: the "small model" case where per-step framework overhead shows most.

Canonical data: inputs float32 (B, in_features), targets int64 (B,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads.base import Batch, DigitsAdapter, Workload, side_by_side


@dataclass(frozen=True)
class MLPConfig:
    in_features: int
    hidden: int
    depth: int  # number of hidden Linear+ReLU layers
    classes: int


PRESETS = {
    "tiny": MLPConfig(in_features=16, hidden=32, depth=2, classes=4),
    "small": MLPConfig(in_features=128, hidden=512, depth=3, classes=10),
    "base": MLPConfig(in_features=512, hidden=2048, depth=4, classes=100),
}


def make_batch(config: MLPConfig, batch_size: int, seed: int) -> Batch:
    """Synthetic, learnable data: labels come from a fixed random linear teacher, so loss can fall."""
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((batch_size, config.in_features), dtype=np.float32)
    teacher = np.random.default_rng(12345).standard_normal((config.in_features, config.classes))
    targets = np.argmax(inputs @ teacher, axis=1).astype(np.int64)
    return Batch(inputs=inputs, targets=targets)


def digits_to_inputs(images: np.ndarray) -> np.ndarray:
    """Digits images (N, 8, 8) -> flat pixel features (N, 64)."""
    return np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float32)


DIGITS = DigitsAdapter(config=MLPConfig(in_features=64, hidden=128, depth=2, classes=10), to_inputs=digits_to_inputs)

def forward_flops(config: MLPConfig) -> float:
    widths = [config.in_features] + [config.hidden] * config.depth + [config.classes]
    return sum(2.0 * a * b for a, b in zip(widths, widths[1:], strict=False))


MLP_WORKLOAD = Workload(
    name="mlp",
    description="tabular MLP (Linear+ReLU stack, Adam)",
    presets=PRESETS,
    make_batch=make_batch,
    forward_flops=forward_flops,
    model_modules=side_by_side(__name__),
    digits=DIGITS,
)
