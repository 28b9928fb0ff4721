"""TensorFlow side: eager, tf.function and tf.function(jit_compile=True) (XLA) steps, with Keras 3
layers and mixed-precision policies."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

# Must be set before TensorFlow/Keras are imported: Keras 3 picks its backend at import time, and
# TF's C++ start-up chatter would otherwise drown the worker's one-line errors.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from frameduel.checkpoints import model_config, open_checkpoint  # noqa: E402
from frameduel.checkpoints.adapters import base_model_name, read_adapter  # noqa: E402
from frameduel.checkpoints.adapters import save_adapter as write_adapter  # noqa: E402
from frameduel.frameworks import Generation, Step, load_adapter, plan_generation, tf_lora  # noqa: E402
from frameduel.spec import RunSpec  # noqa: E402
from frameduel.workloads.base import Batch, OptimizerConfig, Workload  # noqa: E402
from frameduel.workloads.common_tf import full_precision  # noqa: E402
from frameduel.workloads.weight_layouts import LAYOUTS, check_weight_names  # noqa: E402

PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16", "fp64": "float64"}
# Keras optimizer attributes holding one slot per trainable variable -> canonical slot names (torch's twin).
SLOT_NAMES = {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat", "momentums": "momentum"}


def configure(spec: RunSpec) -> dict[str, Any]:
    """Pin threads, devices, seeds and the precision policy before any op runs."""
    tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
    tf.config.threading.set_inter_op_parallelism_threads(spec.threads)
    gpus = tf.config.list_physical_devices("GPU")
    if spec.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    else:
        for gpu in gpus:  # grow on demand, else TF reserves the whole card and peak memory means nothing
            tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(spec.seed)
    use_precision(spec)
    return {
        "framework_version": tf.__version__,
        "keras_version": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "device_name": gpus[0].name if spec.device == "cuda" and gpus else "cpu",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "precision_policy": keras.mixed_precision.global_policy().name,
    }


def use_precision(spec: RunSpec) -> None:
    """Switch precision between models of one process: Keras builds layers under the global policy."""
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[spec.precision])


def compile_facts(spec: RunSpec) -> dict[str, Any]:
    """tf.function and XLA either trace the whole step or fail it, so there is nothing partial to report."""
    return {}


def build_model(workload: Workload, spec: RunSpec) -> keras.Model:
    model_module = _model_module(workload)
    with tf.device(_device_name(spec)):
        model = model_module.build(model_config(workload, spec.checkpoint, spec.size))
    if spec.checkpoint:
        import_weights(workload, model, open_checkpoint(spec.checkpoint).weights())
    if spec.lora:  # after the base weights are in, as torch's twin
        tf_lora.add_adapters(model_module, model, spec.lora)
    if spec.adapter:  # Keras reads no PEFT files: enable LoRA with the adapter's settings, then load it
        settings, adapter = read_adapter(Path(spec.adapter))
        tf_lora.add_adapters(model_module, model, settings)
        load_adapter(sys.modules[__name__], workload, model, adapter)
    return model


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple[tf.Tensor, tf.Tensor]:
    """Place the batch on the device once: steps measure compute, not host-to-device copies."""
    model_module = _model_module(workload)
    inputs = model_module.to_native_layout(batch.inputs)
    if inputs.dtype.kind == "f":  # token ids stay integers; features take the weights' dtype
        inputs = inputs.astype(full_precision())
    with tf.device(_device_name(spec)):
        inputs = tf.identity(tf.constant(inputs))
        targets = tf.identity(tf.constant(batch.targets))
    return inputs, targets


def make_optimizer(model: keras.Model, spec: RunSpec, opt: OptimizerConfig) -> keras.optimizers.Optimizer:
    if opt.name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=opt.learning_rate)
    else:
        optimizer = keras.optimizers.Adam(
            learning_rate=opt.learning_rate, beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.epsilon
        )
    if spec.precision == "fp16":  # loss scaling keeps small fp16 gradients from underflowing
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Slots must exist before tracing: a tf.function may not create variables on later traces.
    optimizer.build(model.trainable_variables)
    return optimizer


def make_train_fn(
    model: keras.Model, spec: RunSpec, optimizer: keras.optimizers.Optimizer
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """One training step: forward, cross-entropy on full-precision logits, gradients, optimizer step."""
    gradients = make_gradient_fn(model, optimizer)

    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss, grads = gradients(x, y)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return apply_mode(train_step, spec)


def make_gradient_fn(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                     loss_share: float = 1.0) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, list[tf.Tensor]]]:
    """(loss, gradients of loss_share * loss) of one batch. A data-parallel worker's share is 1 / workers:
    the optimizer sums the workers' gradients, so the sum is the gradient of the global batch's mean."""
    loss_dtype = full_precision()

    def gradients(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, loss_dtype))
            )
            scaled_loss = optimizer.scale_loss(loss * loss_share if loss_share != 1.0 else loss)
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        # An Embedding's gradient comes as IndexedSlices, one row per lookup, repeated tokens included.
        # Keras' Adam squares those rows before they are summed (v gets sum(g_i^2), not sum(g_i)^2), so
        # a repeated token takes a larger step than in torch. Summing them first, into the dense
        # gradient torch's nn.Embedding also produces, gives both frameworks the same update.
        return loss, [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]

    return gradients


def make_infer_fn(model: keras.Model, spec: RunSpec) -> Callable[[tf.Tensor], tf.Tensor]:
    def infer_step(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False)

    return apply_mode(infer_step, spec)


def apply_mode(step_fn: Callable[..., tf.Tensor], spec: RunSpec) -> Callable[..., tf.Tensor]:
    if spec.mode == "eager":
        return step_fn
    return tf.function(step_fn, jit_compile=spec.mode == "xla")


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    if spec.task == "infer":
        step_fn, args = make_infer_fn(model, spec), (inputs,)
    else:
        optimizer = make_optimizer(model, spec, workload.optimizer)
        step_fn, args = make_train_fn(model, spec, optimizer), (inputs, targets)
    sync = _sync_device if spec.device == "cuda" else _no_sync
    # Compiled modes get an explicit trace so it is timed on its own; XLA compiles later, on the first call.
    trace = (lambda: step_fn.get_concrete_function(*args)) if spec.mode != "eager" else None
    return Step(run=lambda: step_fn(*args), sync=sync, trace=trace, model=model)


def make_generation(workload: Workload, spec: RunSpec, batch: Batch, prompt_ids: np.ndarray | None = None,
                    new_tokens: int | None = None) -> Generation:
    """Greedy fixed-length decoding with the model file's static KV cache (prefill, then decode_step);
    the lengths and the prompt as frameworks.plan_generation sets them."""
    model = build_model(workload, spec)
    model_module, config = _model_module(workload), model_config(workload, spec.checkpoint, spec.size)
    plan = plan_generation(workload, config, batch, prompt_ids, new_tokens)
    prompt = to_tensors(workload, spec, plan.prompt)[0]  # (B, P)
    prefill = apply_mode(lambda ids, cache: model_module.prefill(model, ids, cache), spec)
    decode_step = apply_mode(lambda ids, pos, cache: model_module.decode_step(model, ids, pos, cache), spec)
    # Positions as tensors, not ints: one traced (and XLA-compiled) decode graph serves every position.
    positions = [tf.constant(plan.prompt_len + i, dtype=tf.int32) for i in range(plan.decode_steps)]

    def run_prefill() -> object:
        with tf.device(_device_name(spec)):
            return prefill(prompt, model_module.new_cache(model, config, prompt.shape[0], plan.cache_length))

    def run_decode(state: object, index: int) -> object:
        tokens, cache = state
        with tf.device(_device_name(spec)):
            return decode_step(tokens, positions[index], cache)

    sync = _sync_device if spec.device == "cuda" else _no_sync
    return Generation(prefill=run_prefill, decode=run_decode, sync=sync, new_tokens=plan.decode_steps,
                      token_ids=lambda state: to_numpy(state[0]))


def parameter_counts(workload: Workload, model: keras.Model) -> tuple[int, int]:
    """(all, trainable) parameters: with LoRA, the adapters are the trainable ones."""
    return tf_lora.parameter_counts(model)


def save_adapter(workload: Workload, model: keras.Model, spec: RunSpec, directory: Path) -> Path:
    """A PEFT-format adapter directory (Keras has no writer of its own for PEFT's format)."""
    return write_adapter(directory, export_weights(workload, model), spec.lora, base_model_name(spec))


def set_training(model: keras.Model, training: bool) -> None:
    """Keras takes training= on every call, so there is no mode to switch (torch's twin does)."""


def to_numpy(value: tf.Tensor) -> np.ndarray:
    """float64 stays float64; half types become float32 (numpy has no bfloat16)."""
    if value.dtype in (tf.float16, tf.bfloat16):
        value = tf.cast(value, tf.float32)
    return np.asarray(value)


def _device_name(spec: RunSpec) -> str:
    return "/GPU:0" if spec.device == "cuda" else "/CPU:0"


def _sync_device() -> None:
    tf.test.experimental.sync_devices()


def _no_sync() -> None:
    """CPU kernels run synchronously: a step has finished when its call returns."""


def peak_device_memory_mb(spec: RunSpec) -> float | None:
    if spec.device != "cuda":
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (tf.errors.ResourceExhaustedError, MemoryError))


