"""The manifest every exported artefact carries: what it is, how to call it, where it came from.

One source of truth for the export formats and the runtimes that execute them. A manifest round-trips
through JSON (``manifest.json`` beside the artefact), and it is all the model server needs to load
and validate requests for an artefact.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frameduel.errors import FrameduelError

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1

# format -> runtime that executes it. Order is the display order.
FORMAT_RUNTIMES: dict[str, str] = {
    "onnx": "onnxruntime",
    "torch-export": "torch",  # torch.export ExportedProgram (.pt2)
    "savedmodel": "tf",
    "tflite": "litert",  # float32 flatbuffer
    "tflite-int8": "litert",  # dynamic-range int8: int8 weights, float activations
    "tflite-int8-full": "litert",  # full int8: weights and activations, calibrated on a representative set
    # PyTorch's on-device runtime: ExecuTorch programs (.pte) lowered to its XNNPACK delegate.
    "executorch": "executorch",  # float32
    "executorch-int8-dynamic": "executorch",  # int8 weights, activations quantized per call (as tflite-int8)
    "executorch-int8": "executorch",  # static int8: weights and activations, calibrated (as tflite-int8-full)
    "tfjs": "tfjs",  # TF.js graph model (model.json + weight shards), run in headless Chromium
    "onnx-web": "onnxruntime-web",  # the .onnx file, run by ONNX Runtime Web in headless Chromium
}
FORMATS: tuple[str, ...] = tuple(FORMAT_RUNTIMES)
# Formats that run in the browser: they need `frameduel browser setup` and Chromium, so an export
# without --formats leaves them out (DEFAULT_FORMATS); the browser runner gates and times them.
BROWSER_FORMATS: tuple[str, ...] = ("tfjs", "onnx-web")
# ExecuTorch comes with the `edge` extra, so an export without --formats leaves its formats out as well.
EXECUTORCH_FORMATS: tuple[str, ...] = ("executorch", "executorch-int8-dynamic", "executorch-int8")
DEFAULT_FORMATS: tuple[str, ...] = tuple(fmt for fmt in FORMATS if fmt not in (*BROWSER_FORMATS, *EXECUTORCH_FORMATS))
DTYPES: tuple[str, ...] = ("float32", "float16", "int64", "int32", "int8", "uint8")
# What a model name (a directory, a URL path segment) may not hold: the model server's MODEL_NAME rule.
UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_LABEL_CHARS = 64  # of the size or checkpoint label inside a name; the server takes names up to 128


def model_name(workload: str, size: str, framework: str, fmt: str) -> str:
    """Default name in a model repository: cnn-tiny-torch-onnx; a checkpoint's size label "ckpt:<directory>"
    becomes filesystem- and URL-safe, e.g. llama-ckpt-TinyLlama-1.1B-torch-onnx."""
    label = UNSAFE_NAME_CHARACTERS.sub("-", size)[:MAX_LABEL_CHARS]
    return f"{workload}-{label}-{framework}-{fmt}"


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output. shape uses None for a dynamic axis (normally the batch axis)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # numpy dtype name, one of DTYPES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data["dtype"])


@dataclass(frozen=True)
class Validation:
    """What the validation gate found when it ran the artefact against its source model."""

    valid: bool
    reason: str  # "" when valid; otherwise one line naming what failed
    batch_sizes: tuple[int, ...] = ()
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    metric: dict[str, float] = field(default_factory=dict)  # e.g. accuracy of source vs artefact (int8)


@dataclass(frozen=True)
class Manifest:
    """Everything about one exported artefact. ``artefact`` is relative to the manifest's directory."""

    workload: str
    size: str  # the preset, "digits", or "ckpt:<directory name>" for a checkpoint's model (source.checkpoint)
    framework: str  # the source framework: "torch" or "tf"
    format: str  # one of FORMATS
    artefact: str  # file or directory name beside manifest.json
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Batch sizes the artefact accepts: None means any size from 1 to max_batch (dynamic batch axis);
    # a tuple means only those sizes (fixed-shape artefacts such as TFLite), so callers must pad.
    batch_sizes: tuple[int, ...] | None
    max_batch: int
    opset: int | None = None  # ONNX opset, when the format has one
    size_bytes: int = 0
    source: dict[str, Any] = field(default_factory=dict)  # seed, weights digest, run id, versions
    # Empty for float artefacts; else what is int8 and what stays float, e.g. {"weights": "int8",
    # "activations": "int8", "io": "float32", "calibration": "..."} (the I/O dtypes are also in inputs/outputs).
    quantization: dict[str, str] = field(default_factory=dict)
    # Where the ops run, for runtimes with a delegate (ExecuTorch, LiteRT; XNNPACK in both): {"delegate",
    # "partitions", "delegated_ops", "outside": {op: count} (ops left to the runtime's own kernels), "how"}.
    delegation: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    validation: Validation | None = None
    manifest_version: int = MANIFEST_VERSION

    @property
    def runtime(self) -> str:
        return FORMAT_RUNTIMES[self.format]

    @property
    def model_name(self) -> str:
        """Default name in a model repository, e.g. cnn-tiny-torch-onnx (see model_name)."""
        return model_name(self.workload, self.size, self.framework, self.format)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        validation = data.get("validation")
        return cls(
            **{k: v for k, v in data.items() if k not in {"inputs", "outputs", "batch_sizes", "validation"}},
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            batch_sizes=tuple(data["batch_sizes"]) if data.get("batch_sizes") is not None else None,
            validation=Validation(**{**validation, "batch_sizes": tuple(validation["batch_sizes"])})
            if validation
            else None,
        )


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    path = Path(directory) / MANIFEST_FILE
    path.write_text(manifest.to_json())
    return path


def read_manifest(directory: Path) -> Manifest:
    """Load and check a manifest; a missing or malformed one is a user error naming the directory."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise FrameduelError(f"no {MANIFEST_FILE} in {directory}; export an artefact there with `frameduel export`")
    try:
        manifest = Manifest.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise FrameduelError(f"{path} is not a valid frameduel manifest ({exc}); re-export the artefact") from None
    if manifest.format not in FORMAT_RUNTIMES:
        raise FrameduelError(f"{path}: unknown format '{manifest.format}'; choose from: {', '.join(FORMATS)}")
    return manifest
