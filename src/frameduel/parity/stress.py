"""Stressed weights: the same model, pushed out of the near-zero regime where function variants agree.

With a workload's own initialisation most pre-activations sit within a unit of zero, where ReLU and
ReLU6, or GELU and a clipped GELU, are the same function and a wrong attention scale barely moves a
near-uniform softmax. The stress pass therefore reruns the comparison with weights rescaled from the
transferred ones, in canonical (torch state_dict) form, by rules that need no knowledge of the model:

- every tensor of two or more dimensions (Linear, Conv, LSTM kernels, embeddings) is rescaled to an
  RMS of GAIN / sqrt(fan_in), fan_in = the product of all but its first dimension, so a unit-RMS input
  leaves it with outputs of RMS about GAIN (embeddings, whose rows are the outputs, get rows of RMS
  GAIN / sqrt(width)); one that is all zero (LoRA's B before training) is drawn N(0, 1) first, so the
  stressed forward runs through the adapters and a scaling error shows at its layer;
- one-dimensional scales (a norm's ``weight``) are drawn from U(SCALE_LOW, SCALE_HIGH), biases and
  running means from N(0, SHIFT_STD), running variances from U(VAR_LOW, VAR_HIGH);
- floating-point inputs are multiplied by INPUT_GAIN (a power of two: exact in every precision).

The rules are deterministic in the weights and the tensor's name (a weight tied under two names gets
one value), so both frameworks compute the same stressed weights from the same transferred ones.
"""

from __future__ import annotations

import zlib

import numpy as np

GAIN = 2.0
SCALE_LOW, SCALE_HIGH = 0.5, 1.5
SHIFT_STD = 0.5
VAR_LOW, VAR_HIGH = 0.5, 2.0
INPUT_GAIN = 2.0


def stress_weights(weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Canonical weights -> stressed canonical weights (float64), by the module's rules."""
    return {name: stress_tensor(name, np.asarray(value, np.float64), seed) for name, value in weights.items()}


def stress_tensor(name: str, value: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if value.ndim >= 2:
        if not value.any():  # LoRA's B starts at zero: stressed, the adapter path must carry signal
            value = rng.standard_normal(value.shape)
        rms = float(np.sqrt(np.mean(value**2)))
        fan_in = int(np.prod(value.shape[1:]))
        return value * (GAIN / np.sqrt(fan_in) / rms)
    if name.endswith("running_var"):
        return rng.uniform(VAR_LOW, VAR_HIGH, value.shape)
    if name.endswith("weight"):
        return rng.uniform(SCALE_LOW, SCALE_HIGH, value.shape)
    return rng.normal(0.0, SHIFT_STD, value.shape)


def stress_inputs(inputs: np.ndarray) -> np.ndarray:
    """Features scaled by INPUT_GAIN; token ids as they are."""
    return inputs * INPUT_GAIN if inputs.dtype.kind == "f" else inputs
