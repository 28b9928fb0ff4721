"""TensorFlow side: eager, tf.function and tf.function(jit_compile=True) (XLA) steps, with Keras 3
layers and mixed-precision policies."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

# Must be set before TensorFlow/Keras are imported: Keras 3 picks its backend at import time, and
# TF's C++ start-up chatter would otherwise drown the worker's one-line errors.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from frameduel.frameworks import Step  # noqa: E402
from frameduel.spec import RunSpec  # noqa: E402
from frameduel.workloads.base import Batch, Workload  # noqa: E402

PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


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
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[spec.precision])
    return {
        "framework_version": tf.__version__,
        "keras_version": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "device_name": gpus[0].name if spec.device == "cuda" and gpus else "cpu",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "precision_policy": keras.mixed_precision.global_policy().name,
    }


def build_model(workload: Workload, spec: RunSpec) -> keras.Model:
    model_module = importlib.import_module(workload.model_modules["tf"])
    with tf.device(_device_name(spec)):
        return model_module.build(workload.config(spec.size))


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple[tf.Tensor, tf.Tensor]:
    """Place the batch on the device once: steps measure compute, not host-to-device copies."""
    model_module = importlib.import_module(workload.model_modules["tf"])
    with tf.device(_device_name(spec)):
        inputs = tf.identity(tf.constant(model_module.to_native_layout(batch.inputs)))
        targets = tf.identity(tf.constant(batch.targets))
    return inputs, targets


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    if spec.task == "infer":

        def infer_step(x: tf.Tensor) -> tf.Tensor:
            return model(x, training=False)

        return _wrap(infer_step, spec, (inputs,))

    opt = workload.optimizer
    optimizer = keras.optimizers.Adam(
        learning_rate=opt.learning_rate, beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.epsilon
    )
    if spec.precision == "fp16":  # loss scaling keeps small fp16 gradients from underflowing
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Slots must exist before tracing: a tf.function may not create variables on later traces.
    optimizer.build(model.trainable_variables)

    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32))
            )
            scaled_loss = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return _wrap(train_step, spec, (inputs, targets))


def _wrap(step_fn: Callable[..., tf.Tensor], spec: RunSpec, args: tuple[tf.Tensor, ...]) -> Step:
    """Apply the execution mode; compiled modes get an explicit trace so it is timed on its own."""
    sync = _sync_device if spec.device == "cuda" else _no_sync
    if spec.mode == "eager":
        return Step(run=lambda: step_fn(*args), sync=sync)
    function = tf.function(step_fn, jit_compile=spec.mode == "xla")
    return Step(
        run=lambda: function(*args),
        sync=sync,
        trace=lambda: function.get_concrete_function(*args),  # XLA compiles later, on the first call
    )


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
