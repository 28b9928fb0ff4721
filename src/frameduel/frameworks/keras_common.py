"""What every Keras backend shares: the Keras models' weights, optimizer slots, activations and precision.

tf_backend (Keras on TensorFlow, with its own GradientTape step) and keras_backend (Keras on torch or
JAX, through Keras' own trainer) differ in how a step runs; the model files, the weight layouts and
everything parity reads from a Keras model are the same code on every backend, so they live here.
This module never imports a backend: the backend module that imports it has set KERAS_BACKEND first.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import keras
import numpy as np

from frameduel.checkpoints import model_config, open_checkpoint
from frameduel.checkpoints.adapters import base_model_name, read_adapter
from frameduel.checkpoints.adapters import save_adapter as write_adapter
from frameduel.frameworks import load_adapter, tf_lora
from frameduel.spec import RunSpec
from frameduel.workloads.base import OptimizerConfig, Workload
from frameduel.workloads.weight_layouts import LAYOUTS, check_weight_names

PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16", "fp64": "float64"}
# Keras optimizer attributes holding one slot per trainable variable -> canonical slot names (torch's twin).
SLOT_NAMES = {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat", "momentums": "momentum"}


def use_precision(spec: RunSpec) -> None:
    """Switch precision between models of one process: Keras builds layers under the global policy."""
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[spec.precision])


def model_module(workload: Workload) -> ModuleType:
    return importlib.import_module(workload.model_modules["tf"])


def build_model(workload: Workload, spec: RunSpec) -> keras.Model:
    """The Keras model of the spec: the checkpoint's weights, then LoRA adapters (new, or a PEFT adapter's)."""
    module = model_module(workload)
    model = module.build(model_config(workload, spec.checkpoint, spec.size))
    if spec.checkpoint:
        import_weights(workload, model, open_checkpoint(spec.checkpoint).weights())
    if spec.lora:  # after the base weights are in, as torch's twin
        tf_lora.add_adapters(module, model, spec.lora)
    if spec.adapter:  # Keras reads no PEFT files: enable LoRA with the adapter's settings, then load it
        settings, adapter = read_adapter(Path(spec.adapter))
        tf_lora.add_adapters(module, model, settings)
        load_adapter(sys.modules[__name__], workload, model, adapter)
    return model


def make_optimizer(model: keras.Model, spec: RunSpec, opt: OptimizerConfig) -> keras.optimizers.Optimizer:
    if opt.name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=opt.learning_rate)
    else:
        optimizer = keras.optimizers.Adam(
            learning_rate=opt.learning_rate, beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.epsilon
        )
    if spec.precision == "fp16":  # loss scaling keeps small fp16 gradients from underflowing
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Slots must exist before tracing: a traced step may not create variables on later traces.
    optimizer.build(model.trainable_variables)
    return optimizer


def parameter_counts(workload: Workload, model: keras.Model) -> tuple[int, int]:
    """(all, trainable) parameters: with LoRA, the adapters are the trainable ones."""
    return tf_lora.parameter_counts(model)


def save_adapter(workload: Workload, model: keras.Model, spec: RunSpec, directory: Path) -> Path:
    """A PEFT-format adapter directory (Keras has no writer of its own for PEFT's format)."""
    return write_adapter(directory, export_weights(workload, model), spec.lora, base_model_name(spec))


def set_training(model: keras.Model, training: bool) -> None:
    """Keras takes training= on every call, so there is no mode to switch (torch's twin does)."""


def to_numpy(value: object) -> np.ndarray:
    """float64 stays float64; half types become float32 (numpy has no bfloat16). Host values (a loss
    Keras' trainer returned) pass through."""
    if isinstance(value, (float, int, np.ndarray, np.generic)):
        return np.asarray(value)
    if keras.backend.standardize_dtype(value.dtype) in ("float16", "bfloat16"):
        value = keras.ops.cast(value, "float32")
    return np.asarray(keras.ops.convert_to_numpy(value))


def align_adam_epsilon(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Parity only: Keras' epsilon placement is the reference (torch's twin moves torch's to match)."""
    return optimizer


# -- Parity: weights in torch's state_dict form (via each model's weight_map), outputs, loss curves,
# -- activations at the layers each model file names as matching a torch module.


def export_weights(workload: Workload, model: keras.Model) -> dict[str, np.ndarray]:
    weights = {}
    for entry in model_module(workload).weight_map(model):
        arrays = LAYOUTS[entry.layout].to_canonical(np.asarray(entry.variable.numpy()))
        weights.update(zip(entry.canonical, arrays, strict=True))
    return weights


def import_weights(workload: Workload, model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Assign variable by variable: `weights` may read lazily from disk (a checkpoint), see torch's twin."""
    entries = model_module(workload).weight_map(model)
    check_weight_names({name for entry in entries for name in entry.canonical}, set(weights), "keras")
    for entry in entries:
        value = LAYOUTS[entry.layout].from_canonical(*(weights[name] for name in entry.canonical))
        if tuple(value.shape) != tuple(entry.variable.shape):
            raise ValueError(f"weight {entry.canonical[0]}: shape {value.shape} does not fit Keras variable "
                             f"{entry.variable.path} {tuple(entry.variable.shape)}")
        entry.variable.assign(value)


def shared_weights(workload: Workload, model: keras.Model) -> list[tuple[list[str], str]]:
    """Torch tensors one Keras variable holds together, with the layout joining them (the summed LSTM
    bias, a tied head): parity compares trained state in this map's normal form, see parity/judge.py."""
    return [(list(entry.canonical), entry.layout) for entry in model_module(workload).weight_map(model)
            if len(entry.canonical) > 1]


def capture_activations(workload: Workload, model: keras.Model, run: Callable[[], object]) -> dict[str, np.ndarray]:
    """Outputs of the model file's probe points while run() executes eagerly (an eval forward, or a
    training step), converted to torch's layout and keyed by torch module name.

    Keras has no forward hooks, so each probed layer's `call` is wrapped for the duration, then restored.
    """
    module = model_module(workload)
    captured: dict[str, np.ndarray] = {}
    points = module.probe_points(model)

    def recording(name: str, call: Callable[..., object]) -> Callable[..., object]:
        def call_and_record(*args: object, **kwargs: object) -> object:
            output = call(*args, **kwargs)
            if not is_symbolic(output):  # Keras' trainer first traces the model for shapes, without values
                captured[name] = module.activation_to_canonical(to_numpy(primal(output)))
            return output

        return call_and_record

    for name, layer in points.items():
        layer.call = recording(name, layer.call)
    try:
        run()
    finally:
        for layer in points.values():
            del layer.call  # the instance attribute goes; the class's call shows through again
    return captured


def primal(value: object) -> object:
    """The value under JAX's differentiation: Keras' JAX trainer runs even an eager step inside
    jax.value_and_grad, whose tracers carry the forward value as .primal (elsewhere: the value itself)."""
    while hasattr(value, "primal"):
        value = value.primal
    return value


def is_symbolic(value: object) -> bool:
    """A shape-only tensor: Keras' trainer builds a model by tracing it for shapes before its first real
    step (compute_output_spec: KerasTensors, JAX tracers, torch "meta" tensors, all inside Keras'
    SymbolicScope, which has no public name)."""
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return in_symbolic_scope() or isinstance(value, keras.KerasTensor)


def optimizer_state(
    workload: Workload, model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> dict[str, np.ndarray]:
    """Every optimizer slot as '<torch parameter name>/<slot>' (m, v, vhat, momentum), plus 'step'.

    A slot is any optimizer attribute holding one variable per trainable variable, so slots an
    optimizer grows (amsgrad, momentum, EMA) show up without being listed. A Keras variable's slots
    are named by the first torch name it maps to: the summed LSTM bias is torch's bias_ih (bias_hh is
    frozen there), a tied embedding is torch's wte.weight.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's slots live inside
    trainable = model.trainable_variables
    slot_lists = {attr: value for attr, value in vars(inner).items() if is_slot_list(value, trainable)}
    position = {id(variable): i for i, variable in enumerate(trainable)}
    state: dict[str, np.ndarray] = {}
    for entry in model_module(workload).weight_map(model):
        if id(entry.variable) not in position:
            continue  # not trained (BatchNorm statistics): no slots
        for attr, slots in slot_lists.items():
            slot = to_numpy(slots[position[id(entry.variable)]].value)
            name = f"{entry.canonical[0]}/{SLOT_NAMES.get(attr, attr.lstrip('_'))}"
            state[name] = LAYOUTS[entry.layout].to_canonical(slot)[0]
    state["step"] = np.asarray([float(keras.ops.convert_to_numpy(inner.iterations.value))])
    return state


def is_slot_list(value: object, trainable: list[keras.Variable]) -> bool:
    """One variable per trainable variable, shaped like it, and not the trainable variables themselves."""
    return (isinstance(value, list) and len(value) == len(trainable) > 0
            and all(isinstance(v, keras.Variable) and tuple(v.shape) == tuple(t.shape) and v is not t
                    for v, t in zip(value, trainable, strict=True)))
