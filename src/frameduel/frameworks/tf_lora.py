"""LoRA on the TF side through Keras 3's built-in LoRA: Dense.enable_lora.

Keras adds ``lora_kernel_a`` (in, r) and ``lora_kernel_b`` (r, out) to a Dense layer and computes
with ``kernel + (lora_alpha / r) * a @ b``, so it matches PEFT's W x + (alpha / r) B A x when
lora_alpha is passed (Keras defaults it to r, PEFT scales by alpha / r: left to the defaults the two
train different models). enable_lora freezes the layer's kernel only; PEFT freezes every base
parameter (bias="none"), so everything else is frozen here too.
"""

from __future__ import annotations

import math
from types import ModuleType

import keras

from frameduel.errors import FrameduelError
from frameduel.spec import LoraSettings

LORA_KERNELS = ("lora_kernel_a", "lora_kernel_b")


def add_adapters(model_module: ModuleType, model: keras.Model, settings: LoraSettings) -> None:
    """LoRA on every Dense whose torch module name (the model file's probe points) ends in a target."""
    dense_layers = {name: layer for name, layer in model_module.probe_points(model).items()
                    if isinstance(layer, keras.layers.Dense)}
    unmatched = [t for t in settings.targets if not any(name.rsplit(".", 1)[-1] == t for name in dense_layers)]
    if unmatched:
        choices = sorted({name.rsplit(".", 1)[-1] for name in dense_layers})
        raise FrameduelError(f"LoRA target {', '.join(unmatched)} names no Dense layer of this model; "
                             f"choose from: {', '.join(choices)}")
    for variable in model.variables:
        variable.trainable = False
    for name, layer in dense_layers.items():
        if name.rsplit(".", 1)[-1] in settings.targets:
            layer.enable_lora(settings.rank, lora_alpha=settings.alpha)
            if layer.variable_dtype == "float64":
                widen_lora_kernels(layer)


def widen_lora_kernels(layer: keras.layers.Dense) -> None:
    """Keras always makes the LoRA kernels float32 (against under/overflow in half-precision models); in a
    float64 model that rounds every adapter update to float32, which the float64 parity proof would see
    as a difference from PEFT (whose adapters take the base layer's dtype). Recreate them as float64."""
    layer._tracker.unlock()
    try:
        for name in LORA_KERNELS:
            old = getattr(layer, name)
            # The tracker knows variables by id(): untrack the old one while it is still alive, else the
            # new one may be born at its address and be taken for it (and never trained).
            layer._tracker.untrack(old)
            # add_weight names it under the layer ("dense_3/lora_kernel_a"): Keras' torch backend registers
            # a model's parameters by path, and two adapters both named "lora_kernel_a" would be one
            # parameter there, the other never zeroed between steps.
            new = layer.add_weight(name=name, shape=tuple(old.shape), initializer="zeros", dtype="float64",
                                   trainable=True)
            new.assign(old.numpy().astype("float64"))
            setattr(layer, name, new)
            del old
    finally:
        layer._tracker.lock()


def parameter_counts(model: keras.Model) -> tuple[int, int]:
    """(all, trainable) parameters: Keras holds a tied weight as one variable."""
    return (sum(math.prod(v.shape) for v in model.weights),
            sum(math.prod(v.shape) for v in model.trainable_variables))
