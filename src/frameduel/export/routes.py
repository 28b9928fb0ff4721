"""How each (source framework, format) pair is produced, by which framework's process, or why it is not.

One table, read by the CLI, the export run, the manifests (``source.route``) and the README.

torch -> TFLite: litert-torch 0.10.0 (Google's torch -> LiteRT converter) installs beside torch
2.13.0 and TF 2.21 and converts our MLP and CNN in a scratch venv (max diff <= 2e-7), but pip
resolves it by downgrading pydantic (2.14 -> 2.11, which the model server's FastAPI uses) and
typing_extensions, and by adding jax, jaxlib, transformers and torchao (~0.8 GB), so it stays out of
frameduel's environment. The route instead rebuilds the model as its Keras twin, loads the torch
weights through the workload's weight map (the same transfer the parity check proves exact), and
converts that with TFLiteConverter. The artefact is gated against the *torch* model's outputs, so
any difference the twin or the converter introduces shows up there. onnx2tf is no option: it pins
older TensorFlow and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from frameduel.errors import FrameduelError, Unsupported
from frameduel.export.manifest import FORMATS
from frameduel.spec import FRAMEWORKS, capability, check_choice


@dataclass(frozen=True)
class Route:
    converter: str  # framework whose worker process writes the artefact
    how: str  # the tool chain, in one line


TFLITE_VIA_KERAS = "torch weights -> Keras twin (frameduel weight map) -> tf.lite.TFLiteConverter"
TFJS_CONVERTER = "tensorflowjs_converter 4.22.0 (its own venv) -> TF.js graph model"
TFJS_VIA_KERAS = "torch weights -> Keras twin (frameduel weight map) -> SavedModel -> " + TFJS_CONVERTER
# Why a language model is not exported for the browser: the runner feeds float32 tensors, and TF.js has
# no int64 (token ids would be cast to int32 inside the graph).
BROWSER_TOKEN_IDS = "the browser runner feeds float32 inputs; a language model's int64 token ids are not run there"

# source framework -> format -> Route, or the reason the pair is unsupported.
ROUTES: dict[str, dict[str, Route | str]] = {
    "torch": {
        "onnx": Route("torch", "torch.onnx.export (dynamo exporter, dynamic batch via dynamic_shapes)"),
        "torch-export": Route("torch", "torch.export.export -> torch.export.save (.pt2)"),
        "savedmodel": "a SavedModel holds a TensorFlow graph: export it with --framework tf",
        "tflite": Route("tf", TFLITE_VIA_KERAS),
        "tflite-int8": Route("tf", TFLITE_VIA_KERAS + ", dynamic-range int8"),
        "tflite-int8-full": Route("tf", TFLITE_VIA_KERAS + ", full int8 calibrated on representative inputs"),
        "tfjs": Route("tf", TFJS_VIA_KERAS),
        "onnx-web": Route("torch", "torch.onnx.export (dynamo exporter), run by ONNX Runtime Web (wasm)"),
    },
    "tf": {
        "onnx": Route("tf", "tf2onnx.convert.from_function (tf.function with an explicit input signature)"),
        "torch-export": "an ExportedProgram holds a torch graph: export it with --framework torch",
        "savedmodel": Route("tf", "keras.export.ExportArchive (tf.saved_model, serving_default signature)"),
        "tflite": Route("tf", "tf.lite.TFLiteConverter from the SavedModel"),
        "tflite-int8": Route("tf", "tf.lite.TFLiteConverter from the SavedModel, dynamic-range int8"),
        "tflite-int8-full": Route("tf", "tf.lite.TFLiteConverter from the SavedModel, full int8 calibrated "
                                        "on representative inputs"),
        "tfjs": Route("tf", "keras.export.ExportArchive SavedModel -> " + TFJS_CONVERTER),
        "onnx-web": Route("tf", "tf2onnx.convert.from_function, run by ONNX Runtime Web (wasm)"),
    },
}


def route(framework: str, fmt: str) -> Route | str:
    """The Route for a pair, or its unsupported reason (a framework without an exporter in the registry:
    that reason, for every format); unknown names are user errors."""
    check_choice("framework", framework, FRAMEWORKS)
    check_choice("format", fmt, FORMATS)
    try:
        capability(framework, "export_module")
    except Unsupported as exc:
        return str(exc)
    return ROUTES[framework][fmt]


def check_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    if not formats:
        raise FrameduelError(f"no formats given; choose from: {', '.join(FORMATS)}")
    for fmt in formats:
        check_choice("format", fmt, FORMATS)
    return formats
