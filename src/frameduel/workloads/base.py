"""The framework-free contract every workload meets.

A workload is a spec shared by both frameworks (config presets, data maker, loss, optimizer) plus
one model module per framework, side by side (``model_torch.py``, ``model_tf.py``). Only those model
modules and ``frameduel.frameworks`` import torch or tensorflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from frameduel.errors import FrameduelError
from frameduel.spec import LoraSettings, check_choice


@dataclass(frozen=True)
class Batch:
    """One batch in the canonical (framework-neutral) layout the workload documents."""

    inputs: np.ndarray
    targets: np.ndarray  # int64 class indices, shape (B,)


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam (or plain SGD) with every default pinned: Keras' Adam epsilon (1e-7) differs from torch's (1e-8)."""

    name: str = "adam"  # "adam" or "sgd"
    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8


@dataclass(frozen=True)
class DigitsAdapter:
    """How a workload trains on real data: scikit-learn's 8x8 handwritten digits (`frameduel accuracy`)."""

    config: Any  # the workload's config dataclass, sized for 8x8 grey images and 10 classes
    to_inputs: Callable[[np.ndarray], np.ndarray]  # images (N, 8, 8) float32 in [0, 1] -> canonical inputs


@dataclass(frozen=True)
class Workload:
    """A benchmarkable model: how to size it, feed it and build it in each framework."""

    name: str
    description: str
    presets: dict[str, Any]  # size name -> frozen config dataclass
    make_batch: Callable[[Any, int, int], Batch]  # (config, batch_size, seed) -> Batch
    model_modules: dict[str, str]  # framework -> module exposing build(config) and to_native_layout(x)
    optimizer: OptimizerConfig = OptimizerConfig()
    loss: str = "cross_entropy"  # logits (B, classes) vs int targets (B,)
    # Language models only: config -> (prompt tokens, new tokens) of a fixed-length generation; the
    # model modules then also expose new_cache, prefill and decode_step (see workloads/gpt/).
    generation: Callable[[Any], tuple[int, int]] | None = None
    # Analytic FLOPs of one sample's forward pass (multiply-adds x 2, matmuls and convolutions only:
    # norms, activations and softmax are left out). Training counts 3x: backward is about twice forward.
    forward_flops: Callable[[Any], float] | None = None
    # Workloads that can learn the digits data set (see frameduel.datasets); None: `accuracy` rejects it.
    digits: DigitsAdapter | None = None
    # LoRA fine-tuning (task "finetune"): the Linear modules an adapter may target, by their last torch
    # name component, and the ones it targets by default. Empty: the workload has no finetune task.
    lora_modules: tuple[str, ...] = ()
    lora_defaults: tuple[str, ...] = ()

    @property
    def tasks(self) -> tuple[str, ...]:
        tasks = ("train", "infer", "generate") if self.generation else ("train", "infer")
        return (*tasks, "finetune") if self.lora_modules else tasks

    def config(self, size: str) -> Any:
        return self.presets[size]

    def lora_settings(self, rank: int, alpha: float, targets: tuple[str, ...] | None = None) -> LoraSettings:
        """Adapters for this workload's finetune task: the given targets (checked), or its defaults."""
        if not self.lora_modules:
            raise FrameduelError(f"workload '{self.name}' has no finetune task (LoRA needs a language model: "
                                 "gpt or llama)")
        for target in targets or ():
            check_choice(f"LoRA target module of {self.name}", target, self.lora_modules)
        return LoraSettings(rank=rank, alpha=alpha, targets=tuple(targets or self.lora_defaults))


def side_by_side(package: str) -> dict[str, str]:
    """model_modules for the usual layout: <package>/model_torch.py and <package>/model_tf.py."""
    return {"torch": f"{package}.model_torch", "tf": f"{package}.model_tf"}
