"""What `serve --llm` serves: a Hugging Face checkpoint directory or a built-in workload (gpt, llama), in
one framework and mode, with its tokenizer, its context and its KV cache.

Checked in the parent before any framework loads, each refusal one line: an unknown target, a framework
without an LLM server (spec.capability), a mode the framework lacks, a context the model cannot hold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frameduel.checkpoints import model_config, open_checkpoint
from frameduel.checkpoints.synthetic import BYTE_VOCAB
from frameduel.errors import FrameduelError
from frameduel.frameworks import check_framework, load_llm
from frameduel.llm.params import EngineConfig
from frameduel.llm.tokenizer import Tokenizer, byte_level_tokenizer, checkpoint_tokenizer
from frameduel.spec import RunSpec, capability
from frameduel.workloads import get_workload

BUILT_IN = ("gpt", "llama")
# Each framework's serving mode unless --mode says otherwise: the faster of its modes on the llama
# small and tiny checkpoints in benchmarks/llm_serving.py (README, "Serving a language model").
BEST_MODES = {"torch": "eager", "tf": "function"}
CHECKPOINT_CONTEXT = 2048  # a checkpoint's default positions per slot, at most (its own context may be far longer)
ROPE_PRESET_CONTEXT = 256  # a built-in llama's default: its presets train at 16-256 positions, RoPE has no table


@dataclass(frozen=True)
class ServedModel:
    name: str  # the OpenAI "model" id
    workload: str
    framework: str
    mode: str
    size: str
    checkpoint: str | None  # absolute path, or None for a built-in preset (seeded random weights)
    max_len: int  # positions per KV slot: prompt + generated tokens of one request
    threads: int

    @property
    def spec(self) -> RunSpec:
        return RunSpec(workload=self.workload, framework=self.framework, mode=self.mode, task="generate",
                       batch_size=1, threads=self.threads, size=self.size, checkpoint=self.checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def context_of(config: Any, built_in: bool) -> tuple[int, int | None]:
    """(default positions per slot, the hard limit or None): gpt's position table is a hard limit; RoPE
    (llama) has none."""
    if hasattr(config, "n_positions"):
        return config.n_positions, config.n_positions
    if built_in:
        return max(config.max_position_embeddings, ROPE_PRESET_CONTEXT), None
    return min(config.max_position_embeddings, CHECKPOINT_CONTEXT), None


def resolve_model(target: str, framework: str, mode: str | None, size: str, max_len: int | None,
                  name: str | None, threads: int) -> ServedModel:
    """The served model, checked in full without loading a framework."""
    capability(framework, "llm_module")  # "keras-jax has no LLM server: ..." before anything else
    check_framework(framework)
    path = Path(target).expanduser()
    if path.is_dir():
        checkpoint: str | None = str(path.resolve())
        workload = open_checkpoint(checkpoint).workload
        label = path.resolve().name
    elif target in BUILT_IN:
        checkpoint, workload, label = None, target, f"{target}-{size}"
    else:
        raise FrameduelError(f"--llm '{target}' is neither a checkpoint directory nor a built-in workload; pass a "
                             f"Hugging Face model directory or one of: {', '.join(BUILT_IN)}")
    config = model_config(get_workload(workload), checkpoint, size)
    default_len, limit = context_of(config, checkpoint is None)
    if max_len is not None and limit is not None and max_len > limit:
        raise FrameduelError(f"--max-model-len {max_len} exceeds the model's {limit} positions (its position "
                             f"table); pass at most {limit}")
    served = ServedModel(name or label, workload, framework, mode or BEST_MODES[framework], size, checkpoint,
                         max_len or default_len, threads)
    served.spec  # noqa: B018 - RunSpec checks the mode against the framework's, in one line
    return served


def load_tokenizer(served: ServedModel) -> Tokenizer:
    if served.checkpoint is not None:
        return checkpoint_tokenizer(Path(served.checkpoint))
    vocab = model_config(get_workload(served.workload), None, served.size).vocab_size
    if vocab < BYTE_VOCAB:
        raise FrameduelError(f"{served.workload} {served.size} has {vocab} tokens, fewer than the byte-level "
                             f"tokenizer's {BYTE_VOCAB}; serve --size small or base, or a checkpoint")
    return byte_level_tokenizer()


def load_model_stepper(served: ServedModel, config: EngineConfig) -> Any:
    """The framework's stepper (frameworks/*_llm.py), its slot caches allocated and its shapes warmed up."""
    return load_llm(served.framework).load_stepper(served.spec, config.slots, served.max_len, config.max_rows)


def describe_mode(served: ServedModel) -> dict[str, Any]:
    return load_llm(served.framework).describe(served.spec)
