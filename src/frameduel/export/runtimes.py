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

from frameduel.errors import FrameduelError
from frameduel.export.manifest import Manifest, read_manifest


class Runtime(Protocol):
    """Runtimes whose delegate is chosen at load (LiteRT) also have delegation() -> Manifest.delegation's dict."""

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
    "executorch": "frameduel.frameworks.executorch_runtime:ExecuTorchRuntime",
    # Browser formats run only in the browser runner (export/browser_validate.py).
    "tfjs": "frameduel.export.browser_validate:BrowserOnlyRuntime",
    "onnxruntime-web": "frameduel.export.browser_validate:BrowserOnlyRuntime",
}


def load_runtime(directory: Path, threads: int | None = None) -> Runtime:
    """Load the artefact in directory with the runtime its manifest names."""
    manifest = read_manifest(directory)
    module_name, factory_name = RUNTIME_FACTORIES[manifest.runtime].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(Path(directory), manifest, threads=threads)


def check_inputs(manifest: Manifest, inputs: dict[str, np.ndarray]) -> int:
    """Check names, dtypes and shapes against the manifest; return the batch size.

    Raises FrameduelError with a one-line message naming the offending tensor and what was expected,
    so both the CLI and the model server can hand it to the user as it is.
    """
    expected = {spec.name: spec for spec in manifest.inputs}
    if set(inputs) != set(expected):
        raise FrameduelError(f"inputs {sorted(inputs)} do not match the model's inputs {sorted(expected)}")
    batch_sizes = set()
    for name, spec in expected.items():
        array = inputs[name]
        if array.dtype != np.dtype(spec.dtype):
            raise FrameduelError(f"input '{name}' has dtype {array.dtype}, expected {spec.dtype}")
        if len(array.shape) != len(spec.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, spec.shape, strict=True)
        ):
            wanted = ", ".join("-1" if d is None else str(d) for d in spec.shape)
            raise FrameduelError(f"input '{name}' has shape {list(array.shape)}, expected [{wanted}] (-1: any)")
        batch_sizes.add(array.shape[0])
    if len(batch_sizes) != 1:
        raise FrameduelError(f"inputs disagree on the batch size: {sorted(batch_sizes)}")
    batch = batch_sizes.pop()
    accepted = manifest.batch_sizes
    if batch < 1 or batch > manifest.max_batch or (accepted is not None and batch not in accepted):
        sizes = f"one of {list(accepted)}" if accepted is not None else f"1..{manifest.max_batch}"
        raise FrameduelError(f"batch size {batch} is not accepted by this artefact; use {sizes}")
    return batch
