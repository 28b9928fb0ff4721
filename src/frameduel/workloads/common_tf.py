"""Initialisers shared by the Keras model files; each has its twin in common_torch.py."""

from __future__ import annotations

import math

import keras
import numpy as np


def full_precision() -> str:
    """The dtype logits, softmax and the loss use: the policy's variable dtype, so float32 under mixed
    precision (as torch autocast keeps them), float64 under the float64 policy."""
    return keras.config.dtype_policy().variable_dtype


def gelu_exact(x):
    """GELU in its exact erf form, 0.5 x (1 + erf(x / sqrt(2))), torch's nn.GELU(approximate="none").

    Written out rather than keras.ops.gelu(approximate=False): TensorFlow's gelu casts its 1/sqrt(2)
    through float32 even for float64 inputs, 2.5e-9 off the exact function, which float64 parity sees.
    """
    return 0.5 * x * (1.0 + keras.ops.erf(x * (1.0 / math.sqrt(2.0))))


def gelu_tanh(x):
    """GPT-2's tanh approximation ("gelu_new"), torch's nn.GELU(approximate="tanh"); written out for the
    reason gelu_exact is."""
    return 0.5 * x * (1.0 + keras.ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def dense_init() -> keras.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's nn.Linear default (Keras defaults to Glorot)."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def conv_init() -> keras.initializers.Initializer:
    """N(0, 2/fan_in), untruncated (Keras' HeNormal truncates; torch's kaiming_normal_ does not)."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="untruncated_normal")


def normal_init(std: float) -> keras.initializers.Initializer:
    """N(0, std), untruncated (Keras' TruncatedNormal would cut at 2 std); Dense biases stay zero.

    Twin of common_torch.init_normal. Keras defaults: Dense Glorot-uniform, Embedding U(-0.05, 0.05).
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=std)


def token_ids_as_they_are(inputs: np.ndarray) -> np.ndarray:
    """(B, T) token ids, kept int64 rather than TF's usual int32: TF pins int32 tensors to host memory
    on GPU (its Identity kernel is host-only for int32), which would add a copy to every step."""
    return inputs
