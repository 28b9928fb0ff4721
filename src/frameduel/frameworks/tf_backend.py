"""TensorFlow side: eager, tf.function and tf.function(jit_compile=True) (XLA) steps, with Keras 3
layers and mixed-precision policies."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

# Must be set before TensorFlow/Keras are imported: Keras 3 picks its backend at import time, and
# TF's C++ start-up chatter would otherwise drown the worker's one-line errors.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from frameduel.frameworks.lean_import import without_optional_extras  # noqa: E402

with without_optional_extras():
    import keras
    import tensorflow as tf

from frameduel.checkpoints import model_config  # noqa: E402
from frameduel.frameworks import Generation, Step, plan_generation  # noqa: E402
from frameduel.frameworks.keras_common import (  # noqa: E402, F401 - the Keras-generic part of the backend's surface
    align_adam_epsilon,
    capture_activations,
    export_weights,
    import_weights,
    make_optimizer,
    optimizer_state,
    parameter_counts,
    save_adapter,
    set_training,
    shared_weights,
    to_numpy,
    use_precision,
)
from frameduel.frameworks.keras_common import build_model as build_keras_model  # noqa: E402
from frameduel.frameworks.keras_common import model_module as _model_module  # noqa: E402
from frameduel.spec import RunSpec  # noqa: E402
from frameduel.workloads.base import Batch, Workload  # noqa: E402
from frameduel.workloads.common_tf import full_precision  # noqa: E402

if keras.backend.backend() != "tensorflow":  # Keras was imported first in this process, on another backend
    raise RuntimeError(f"Keras runs on {keras.backend.backend()} in this process; one process runs one backend")


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


def compile_facts(spec: RunSpec) -> dict[str, Any]:
    """tf.function and XLA either trace the whole step or fail it, so there is nothing partial to report."""
    return {}


def build_model(workload: Workload, spec: RunSpec) -> keras.Model:
    with tf.device(_device_name(spec)):
        return build_keras_model(workload, spec)


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




def forward(workload: Workload, spec: RunSpec, model: keras.Model, batch: Batch) -> np.ndarray:
    inputs, _ = to_tensors(workload, spec, batch)
    return to_numpy(make_infer_fn(model, spec)(inputs))
