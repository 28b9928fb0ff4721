"""TensorFlow deployment artefacts: SavedModel, ONNX (tf2onnx), TFLite float / int8, and the SavedModel runtime.

Same public names as torch_export.py. Every artefact is traced from one serving function that takes
the workload's *canonical* layout (e.g. CNN NCHW) and converts it to the Keras model's native one
inside the graph (the model file's ``to_native_layout_graph``), so all artefacts of a workload, from
either framework, take the same inputs.

Keras 3 pitfalls handled here: tf2onnx's ``from_keras`` expects tf.keras (Keras 2) models, so ONNX
is converted from a ``tf.function`` with an explicit ``tf.TensorSpec`` input signature (dynamic
batch axis, named "x"); the model is called with training=False so BatchNorm uses its moving
statistics; SavedModels are written with ``keras.export.ExportArchive`` (Keras 3's way: it tracks
the model's variables) rather than ``tf.saved_model.save`` on a Keras 3 model. TFLite is converted
from that SavedModel's signature.

Loading: tf.saved_model.load reads protobufs and a variables checkpoint, no pickle; the graph runs
only TensorFlow ops (a SavedModel cannot carry Python code).
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.browser.convert import saved_model_to_tfjs
from frameduel.errors import FrameduelError
from frameduel.export.contract import INPUT_NAME, OUTPUT_NAME, onnx_opset, sequence_logits
from frameduel.export.manifest import Manifest
from frameduel.frameworks.tf_backend import keras, tf  # tf_backend sets TF's environment before importing it
from frameduel.workloads.base import Workload

SIGNATURE = "serve"
TF2ONNX_OPSET = 18
ARTEFACT_FILES = {"savedmodel": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite",
                  "tflite-int8": "model.tflite", "tflite-int8-full": "model.tflite",
                  "tfjs": "tfjs_model", "onnx-web": "model.onnx"}
QUANTIZATION = {
    "tflite-int8": {"weights": "int8 (tensors of >= 1024 elements; smaller ones stay float32)",
                    "activations": "float32 (int8 kernels quantize them on the fly)", "io": "float32"},
    "tflite-int8-full": {"weights": "int8", "activations": "int8", "io": "float32 (quantize/dequantize at the edges)"},
}


def serving_function(workload: Workload, model: keras.Model, sample: np.ndarray) -> tuple[Callable, list]:
    """(fn, input signature): canonical-layout x (None, ...) -> {"logits": (None, classes)}; a language
    model's token ids (None, T) -> {"logits": (None, T, vocab)}, unflattening its training contract's rows."""
    module = importlib.import_module(workload.model_modules["tf"])
    to_native = getattr(module, "to_native_layout_graph", None)
    if to_native is None:
        if not np.array_equal(module.to_native_layout(sample), sample):
            raise ValueError(f"{module.__name__} changes the input layout but has no to_native_layout_graph")
        to_native = tf.identity

    per_sequence = sequence_logits(workload)

    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = model(to_native(x), training=False)  # (B, classes), or a language model's (B*T, vocab)
        if per_sequence:
            logits = tf.reshape(logits, (-1, x.shape[1], logits.shape[-1]))  # (B, T, vocab)
        return {OUTPUT_NAME: logits}

    return serve, [tf.TensorSpec((None, *sample.shape[1:]), tf.as_dtype(sample.dtype), name=INPUT_NAME)]


def write_saved_model(workload: Workload, model: keras.Model, sample: np.ndarray, path: Path) -> None:
    serve, signature = serving_function(workload, model, sample)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=signature)
    archive.write_out(str(path), verbose=False)


def write_onnx(workload: Workload, model: keras.Model, sample: np.ndarray, path: Path) -> int:
    import tf2onnx  # slow to import, and only this format needs it

    serve, signature = serving_function(workload, model, sample)
    proto, _ = tf2onnx.convert.from_function(tf.function(serve, input_signature=signature),
                                             input_signature=signature, opset=TF2ONNX_OPSET, output_path=str(path))
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    if names != ([INPUT_NAME], [OUTPUT_NAME]):
        raise ValueError(f"tf2onnx named the graph's tensors {names}, expected {([INPUT_NAME], [OUTPUT_NAME])}")
    return onnx_opset(path)


def write_tflite(fmt: str, saved_model: Path, calibration: np.ndarray, path: Path) -> None:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    if fmt in QUANTIZATION:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "tflite-int8-full":
        # One sample per calibration step; model I/O stays float32 (the manifest's dtypes say so).
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())


def export_artefact(fmt: str, workload: Workload, model: keras.Model, sample: np.ndarray,
                    calibration: np.ndarray, out_dir: Path, max_batch: int) -> dict[str, Any]:
    """Write one artefact of model into out_dir; returns {"artefact", "opset", "quantization"}.

    The batch axis is dynamic in every format (TFLite resizes its input per call), up to max_batch,
    which the gate checks by running it.
    """
    if fmt not in ARTEFACT_FILES:
        raise ValueError(f"the tf exporter does not write {fmt}")
    path = out_dir / ARTEFACT_FILES[fmt]
    facts: dict[str, Any] = {"artefact": path.name, "opset": None, "quantization": {}}
    if fmt == "savedmodel":
        write_saved_model(workload, model, sample, path)
    elif fmt in ("onnx", "onnx-web"):
        facts["opset"] = write_onnx(workload, model, sample, path)
    elif fmt == "tfjs":
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            saved = Path(tmp) / "saved_model"
            write_saved_model(workload, model, sample, saved)
            saved_model_to_tfjs(saved, path, SIGNATURE)
    else:
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            saved = Path(tmp) / "saved_model"
            write_saved_model(workload, model, sample, saved)
            write_tflite(fmt, saved, calibration.astype(sample.dtype), path)
        facts["quantization"] = dict(QUANTIZATION.get(fmt, {}))
        if fmt == "tflite-int8-full":
            facts["quantization"]["calibration"] = f"{len(calibration)} representative inputs"
    return facts


class SavedModelRuntime:
    """A SavedModel's serving signature, run with TensorFlow on CPU."""

    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        path = directory / manifest.artefact
        try:
            self.loaded = tf.saved_model.load(str(path))  # keep it alive: the signature uses its variables
            self.function = self.loaded.signatures[SIGNATURE]
        except Exception as exc:  # noqa: BLE001 - TF raises OSError, ValueError, its own errors, ...
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise FrameduelError(f"TensorFlow cannot load {path}: {type(exc).__name__}: {first}") from None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.function(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}
