"""How a weight differs between Keras and PyTorch, as numpy transforms (framework-free).

The canonical form of a model's weights is PyTorch's ``state_dict``: torch names and torch layouts.
Each Keras model file lists its variables against those names in ``weight_map(model)``; a layout
says how to turn the Keras array into the canonical one(s) and back. Transfers in both directions
go through this one table, so a wrong transpose shows up in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Layout:
    to_canonical: Callable[[np.ndarray], Arrays]  # Keras array -> torch array(s)
    from_canonical: Callable[..., np.ndarray]  # torch array(s) -> Keras array


LAYOUTS: dict[str, Layout] = {
    # Embeddings, norms' scale/shift, biases and BatchNorm statistics: identical.
    "same": Layout(lambda a: (a,), lambda a: a),
    # Dense kernel (in, out) <-> nn.Linear weight (out, in); also LSTM kernels (in, 4H) <-> (4H, in),
    # whose gate order is i, f, g(c), o in both frameworks.
    "dense": Layout(lambda k: (k.T,), lambda w: w.T),
    # Conv2D kernel HWIO (kh, kw, in, out) <-> nn.Conv2d weight OIHW (out, in, kh, kw).
    "conv2d": Layout(lambda k: (k.transpose(3, 2, 0, 1),), lambda w: w.transpose(2, 3, 1, 0)),
    # Keras' LSTM has one bias; torch has b_ih and b_hh, which only ever appear summed.
    "lstm_bias": Layout(lambda b: (b, np.zeros_like(b)), lambda b_ih, b_hh: b_ih + b_hh),
    # One Keras variable seen under two torch names (a weight-tied LM head).
    "tied": Layout(lambda a: (a, a), lambda a, _tied: a),
}


@dataclass(frozen=True)
class WeightEntry:
    """One Keras variable and the torch state_dict name(s) it corresponds to."""

    canonical: tuple[str, ...]
    variable: Any  # a Keras variable (typed loosely: this module never imports a framework)
    layout: str = "same"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown weight layout '{self.layout}'; choose from: {', '.join(LAYOUTS)}")


def entry(name: str, variable: Any, layout: str = "same") -> WeightEntry:
    return WeightEntry(canonical=(name,), variable=variable, layout=layout)


def child(prefix: str, name: str) -> str:
    """torch's dotted state_dict name; an empty prefix is the root module (a bare nn.Linear, say)."""
    return f"{prefix}.{name}" if prefix else name


def dense_entries(prefix: str, layer: Any) -> list[WeightEntry]:
    """A Keras Dense layer <-> an nn.Linear at `prefix`; with LoRA enabled, PEFT's lora.Linear there.

    The kernel variable is Dense's `_kernel`: its `kernel` property is, under LoRA, the merged
    kernel + (alpha / r) a @ b, a value rather than the variable. Keras' lora_kernel_a (in, r) and
    lora_kernel_b (r, out) are PEFT's lora_A (r, in) and lora_B (out, r), each transposed.
    """
    entries = [entry(child(prefix, "weight"), layer._kernel, "dense")]
    if getattr(layer, "bias", None) is not None:
        entries.append(entry(child(prefix, "bias"), layer.bias))
    if getattr(layer, "lora_enabled", False):
        entries += [entry(child(prefix, "lora_A.weight"), layer.lora_kernel_a, "dense"),
                    entry(child(prefix, "lora_B.weight"), layer.lora_kernel_b, "dense")]
    return entries


def conv_entries(prefix: str, layer: Any) -> list[WeightEntry]:
    """A Keras Conv2D layer <-> an nn.Conv2d at `prefix`."""
    entries = [entry(child(prefix, "weight"), layer.kernel, "conv2d")]
    if getattr(layer, "bias", None) is not None:
        entries.append(entry(child(prefix, "bias"), layer.bias))
    return entries


def batch_norm_entries(prefix: str, layer: Any) -> list[WeightEntry]:
    """A Keras BatchNormalization <-> an nn.BatchNorm2d/1d at `prefix`, running statistics included."""
    return [
        entry(child(prefix, "weight"), layer.gamma),
        entry(child(prefix, "bias"), layer.beta),
        entry(child(prefix, "running_mean"), layer.moving_mean),
        entry(child(prefix, "running_var"), layer.moving_variance),
    ]


def layer_norm_entries(prefix: str, layer: Any) -> list[WeightEntry]:
    """A Keras LayerNormalization <-> an nn.LayerNorm at `prefix`."""
    return [entry(child(prefix, "weight"), layer.gamma), entry(child(prefix, "bias"), layer.beta)]


def check_weight_names(expected: set[str], given: set[str], where: str) -> None:
    """A weights file must name exactly the model's weights; say which are missing or extra."""
    missing, extra = sorted(expected - given), sorted(given - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        raise ValueError(f"weights do not match the {where} model: {'; '.join(parts)}")
