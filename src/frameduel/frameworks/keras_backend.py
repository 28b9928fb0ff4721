"""Keras 3 on torch or JAX: the "tf" framework's Keras models, run through Keras' own trainer.

Imported through keras_torch_backend or keras_jax_backend, which set KERAS_BACKEND before Keras is
first imported: one process runs one backend. The step is what a Keras user runs on that backend:
`model.compile(optimizer, loss, jit_compile=...)`, then `train_on_batch` (forward, loss, gradients
and the optimizer step, in Keras' trainer for the backend) or `predict_on_batch`. So a cell beside
native torch measures what the Keras layer costs or gains on the same backend.

Modes: keras-torch "eager" (the torch trainer as is) and "compile" (jit_compile=True: Keras wraps its
train and predict steps in torch.compile); keras-jax "jit" (jit_compile=True: jax.jit of the stateless
step) and "eager" (run_eagerly=True: every op dispatched from Python, the JAX debugging path).
Weights, optimizer slots, activations and LoRA are keras_common's, as on TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from frameduel.frameworks.lean_import import without_optional_extras

# JAX is keras-jax's backend (KERAS_BACKEND is set by the module importing this one); keras-torch has no use for it.
with without_optional_extras(keep=("jax",) if os.environ.get("KERAS_BACKEND") == "jax" else ()):
    import keras
    from keras.src.backend.common import dtypes as keras_dtypes  # no public name: see promote_to_float64

from frameduel.checkpoints import model_config
from frameduel.errors import Unsupported
from frameduel.frameworks import BACKEND_CONTRACT, Generation, Step, plan_generation
from frameduel.frameworks.keras_common import (  # noqa: F401 - the Keras-generic part of the backend's surface
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
)
from frameduel.frameworks.keras_common import build_model as build_keras_model
from frameduel.frameworks.keras_common import model_module as _model_module
from frameduel.frameworks.keras_common import use_precision as use_keras_precision
from frameduel.spec import RunSpec
from frameduel.workloads.base import Batch, Workload
from frameduel.workloads.common_tf import full_precision

__all__ = list(BACKEND_CONTRACT)  # what keras_torch_backend and keras_jax_backend re-export

BACKEND = keras.backend.backend()
if BACKEND not in ("torch", "jax"):
    raise RuntimeError(f"keras_backend runs Keras on torch or JAX, but this process's Keras runs on {BACKEND}")


# -- What differs between the two backends: threads, devices, memory, errors. Nothing else does. --------


@dataclass(frozen=True)
class Native:
    configure: Callable[[RunSpec], dict[str, Any]]  # before any op runs
    use_precision: Callable[[RunSpec], None]  # what the backend itself needs for a precision
    ready: Callable[[object], object]  # wait until a result is computed (JAX dispatches asynchronously)
    peak_device_mb: Callable[[], float]
    out_of_memory: Callable[[BaseException], bool]
    compile_facts: Callable[[RunSpec], dict[str, Any]]


def torch_native() -> Native:
    import torch

    from frameduel.frameworks import torch_backend

    def configure(spec: RunSpec) -> dict[str, Any]:
        return {**torch_backend.configure(spec), "keras_version": keras.__version__, "keras_backend": BACKEND}

    def ready(value: object) -> object:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return value

    return Native(configure, lambda spec: None, ready, lambda: torch.cuda.max_memory_allocated() / 2**20,
                  torch_backend.is_out_of_memory, torch_backend.compile_facts)


def jax_native() -> Native:
    import jax

    def configure(spec: RunSpec) -> dict[str, Any]:
        # JAX reads these when its runtime starts, at the first op, which has not run yet.
        jax.config.update("jax_platforms", "cuda" if spec.device == "cuda" else "cpu")
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # else JAX reserves 75% of the card: no peak
        cores = sorted(os.sched_getaffinity(0))
        if spec.device == "cpu" and spec.threads < len(cores):
            # XLA's CPU client sizes its thread pool from the cores it may run on; it has no thread setting.
            os.sched_setaffinity(0, cores[:spec.threads])
        return {"framework_version": jax.__version__, "keras_version": keras.__version__, "keras_backend": BACKEND,
                "device_name": str(jax.devices()[0]), "cpu_affinity": sorted(os.sched_getaffinity(0))}

    def use_precision(spec: RunSpec) -> None:
        jax.config.update("jax_enable_x64", spec.precision == "fp64")  # else float64 silently becomes float32

    def peak_device_mb() -> float:
        return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20

    def out_of_memory(exc: BaseException) -> bool:
        return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in str(exc)

    return Native(configure, use_precision, jax.block_until_ready, peak_device_mb, out_of_memory, lambda spec: {})


NATIVE = torch_native() if BACKEND == "torch" else jax_native()


def configure(spec: RunSpec) -> dict[str, Any]:
    """Threads, device and seeds before any op runs, then the precision policy."""
    facts = NATIVE.configure(spec)
    keras.utils.set_random_seed(spec.seed)
    use_precision(spec)
    return {**facts, "precision_policy": keras.mixed_precision.global_policy().name}


def use_precision(spec: RunSpec) -> None:
    """Switch precision between models of one process: the Keras policy, and what the backend needs.
    float64 is floatx too: Keras' trainer keeps its loss tracker (what train_on_batch returns) and
    converts untyped data in floatx, which would round a float64 loss to float32."""
    NATIVE.use_precision(spec)
    use_keras_precision(spec)
    keras.config.set_floatx("float64" if spec.precision == "fp64" else "float32")
    promote_to_float64(spec.precision == "fp64")


# Keras' type promotion (keras/src/backend/common/dtypes.py, "to be aligned with JAX's default") turns
# a 64-bit result type into 32 bits on every backend but TensorFlow: keras.ops.matmul of two float64
# tensors then computes in float32 (measured: 2e-7 off on torch). fp64 means float64 everywhere, so
# under fp64 frameduel switches that demotion off for the process, and back on for other precisions.
_KERAS_FLOAT64_RESULT = keras_dtypes.BIT64_TO_BIT32_DTYPE.get("float64")


def promote_to_float64(on: bool) -> None:
    keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64" if on else _KERAS_FLOAT64_RESULT


def compile_facts(spec: RunSpec) -> dict[str, Any]:
    return NATIVE.compile_facts(spec)


def peak_device_memory_mb(spec: RunSpec) -> float | None:
    return NATIVE.peak_device_mb() if spec.device == "cuda" else None


def is_out_of_memory(exc: BaseException) -> bool:
    return NATIVE.out_of_memory(exc)


def on_device(spec: RunSpec) -> contextlib.AbstractContextManager:
    """Keras places new tensors and variables on its default device (a GPU where there is one). No
    device index: Keras' torch Variable moves its new Parameter .to() the scope's device, and "cpu:0"
    is not torch's "cpu", so the move would copy it into a tensor that autograd does not fill."""
    return keras.device("gpu" if spec.device == "cuda" else "cpu")


