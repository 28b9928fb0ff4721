"""Example frameduel plugin: softmax regression on synthetic features.

Run it with the examples folder on the path:
    PYTHONPATH=examples frameduel compare --workloads softmax_regression --size tiny

A plugin is a module defining WORKLOAD, like the built-in workloads; its model modules expose
build(config) and to_native_layout(inputs). For `frameduel parity`, model_tf also provides
weight_map, probe_points and activation_to_canonical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads import Batch, Workload
from frameduel.workloads.base import side_by_side


@dataclass(frozen=True)
class SoftmaxConfig:
    features: int
    classes: int


def make_batch(config: SoftmaxConfig, batch_size: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((batch_size, config.features), dtype=np.float32)
    teacher = np.random.default_rng(7).standard_normal((config.features, config.classes))
    return Batch(inputs=inputs, targets=np.argmax(inputs @ teacher, axis=1).astype(np.int64))


WORKLOAD = Workload(
    name="softmax_regression",
    description="softmax regression (one Linear layer), an example plugin",
    presets={
        "tiny": SoftmaxConfig(features=8, classes=3),
        "small": SoftmaxConfig(features=256, classes=10),
        "base": SoftmaxConfig(features=4096, classes=1000),
    },
    make_batch=make_batch,
    model_modules=side_by_side(__name__),  # softmax_regression.model_torch / .model_tf
)
