"""ONNX Runtime (CPU, or CUDA when its provider is present) executing an exported .onnx artefact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from frameduel.errors import FrameduelError
from frameduel.export.manifest import Manifest


class OnnxRuntime:
    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(directory / manifest.artefact), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise FrameduelError(f"ONNX Runtime cannot load {directory / manifest.artefact}: {exc}") from None
        self.output_names = [o.name for o in manifest.outputs]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, values, strict=True))