def build_model(workload: Workload, spec: RunSpec) -> keras.Model:
    with on_device(spec):
        return build_keras_model(workload, spec)


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple[object, object]:
    """The batch on the device once, in the model's layout: steps measure compute, not copies."""
    inputs = _model_module(workload).to_native_layout(batch.inputs)
    if inputs.dtype.kind == "f":  # token ids stay integers; features take the weights' dtype
        inputs = inputs.astype(full_precision())
    with on_device(spec):  # the dtype said: Keras would turn float64 data into floatx (float32)
        return keras.ops.convert_to_tensor(inputs, dtype=str(inputs.dtype)), keras.ops.convert_to_tensor(batch.targets)


def compile_for(model: keras.Model, spec: RunSpec, optimizer: keras.optimizers.Optimizer | None = None) -> None:
    """Keras' compile for the mode: the loss is frameduel's (cross-entropy on full-precision logits)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=full_precision())
    model.compile(optimizer=optimizer, loss=loss if optimizer is not None else None,
                  jit_compile=spec.mode != "eager", run_eagerly=spec.mode == "eager")


def make_train_fn(model: keras.Model, spec: RunSpec,
                  optimizer: keras.optimizers.Optimizer) -> Callable[[object, object], float]:
    """One training step through Keras' trainer: forward, loss, gradients, optimizer step; returns the loss."""
    compile_for(model, spec, optimizer)

    def train_step(x: object, y: object) -> float:
        with on_device(spec):
            return model.train_on_batch(x, y)  # the loss as a float: the step has finished

    return train_step


def make_infer_fn(model: keras.Model, spec: RunSpec) -> Callable[[object], np.ndarray]:
    """One forward through Keras' predict step, in inference mode; its output comes back as numpy. A
    model compiled for training keeps its optimizer (compiling again would drop it)."""
    if not model.compiled:
        compile_for(model, spec)

    def infer_step(x: object) -> np.ndarray:
        with on_device(spec):
            return model.predict_on_batch(x)

    return infer_step


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    if spec.task == "infer":
        infer = make_infer_fn(model, spec)
        run = lambda: infer(inputs)  # noqa: E731
    else:
        train = make_train_fn(model, spec, make_optimizer(model, spec, workload.optimizer))
        run = lambda: train(inputs, targets)  # noqa: E731
    # Both return host values, so a step has finished on the device when it returns.
    return Step(run=run, sync=_no_sync, model=model)


def forward(workload: Workload, spec: RunSpec, model: keras.Model, batch: Batch) -> np.ndarray:
    inputs, _ = to_tensors(workload, spec, batch)
    return to_numpy(make_infer_fn(model, spec)(inputs))


def make_generation(workload: Workload, spec: RunSpec, batch: Batch, prompt_ids: np.ndarray | None = None,
                    new_tokens: int | None = None) -> Generation:
    """Greedy fixed-length decoding with the model file's static KV cache, eagerly: the Keras decoders'
    prefill and decode_step are plain functions of the model, which Keras compiles only inside its own
    predict step (one fixed call signature), not as a decoding loop."""
    if spec.mode != "eager":
        raise Unsupported(f"{spec.framework} generates in eager mode only: Keras compiles (jit_compile) its "
                          "predict step, not a KV-cache decoding loop; use --modes eager for generate")
    model = build_model(workload, spec)
    module, config = _model_module(workload), model_config(workload, spec.checkpoint, spec.size)
    plan = plan_generation(workload, config, batch, prompt_ids, new_tokens)
    prompt = to_tensors(workload, spec, plan.prompt)[0]  # (B, P)
    positions = [keras.ops.convert_to_tensor(plan.prompt_len + i, dtype="int32") for i in range(plan.decode_steps)]

    def run_prefill() -> object:
        with on_device(spec):
            cache = module.new_cache(model, config, prompt.shape[0], plan.cache_length)
            return NATIVE.ready(module.prefill(model, prompt, cache))

    def run_decode(state: object, index: int) -> object:
        tokens, cache = state
        with on_device(spec):
            return NATIVE.ready(module.decode_step(model, tokens, positions[index], cache))

    return Generation(prefill=run_prefill, decode=run_decode, sync=_no_sync, new_tokens=plan.decode_steps,
                      token_ids=lambda state: to_numpy(state[0]))


def _no_sync() -> None:
    """Every step above returns computed values (NATIVE.ready, or host values): nothing is left to wait for."""
