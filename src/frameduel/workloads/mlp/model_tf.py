"""MLP in TensorFlow/Keras. Mirrors model_torch.py layer for layer."""

from __future__ import annotations

import keras
import numpy as np

from frameduel.workloads.common_tf import dense_init, full_precision
from frameduel.workloads.mlp import MLPConfig
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries


class MLP(keras.Model):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.body = [
            keras.layers.Dense(config.hidden, activation="relu", kernel_initializer=dense_init())
            for _ in range(config.depth)
        ]
        # Logits stay in full precision (float32 under mixed precision) so the loss is computed at full precision.
        self.head = keras.layers.Dense(config.classes, kernel_initializer=dense_init(), dtype=full_precision())

    def call(self, x, training=False):  # (B, in_features) -> logits (B, classes)
        for layer in self.body:
            x = layer(x)
        return self.head(x)


def build(config: MLPConfig) -> keras.Model:
    model = MLP(config)
    model(np.zeros((1, config.in_features), np.float32))  # create the weights now, before optimizers see them
    return model


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, in_features) is the same in both frameworks


# -- Transfer to and from PyTorch: torch state_dict names (model_torch.py) for every Keras variable. --


def weight_map(model: MLP) -> list[WeightEntry]:
    entries = []
    for i, layer in enumerate(model.body):
        entries += dense_entries(f"body.{2 * i}", layer)  # torch's body interleaves Linear and ReLU modules
    return entries + dense_entries("head", model.head)


def probe_points(model: MLP) -> dict[str, keras.layers.Layer]:
    """Keras layers whose output equals the output of the torch module of the same name.

    A Dense(activation="relu") is torch's Linear followed by ReLU, so it matches the ReLU's output.
    """
    points = {f"body.{2 * i + 1}": layer for i, layer in enumerate(model.body)}
    points["head"] = model.head
    return points


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation  # (B, features) in both frameworks
