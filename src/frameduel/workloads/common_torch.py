"""Initialisers shared by the PyTorch model files; each has its twin in common_tf.py."""

from __future__ import annotations

import math

from torch import nn


def init_linear(layer: nn.Linear) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights (torch's default), zero bias (Keras' default).

    Pinned explicitly so both frameworks start from the same distribution.
    """
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.weight, -bound, bound)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def init_conv(layer: nn.Conv2d) -> None:
    """He normal, fan_in, untruncated: N(0, 2/fan_in). Twin of common_tf.conv_init."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def init_normal(module: nn.Linear | nn.Embedding, std: float) -> None:
    """N(0, std) untruncated weights, zero bias: the GPT-2/BERT scheme. Twin of common_tf.normal_init.

    torch's own defaults differ by layer type (Linear: uniform, Embedding: N(0, 1)), so transformer
    models pin one scheme for both.
    """
    nn.init.normal_(module.weight, mean=0.0, std=std)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