# -- Parity: weights in torch's state_dict form (via each model's weight_map), outputs, loss curves,
# -- activations at the layers each model file names as matching a torch module.


def export_weights(workload: Workload, model: keras.Model) -> dict[str, np.ndarray]:
    weights = {}
    for entry in _model_module(workload).weight_map(model):
        arrays = LAYOUTS[entry.layout].to_canonical(np.asarray(entry.variable.numpy()))
        weights.update(zip(entry.canonical, arrays, strict=True))
    return weights


def import_weights(workload: Workload, model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Assign variable by variable: `weights` may read lazily from disk (a checkpoint), see torch's twin."""
    entries = _model_module(workload).weight_map(model)
    check_weight_names({name for entry in entries for name in entry.canonical}, set(weights), "tf")
    for entry in entries:
        value = LAYOUTS[entry.layout].from_canonical(*(weights[name] for name in entry.canonical))
        if tuple(value.shape) != tuple(entry.variable.shape):
            raise ValueError(f"weight {entry.canonical[0]}: shape {value.shape} does not fit Keras variable "
                             f"{entry.variable.path} {tuple(entry.variable.shape)}")
        entry.variable.assign(value)


def shared_weights(workload: Workload, model: keras.Model) -> list[tuple[list[str], str]]:
    """Torch tensors one Keras variable holds together, with the layout joining them (the summed LSTM
    bias, a tied head): parity compares trained state in this map's normal form, see parity/judge.py."""
    return [(list(entry.canonical), entry.layout) for entry in _model_module(workload).weight_map(model)
            if len(entry.canonical) > 1]


def forward(workload: Workload, spec: RunSpec, model: keras.Model, batch: Batch) -> np.ndarray:
    inputs, _ = to_tensors(workload, spec, batch)
    return to_numpy(make_infer_fn(model, spec)(inputs))


def capture_activations(workload: Workload, model: keras.Model, run: Callable[[], object]) -> dict[str, np.ndarray]:
    """Outputs of the model file's probe points while run() executes eagerly (an eval forward, or a
    training step), converted to torch's layout and keyed by torch module name.

    Keras has no forward hooks, so each probed layer's `call` is wrapped for the duration, then restored.
    """
    model_module = _model_module(workload)
    captured: dict[str, np.ndarray] = {}
    points = model_module.probe_points(model)

    def recording(name: str, call: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
        def call_and_record(*args: object, **kwargs: object) -> tf.Tensor:
            output = call(*args, **kwargs)
            captured[name] = model_module.activation_to_canonical(to_numpy(output))
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
    for entry in _model_module(workload).weight_map(model):
        if id(entry.variable) not in position:
            continue  # not trained (BatchNorm statistics): no slots
        for attr, slots in slot_lists.items():
            slot = to_numpy(slots[position[id(entry.variable)]].value)
            name = f"{entry.canonical[0]}/{SLOT_NAMES.get(attr, attr.lstrip('_'))}"
            state[name] = LAYOUTS[entry.layout].to_canonical(slot)[0]
    state["step"] = np.asarray([float(inner.iterations.numpy())])
    return state


def is_slot_list(value: object, trainable: list[keras.Variable]) -> bool:
    """One variable per trainable variable, shaped like it, and not the trainable variables themselves."""
    return (isinstance(value, list) and len(value) == len(trainable) > 0
            and all(isinstance(v, keras.Variable) and tuple(v.shape) == tuple(t.shape) and v is not t
                    for v, t in zip(value, trainable, strict=True)))


def align_adam_epsilon(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Parity only: Keras' epsilon placement is the reference (torch's twin moves torch's to match)."""
    return optimizer


def _model_module(workload: Workload) -> ModuleType:
    return importlib.import_module(workload.model_modules["tf"])
