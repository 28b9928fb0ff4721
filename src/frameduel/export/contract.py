"""What every exporter and runtime agrees on, below both: the artefact's tensor names, its logits layout
and the ONNX opset it was written for. A leaf the frameworks' exporters import (tests/test_layers.py),
so the export track may import the frameworks without a cycle."""

from __future__ import annotations

from pathlib import Path

from frameduel.workloads import Workload

INPUT_NAME = "x"
OUTPUT_NAME = "logits"


def sequence_logits(workload: Workload) -> bool:
    """Whether the workload is a language model, whose artefacts return logits (B, T, vocab) per sequence
    rather than the training contract's flattened (B*T, vocab)."""
    return workload.generation is not None


def onnx_opset(path: Path) -> int:
    """The default-domain opset an .onnx file was written for (what runtimes must support)."""
    import onnx  # the export extra's; only exporters and ONNX runtimes ask

    model = onnx.load(str(path), load_external_data=False)
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
