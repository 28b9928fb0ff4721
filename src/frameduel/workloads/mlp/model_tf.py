"""MLP in TensorFlow/Keras. Mirrors model_torch.py layer for layer."""

from __future__ import annotations

import keras
import numpy as np

from frameduel.workloads.common_tf import dense_init
from frameduel.workloads.mlp import MLPConfig


class MLP(keras.Model):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.body = [
            keras.layers.Dense(config.hidden, activation="relu", kernel_initializer=dense_init())
            for _ in range(config.depth)
        ]
        # Logits stay float32 under mixed precision so the loss is computed at full precision.
        self.head = keras.layers.Dense(config.classes, kernel_initializer=dense_init(), dtype="float32")

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
