"""Tensors of a Hugging Face-layout checkpoint directory, read with the safetensors library only.

A directory holds ``config.json`` and either ``model.safetensors`` or shards listed by
``model.safetensors.index.json``. Tensors are read one at a time, when asked for, from the memory-mapped
files: loading a model never holds the whole checkpoint in memory beside the model's own weights.
Pickle-based checkpoints (``pytorch_model.bin``, ``.pt``) are refused: unpickling runs arbitrary code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from frameduel.errors import FrameduelError

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class StoredTensor:
    """Where one tensor lives and what its header says, read without loading the data."""

    file: Path
    shape: tuple[int, ...]
    dtype: str  # safetensors' name: F32, BF16, F16, ...


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not directory.is_dir():
        raise FrameduelError(f"checkpoint '{directory}' is not a directory; pass a Hugging Face model directory "
                             f"(config.json + model.safetensors)")
    if not path.is_file():
        raise FrameduelError(f"checkpoint '{directory}' has no config.json; pass a Hugging Face model directory")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameduelError(f"{path} is not valid JSON ({exc}); fix or re-save the checkpoint") from None
    if not isinstance(config, dict):
        raise FrameduelError(f"{path} must hold a JSON object; fix or re-save the checkpoint")
    return config


def weight_files(directory: Path) -> dict[Path, list[str] | None]:
    """The safetensors files and, for a sharded checkpoint, the tensor names its index puts in each."""
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError):
            raise FrameduelError(f"{index} has no 'weight_map'; re-save the checkpoint") from None
        files: dict[Path, list[str] | None] = {}
        for name, file in weight_map.items():
            files.setdefault(directory / file, []).append(name)
        return files
    if (directory / WEIGHTS_FILE).is_file():
        return {directory / WEIGHTS_FILE: None}
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise FrameduelError(f"checkpoint '{directory}' holds only pickle-based weights ({', '.join(pickles[:3])}), "
                             f"which frameduel refuses to load because unpickling runs arbitrary code; convert it to "
                             f"safetensors (transformers: save_pretrained(dir, safe_serialization=True))")
    raise FrameduelError(f"checkpoint '{directory}' has neither {WEIGHTS_FILE} nor {INDEX_FILE}")


def stored_tensors(directory: Path) -> dict[str, StoredTensor]:
    """Every tensor's file, shape and dtype, from the safetensors headers alone."""
    tensors: dict[str, StoredTensor] = {}
    for file, listed in weight_files(directory).items():
        if not file.is_file():
            raise FrameduelError(f"{INDEX_FILE} lists shard '{file.name}', which is not in '{directory}'")
        try:
            with safe_open(str(file), framework="numpy") as handle:
                names = list(handle.keys())
                for name in names:
                    view = handle.get_slice(name)
                    tensors[name] = StoredTensor(file, tuple(view.get_shape()), view.get_dtype())
        except (SafetensorError, OSError) as exc:
            raise FrameduelError(f"{file} is not a readable safetensors file ({exc}); re-save the checkpoint") from None
        for name in sorted(set(listed or ()) - set(names)):
            raise FrameduelError(f"{INDEX_FILE} puts tensor {name} in {file.name}, which does not hold it")
    return tensors


def read_tensor(stored: StoredTensor, name: str) -> np.ndarray:
    """One tensor as a numpy array; half types widen to float32 (torch cannot take numpy's bfloat16)."""
    # Registers bfloat16 with numpy, so safetensors can hand BF16 tensors over. Imported here, in the
    # workers that read data, not at CLI start-up: it takes most of a second cold.
    import ml_dtypes

    with safe_open(str(stored.file), framework="numpy") as handle:
        array = handle.get_tensor(name)
    return array.astype(np.float32) if array.dtype in (np.float16, ml_dtypes.bfloat16) else array
