"""PyTorch deployment artefacts: ONNX (dynamo exporter), torch.export programs (.pt2) and, through
torch_executorch.py, ExecuTorch programs (.pte); and the .pt2 runtime.

Same public names as tf_export.py: export_artefact(fmt, ...) writes one artefact; the runtime class
is what ``frameduel.export.runtimes.load_runtime`` returns for the "torch" runtime.

Loading a .pt2 safely: torch.export.load is documented as pickle-based, and torch 2.13 reaches
pickle in exactly these places: payloads marked use_pickle (tensor subclasses; torch.load with
weights_only=False), custom and opaque objects among the constants (torch._C._pickle_load_obj,
pickle.loads), legacy ``.pt`` weight/constant files and pre-2.7 zip archives, AOTInductor weights,
and the sample inputs, which fall back to weights_only=False when the safe load fails.
``check_pickle_free`` refuses any archive that would reach one of them (the sample inputs must load
with weights_only=True first), so what is loaded is JSON (the graph), raw tensor storage and
weights_only tensors: data, never code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.export.pt2_archive import constants as pt2
from torch.export.pt2_archive._package import PT2ArchiveReader

from frameduel.errors import FrameduelError
from frameduel.export.contract import INPUT_NAME, OUTPUT_NAME, onnx_opset, sequence_logits
from frameduel.export.manifest import EXECUTORCH_FORMATS, Manifest
from frameduel.frameworks import torch_executorch
from frameduel.workloads.base import Workload

ARTEFACT_FILES = {"onnx": "model.onnx", "onnx-web": "model.onnx", "torch-export": "model.pt2",
                  **dict.fromkeys(EXECUTORCH_FORMATS, torch_executorch.ARTEFACT_FILE)}


class SequenceLogits(torch.nn.Module):
    """A language model as an artefact serves it: token ids (B, T) -> logits (B, T, vocab), where the
    model's training contract flattens them to (B*T, vocab)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = self.model(idx)  # (B*T, vocab)
        return logits.view(-1, idx.shape[1], logits.shape[-1])  # (B, T, vocab)


def export_artefact(fmt: str, workload: Workload, model: torch.nn.Module, sample: np.ndarray,
                    calibration: np.ndarray, out_dir: Path, max_batch: int) -> dict[str, Any]:
    """Write one artefact of model (canonical-layout input sample, batch >= 2) into out_dir.

    Returns the manifest facts only the exporter knows: {"artefact": file name, "opset": ...}, and for
    ExecuTorch its quantization and delegation.
    """
    if fmt not in ARTEFACT_FILES:
        raise ValueError(f"the torch exporter does not write {fmt}")
    model.eval()
    if sequence_logits(workload):
        model = SequenceLogits(model)
    path = out_dir / ARTEFACT_FILES[fmt]
    # A fresh copy, so every axis has its dense stride: the digits CNN's (B, 1, 8, 8) inputs are a view whose
    # size-1 channel axis has stride 0, which torch.tensor and .contiguous() keep, torch.export records and
    # ExecuTorch refuses ("0 in strides is not supported").
    args = (torch.from_numpy(np.array(sample)),)
    # One dynamic batch axis, 1..max_batch, on the one positional input; every other axis stays the sample's.
    dynamic = ({0: torch.export.Dim("batch", min=1, max=max_batch)},)
    if fmt in ("onnx", "onnx-web"):
        torch.onnx.export(model, args, path, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=dynamic, external_data=False, verbose=False)
        return {"artefact": path.name, "opset": onnx_opset(path)}
    if fmt in EXECUTORCH_FORMATS:
        facts = torch_executorch.write_program(fmt, model, args, dynamic, calibration, max_batch, path)
        return {"artefact": path.name, "opset": None, **facts}
    with torch.no_grad():
        program = torch.export.export(model, args, dynamic_shapes=dynamic)
    torch.export.save(program, path)
    return {"artefact": path.name, "opset": None}


def check_pickle_free(path: Path) -> None:
    """Raise FrameduelError unless torch.export.load can read path without unpickling (module docstring)."""
    try:
        reader = PT2ArchiveReader(str(path))
        names = reader.get_file_names()
        archive_format = reader.read_string(pt2.ARCHIVE_FORMAT_PATH) if pt2.ARCHIVE_FORMAT_PATH in names else ""
    except Exception as exc:  # the zip reader raises RuntimeError/OSError on a damaged archive
        raise FrameduelError(f"{path} is not a readable .pt2 archive ({type(exc).__name__}); re-export it") from None
    if archive_format != pt2.ARCHIVE_FORMAT_VALUE:
        raise FrameduelError(f"{path} is not a torch>=2.7 .pt2 archive; older archives load through pickle")
    for name in names:
        legacy_pickle = name.endswith(".pt") and not name.startswith(pt2.SAMPLE_INPUTS_DIR)
        if name.startswith(pt2.AOTINDUCTOR_DIR) or legacy_pickle:
            raise FrameduelError(f"{path}: {name} would be unpickled on load; refusing it")
        if name.endswith("_weights_config.json") or name.endswith("_constants_config.json"):
            for fqn, payload in json.loads(reader.read_string(name))["config"].items():
                pickled = payload.get("use_pickle") or not payload["path_name"].startswith(
                    (pt2.WEIGHT_FILENAME_PREFIX, pt2.TENSOR_CONSTANT_FILENAME_PREFIX))
                if pickled:
                    raise FrameduelError(f"{path}: {fqn} is a pickled object; refusing it")
        if name.startswith(pt2.SAMPLE_INPUTS_DIR):
            try:
                torch.load(io.BytesIO(reader.read_bytes(name)), weights_only=True)
            except Exception:  # noqa: BLE001 - torch would retry this with weights_only=False
                raise FrameduelError(f"{path}: {name} is not plain tensors; refusing it") from None


class TorchExportRuntime:
    """A torch.export program (.pt2), checked pickle-free, run with torch on CPU."""

    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        if threads:
            torch.set_num_threads(threads)
        path = directory / manifest.artefact
        check_pickle_free(path)
        try:
            self.module = torch.export.load(path).module()
        except Exception as exc:  # noqa: BLE001 - deserialisation errors come in many types
            raise FrameduelError(f"torch.export cannot load {path}: {type(exc).__name__}: {exc}") from None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            # A copy only when needed: request buffers (e.g. np.frombuffer) may be read-only or strided.
            output = self.module(torch.from_numpy(np.require(inputs[INPUT_NAME], requirements=["C", "W"])))
        return {OUTPUT_NAME: output.numpy()}
