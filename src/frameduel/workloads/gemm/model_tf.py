"""The GEMM in TensorFlow/Keras: a bias-free Dense over each (n, n) sample."""

from __future__ import annotations

import keras
import numpy as np

from frameduel.workloads.common_tf import dense_init
from frameduel.workloads.gemm import GEMMConfig
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries


class GEMM(keras.Model):
    def __init__(self, config: GEMMConfig) -> None:
        super().__init__()
        # In the policy's compute dtype, as torch autocast runs its Linear: bf16 cells measure a bf16 GEMM.
        self.proj = keras.layers.Dense(config.n, use_bias=False, kernel_initializer=dense_init())

    def call(self, x, training=False):
        return keras.ops.reshape(self.proj(x), (-1, x.shape[-1]))  # (B, n, n) @ (n, n) -> rows (B*n, n)


def build(config: GEMMConfig) -> keras.Model:
    model = GEMM(config)
    model(np.zeros((1, config.n, config.n), np.float32))  # create the weights now
    return model


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs


def weight_map(model: GEMM) -> list[WeightEntry]:
    return dense_entries("proj", model.proj)


def probe_points(model: GEMM) -> dict[str, keras.layers.Layer]:
    return {}  # one layer: the output is the only activation


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation
