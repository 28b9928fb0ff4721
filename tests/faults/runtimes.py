"""Runtimes that fail on demand, served through the model repository's custom-runtime setting (serving.json
"runtime": "tests.faults.runtimes:FaultyRuntime"): real code the server imports and calls like any runtime.

FaultyRuntime computes the repository's affine model (y = x @ W + b, tests/serve_support.py) in NumPy, unless a
batch asks for a fault through its first feature:
    RAISE (666.0)  the call raises a two-line error, as runtimes' own reports are
    HANG (777.0)   the call sleeps HANG_S, far past any compute timeout the tests set, then answers
BrokenAtLoad raises a plain ValueError while it loads, as a runtime meeting a bad artefact may.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from frameduel.export.manifest import Manifest
from tests.serve_support import WEIGHT, bias

RAISE, HANG = 666.0, 777.0
HANG_S = 30.0


class FaultyRuntime:
    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        self.bias = bias(int(directory.name))

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]  # (B, 4)
        if (x[:, 0] == RAISE).any():
            raise RuntimeError(f"injected fault: a sample asked this batch of {len(x)} to fail\n  (second line)")
        if (x[:, 0] == HANG).any():
            time.sleep(HANG_S)
        return {"y": x @ WEIGHT + self.bias}  # (B, 3)


class BrokenAtLoad:
    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        raise ValueError(f"injected fault: {directory.name} cannot be loaded")
