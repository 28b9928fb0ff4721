"""ExecuTorch's runtime executing an exported .pte: ``executorch.runtime``, the Python binding of the C++ runtime.

The binding's extension links libtorch and takes and returns torch tensors, so this process imports
torch: its import time and RSS include torch, which an on-device build of the runtime does not carry
(the validation records the RSS after the import apart from the peak, so the artefact's own share is
visible). A .pte is a flatbuffer: loading it runs no Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from executorch.extension.pybindings import portable_lib
from executorch.runtime import Runtime

from frameduel.errors import FrameduelError
from frameduel.export.contract import INPUT_NAME, OUTPUT_NAME
from frameduel.export.manifest import Manifest
from frameduel.frameworks.torch_executorch import METHOD


class ExecuTorchRuntime:
    """A .pte's forward method; threads sizes the threadpool that XNNPACK's kernels run on."""

    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        if threads:
            portable_lib._unsafe_reset_threadpool(threads)  # the one thread-count knob the binding exposes
        path = directory / manifest.artefact
        try:
            self.method = Runtime.get().load_program(path).load_method(METHOD)
        except Exception as exc:  # noqa: BLE001 - the binding raises RuntimeError/ValueError on bad programs
            raise FrameduelError(f"ExecuTorch cannot load {path}: {type(exc).__name__}: {exc}") from None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # A copy only when needed: request buffers (e.g. np.frombuffer) may be read-only or strided.
        # The binding returns a new tensor per call (a copy of the planned output buffer), so no copy here.
        (output,) = self.method.execute([torch.from_numpy(np.require(inputs[INPUT_NAME], requirements=["C", "W"]))])
        return {OUTPUT_NAME: output.numpy()}
