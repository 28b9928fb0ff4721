"""LiteRT (TFLite) interpreter executing an exported .tflite artefact, through its one signature.

The signature runner resizes the input tensors when a call's batch differs from the last one, so a
flatbuffer converted with a dynamic batch axis accepts every batch size up to the manifest's
max_batch (resizing re-plans the tensors: alternating batch sizes costs an allocation per call).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from frameduel.errors import FrameduelError
from frameduel.export.manifest import Manifest


class LiteRtRuntime:
    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        path = directory / manifest.artefact
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            signatures = self.interpreter.get_signature_list()
            if len(signatures) != 1:
                raise ValueError(f"expected one signature, found {sorted(signatures)}")
            self.runner = self.interpreter.get_signature_runner(next(iter(signatures)))
        except Exception as exc:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError on bad files
            raise FrameduelError(f"LiteRT cannot load {path}: {type(exc).__name__}: {exc}") from None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(self.runner(**inputs))
