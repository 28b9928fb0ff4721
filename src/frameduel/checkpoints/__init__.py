"""Open-weight checkpoints (Hugging Face layout, safetensors) loaded into frameduel's models.

    checkpoint = open_checkpoint("path/to/model")   # validates everything, reads no tensor data
    checkpoint.workload, checkpoint.config           # "llama", LlamaConfig(...)
    backend.import_weights(workload, model, checkpoint.weights())  # one tensor at a time

Framework-free: the same validated mapping feeds the torch and the TF model, in their own processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.checkpoints.families import IGNORED, Family, Translation, family_of
from frameduel.checkpoints.reader import StoredTensor, read_config, read_tensor, stored_tensors
from frameduel.errors import FrameduelError

__all__ = ["Checkpoint", "CheckpointWeights", "open_checkpoint", "model_config", "resolve_workload"]


@dataclass(frozen=True)
class Checkpoint:
    directory: Path
    family: Family
    config: Any  # the workload's config dataclass
    sources: dict[str, tuple[str, StoredTensor, bool]]  # canonical name -> (stored name, where, transpose)

    @property
    def workload(self) -> str:
        return self.family.workload

    @property
    def parameters(self) -> int:
        unique = {stored: info for stored, info, _ in self.sources.values()}
        return sum(int(np.prod(info.shape)) for info in unique.values())

    def weights(self) -> CheckpointWeights:
        return CheckpointWeights(self)


class CheckpointWeights(Mapping[str, np.ndarray]):
    """Canonical (torch state_dict) name -> array, read from disk only when looked up: importing a model
    through it holds one tensor at a time, never the whole checkpoint."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.sources = checkpoint.sources
        self.last: tuple[str, np.ndarray] | None = None  # a tied tensor is asked for under both its names

    def __getitem__(self, name: str) -> np.ndarray:
        stored, info, transpose = self.sources[name]
        if self.last is None or self.last[0] != stored:
            array = read_tensor(info, stored)
            self.last = (stored, np.ascontiguousarray(array.T) if transpose else array)
        return self.last[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)


@lru_cache(maxsize=8)
def open_checkpoint(path: str | Path) -> Checkpoint:
    """Read config.json and the safetensors headers; refuse, in one line naming the tensor or setting,
    anything frameduel's model cannot take exactly."""
    directory = Path(path).expanduser().resolve()
    raw = read_config(directory)
    family = family_of(raw)
    config = family.config_from(raw)
    stored = stored_tensors(directory)
    expected = family.expected(config)
    tied = family.tied(config)
    sources: dict[str, tuple[str, StoredTensor, bool]] = {}
    for name, info in stored.items():
        translation = family.translate(name)
        if translation == IGNORED:
            continue
        if not isinstance(translation, Translation) or translation.canonical not in expected:
            raise FrameduelError(f"checkpoint tensor {name} is not part of frameduel's {family.workload} model "
                                 f"(unexpected tensor); is config.json the one for these weights?")
        canonical = translation.canonical
        if canonical in tied:
            continue  # the model ties it to another tensor; the stored copy is the same weights
        stored_shape = expected[canonical][::-1] if translation.transpose else expected[canonical]
        if info.shape != stored_shape:
            raise FrameduelError(f"checkpoint tensor {name} has shape {list(info.shape)}, but config.json implies "
                                 f"{list(stored_shape)}")
        sources[canonical] = (name, info, translation.transpose)
    for canonical, origin in tied.items():
        if origin in sources:
            sources[canonical] = sources[origin]
    missing = [name for name in expected if name not in sources]
    if missing:
        raise FrameduelError(f"checkpoint '{directory.name}' is missing tensor {missing[0]}"
                             f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    return Checkpoint(directory, family, config, {name: sources[name] for name in expected})


def model_config(workload: Any, checkpoint: str | None, size: str) -> Any:
    """The config a cell builds: the checkpoint's when there is one, else the workload's preset."""
    if checkpoint is None:
        return workload.config(size)
    loaded = open_checkpoint(checkpoint)
    if loaded.workload != workload.name:
        raise FrameduelError(f"checkpoint '{loaded.directory.name}' is a {loaded.workload} model; run it with the "
                             f"{loaded.workload} workload, not {workload.name}")
    return loaded.config


def resolve_workload(workload: str | None, checkpoint: Path | None, default: str | None = None,
                     usage: str = "") -> tuple[str, str | None]:
    """A command's workload and its checkpoint's absolute path (None without one): the workload named, else
    the checkpoint's family (a bad checkpoint refused now, in one line), else the default. With none of the
    three, one line naming both ways to give one; usage says what for, e.g. "to check (e.g. ...)"."""
    path = str(Path(checkpoint).expanduser().resolve()) if checkpoint is not None else None
    if workload is not None:
        return workload, path
    if path is not None:
        return open_checkpoint(path).workload, path
    if default is None:
        raise FrameduelError(f"name a workload {usage}, or pass --checkpoint DIR")
    return default, path
