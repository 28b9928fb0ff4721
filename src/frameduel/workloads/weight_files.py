"""Weight files: the npz a framework's weights travel in between processes (parity's sides, export's twin,
finetune's shared start). Beside weight_layouts.py, whose names they use; no framework needed to read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREFIX = "weights/"


def save_weights(path: Path, weights: dict[str, np.ndarray]) -> None:
    np.savez(path, **{f"{PREFIX}{name}": value for name, value in weights.items()})


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """npz without pickle: a weights file is data, never code."""
    with np.load(path, allow_pickle=False) as archive:
        return {name.removeprefix(PREFIX): archive[name] for name in archive.files if name.startswith(PREFIX)}
