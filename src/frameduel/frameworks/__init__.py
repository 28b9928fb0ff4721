"""The only package (besides workloads' model_torch.py / model_tf.py files) that imports a framework.

Every backend module (spec.FRAMEWORK_INFO names them: torch_backend, tf_backend, and keras_torch_backend
and keras_jax_backend, which run the Keras models on Keras' torch and JAX backends) exposes the same
public names (Keras 3's backend pattern):

    configure(spec) -> dict                  threads, seed, device, precision policy; returns runtime facts
    make_step(workload, spec, batch) -> Step build the model and one train/infer step for spec.mode
    make_generation(workload, spec, batch[, prompt, new_tokens]) -> Generation   KV-cache decoding (LMs)
    parameter_counts(workload, model) -> (all, trainable)
    save_adapter(workload, model, spec, directory)   a LoRA model's adapters in PEFT's format
    peak_device_memory_mb(spec) -> float | None
    compile_facts(spec) -> dict              after the steps: e.g. torch.compile's graph breaks
    is_out_of_memory(exc) -> bool

and, for parity, accuracy and export runs: use_precision, build_model, to_tensors, make_optimizer,
make_train_fn, make_infer_fn, set_training, to_numpy, export_weights, import_weights, forward,
capture_activations, optimizer_state, shared_weights and align_adam_epsilon. A RunSpec's `lora` (task
finetune) or `adapter` makes build_model return a LoRA model: PEFT's on torch (torch_lora.py), Keras'
enable_lora on TF (tf_lora.py), both under the same canonical weight names (load_adapter, below).

They are imported lazily, inside a worker process, so the parent process never loads a framework.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from frameduel.checkpoints.adapters import adapter_weights
from frameduel.errors import FrameduelError
from frameduel.spec import FRAMEWORK_INFO, FRAMEWORKS, capability, check_choice
from frameduel.workloads.base import Batch, Workload
from frameduel.workloads.weight_layouts import check_weight_names

# The names every backend module exposes (tests/test_backend_contract.py holds each one to it).
BACKEND_CONTRACT: tuple[str, ...] = (
    "configure", "use_precision", "build_model", "to_tensors", "make_optimizer", "make_train_fn", "make_infer_fn",
    "make_step", "make_generation", "compile_facts", "parameter_counts", "save_adapter", "set_training", "to_numpy",
    "peak_device_memory_mb", "is_out_of_memory", "export_weights", "import_weights", "shared_weights", "forward",
    "capture_activations", "optimizer_state", "align_adam_epsilon",
)


@dataclass
class Step:
    """One measurable step, split so the timer can tell tracing, first call and steady state apart."""

    run: Callable[[], object]  # one train or inference step; may return a device value
    sync: Callable[[], None]  # wait for the device (no-op on CPU, where execution is synchronous)
    trace: Callable[[], None] | None = None  # explicit trace/compile ahead of the first call, if the mode has one
    model: Any = None  # the model the step runs: for its parameter counts and, under LoRA, its adapters
    # Data parallel: every worker must run the same number of steps, or a collective waits forever. The
    # timer decides when to stop on each worker's own clock, so each decision goes through agree, which
    # returns the first worker's value on every worker (a broadcast). One process: the value itself.
    agree: Callable[[float], float] | None = None
    peer_pids: tuple[int, ...] = ()  # the group's other workers: their CPU use is this step's, not contention


@dataclass
class Generation:
    """Fixed-length greedy decoding with a KV cache, split into its two phases for timing.

    prefill() runs the prompt and returns the decoding state, which holds the first new token;
    decode(state, i) feeds token i back and returns the state holding token i + 1. Every run makes
    exactly new_tokens decode steps, so both frameworks do identical work; token_ids(state) reads the
    state's tokens (B,) back to the host (not part of any timed call).
    """

    prefill: Callable[[], object]
    decode: Callable[[object, int], object]
    sync: Callable[[], None]
    new_tokens: int
    token_ids: Callable[[object], np.ndarray]


@dataclass(frozen=True)
class GenerationPlan:
    """What one generation decodes, framework-free: both backends take it from plan_generation."""

    prompt: Batch  # prompt ids (B, P); the targets are unused
    decode_steps: int  # decode calls after the prefill (which makes the first new token)
    cache_length: int | None  # KV-cache positions; None: the model's context

    @property
    def prompt_len(self) -> int:
        return self.prompt.inputs.shape[1]


def plan_generation(workload: Workload, config: Any, batch: Batch | None, prompt_ids: np.ndarray | None,
                    new_tokens: int | None) -> GenerationPlan:
    """By default the workload's fixed lengths on the batch's tokens, in a cache the length of the
    context (benchmark cells); given prompt_ids (B, P) and new_tokens, exactly those, in a cache just
    long enough for every token fed back: P + new_tokens - 1 (`frameduel generate`)."""
    if prompt_ids is None:
        prompt_len, decode_steps = workload.generation(config)
        prompt = batch.inputs[:, :prompt_len]
        return GenerationPlan(Batch(prompt, prompt.reshape(-1)), decode_steps, None)
    decode_steps = new_tokens - 1
    return GenerationPlan(Batch(prompt_ids, prompt_ids.reshape(-1)), decode_steps, prompt_ids.shape[1] + decode_steps)


def kv_geometry(config: Any) -> tuple[int, int, int]:
    """(layers, key/value heads, head width) of a decoder's KV cache: llama's grouped-query heads, gpt's heads."""
    if hasattr(config, "num_key_value_heads"):
        return config.num_hidden_layers, config.num_key_value_heads, config.head_dim
    return config.n_layer, config.n_head, config.n_embd // config.n_head


