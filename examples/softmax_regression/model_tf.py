from __future__ import annotations

import keras
import numpy as np

from frameduel.workloads.common_tf import dense_init, full_precision
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries


def build(config) -> keras.Model:
    # Logits in full precision: float32 under mixed precision, float64 when parity runs its proof.
    logits = keras.layers.Dense(config.classes, kernel_initializer=dense_init(), dtype=full_precision())
    model = keras.Sequential([logits])
    model(np.zeros((1, config.features), np.float32))  # create the weights now
    return model


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs


def weight_map(model: keras.Model) -> list[WeightEntry]:
    return dense_entries("", model.layers[0])  # torch's model is a bare nn.Linear: no name prefix


def probe_points(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {}  # a single layer: the forward output is the only activation


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation
