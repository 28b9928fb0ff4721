"""Run an exported artefact: one small class per runtime, all with the same two-call interface.

    runtime = load_runtime(directory)          # reads manifest.json, loads the artefact
    outputs = runtime.infer({"x": array})      # name -> np.ndarray in, name -> np.ndarray out

Runtimes that need torch or tensorflow are provided by ``frameduel.frameworks`` and imported lazily,
so loading an ONNX or LiteRT artefact never imports a training framework.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from frameduel.export.manifest import Manifest, read_manifest


class Runtime(Protocol):
    manifest: Manifest

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Inputs must match manifest.inputs (names, dtypes, an accepted batch size)."""
        ...


# runtime name -> "module:factory"; the factory takes (directory, manifest) and returns a Runtime.
RUNTIME_FACTORIES: dict[str, str] = {
    "onnxruntime": "frameduel.export.onnx_runtime:OnnxRuntime",
    "litert": "frameduel.export.litert_runtime:LiteRtRuntime",
    "torch": "frameduel.frameworks.torch_export:TorchExportRuntime",
    "tf": "frameduel.frameworks.tf_export:SavedModelRuntime",
}


def load_runtime(directory: Path, threads: int | None = None) -> Runtime:
    """Load the artefact in directory with the runtime its manifest names."""
    manifest = read_manifest(directory)
    module_name, factory_name = RUNTIME_FACTORIES[manifest.runtime].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(Path(directory), manifest, threads=threads)