def kv_cache_bytes(config: Any, slots: int, max_len: int, dtype_bytes: int = 4) -> int:
    """The LLM server's preallocated cache: keys and values of every layer, `slots` sequences and one scratch
    slot (padding rows write there), `max_len` positions each."""
    layers, heads, width = kv_geometry(config)
    return 2 * layers * (slots + 1) * heads * max_len * width * dtype_bytes


SMALLEST_SPAN = 32


def span_bucket(positions: np.ndarray, length: int) -> int:
    """Cache positions a step's attention reads: past the furthest row's position, rounded up to a power of
    two (at least SMALLEST_SPAN, at most the cache's `length`): at most twice what is needed, and few
    distinct shapes for a tracer (log2 of the context)."""
    needed = int(positions.max()) + 1
    return min(length, max(SMALLEST_SPAN, 1 << (needed - 1).bit_length()))


def span_buckets(length: int) -> list[int]:
    """Every span span_bucket can return for a cache of `length` positions."""
    return sorted({min(length, SMALLEST_SPAN << i) for i in range(max(1, length.bit_length()))})


def rows_bucket(rows: int) -> int:
    """Rows of a step padded to a power of two: static-shape compilers (XLA) compile one graph per bucket."""
    return 1 << max(0, rows - 1).bit_length()


def batch_shard(batch: Batch, index: int, count: int) -> Batch:
    """Data parallel: worker `index` of `count` takes this contiguous 1/count of the global batch."""
    size = len(batch.inputs) // count
    rows = slice(index * size, (index + 1) * size)
    return Batch(batch.inputs[rows], batch.targets[rows])


def load_adapter(backend: ModuleType, workload: Workload, model: Any, adapter: Mapping[str, np.ndarray]) -> None:
    """Put an adapter's matrices (canonical names, see checkpoints/adapters.py) into a LoRA model of the
    same settings, keeping its base weights: the whole state goes through import_weights, so names
    and shapes are checked as for any weight transfer."""
    weights = backend.export_weights(workload, model)
    check_weight_names(set(adapter_weights(weights)), set(adapter), f"{backend.__name__.rsplit('.', 1)[-1]} LoRA")
    backend.import_weights(workload, model, {**weights, **adapter})




def check_framework(framework: str) -> str:
    """A known framework whose package is installed (looked up, not imported: the parent never loads one)."""
    info = FRAMEWORK_INFO[check_choice("framework", framework, FRAMEWORKS)]
    if importlib.util.find_spec(info.package) is None:
        raise FrameduelError(f"framework {framework} ({info.label}) needs the '{info.package}' package, which is "
                             "not installed; install frameduel's CPU extra (pip install -e '.[cpu]') or leave "
                             f"{framework} out of --frameworks")
    return framework


def load_backend(framework: str, data_parallel: bool = False) -> ModuleType:
    check_choice("framework", framework, FRAMEWORKS)
    if not data_parallel:
        return importlib.import_module(FRAMEWORK_INFO[framework].backend_module)
    return importlib.import_module(capability(framework, "data_parallel_module"))


def model_module_name(workload: Workload, framework: str) -> str | None:
    """The workload's model file this framework runs (Keras' other backends run the Keras one); None for a
    framework that builds its model itself (numpy)."""
    return workload.model_modules.get(FRAMEWORK_INFO[framework].models)


# What every LLM-serving module (FrameworkInfo.llm_module: torch_llm.py, tf_llm.py) exposes, same arguments.
LLM_CONTRACT: tuple[str, ...] = ("load_stepper", "describe")


def load_llm(framework: str) -> ModuleType:
    """The LLM server's forward: load_stepper(spec, slots, max_len, max_rows) and describe(spec) (*_llm.py)."""
    return importlib.import_module(capability(framework, "llm_module"))


def load_exporter(framework: str) -> ModuleType:
    """Deployment export: export_artefact(fmt, workload, model, sample, calibration, out_dir, max_batch)."""
    return importlib.import_module(capability(framework, "export_module"))
