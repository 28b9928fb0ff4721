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

torch -> ExecuTorch is PyTorch's own on-device toolchain (frameworks/torch_executorch.py); together with
the route above, one torch export gives both toolchains' artefacts of the very same weights, the fair
pairs of export/pairs.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec

from frameduel.errors import FrameduelError, Unsupported
from frameduel.export.manifest import EXECUTORCH_FORMATS, FORMATS
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
EXECUTORCH_LOWERING = "to_edge_transform_and_lower (XnnpackPartitioner) -> ExecuTorch program (.pte)"
EXECUTORCH_FROM_TF = ("an ExecuTorch program is lowered from a torch.export graph: export it with --framework torch "
                      "(TensorFlow's on-device formats are tflite, tflite-int8, tflite-int8-full)")
# format -> (module it needs, the extra that installs it): a missing one is a user error before any worker starts.
FORMAT_PACKAGES: dict[str, tuple[str, str]] = dict.fromkeys(EXECUTORCH_FORMATS, ("executorch", "edge"))

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
        "executorch": Route("torch", "torch.export -> " + EXECUTORCH_LOWERING),
        "executorch-int8-dynamic": Route("torch", "torch.export -> PT2E dynamic int8 (XNNPACKQuantizer: per-channel "
                                                  "int8 weights, activations quantized per call) -> "
                                                  + EXECUTORCH_LOWERING),
        "executorch-int8": Route("torch", "torch.export -> PT2E static int8 (XNNPACKQuantizer: per-channel int8 "
                                          "weights, int8 activations calibrated on representative inputs) -> "
                                          + EXECUTORCH_LOWERING),
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
        **dict.fromkeys(EXECUTORCH_FORMATS, EXECUTORCH_FROM_TF),
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


def check_packages(framework: str, formats: tuple[str, ...]) -> None:
    """A format whose route runs needs its package; a missing one is one line naming the extra to install."""
    for fmt in formats:
        if fmt in FORMAT_PACKAGES and isinstance(route(framework, fmt), Route):
            module, extra = FORMAT_PACKAGES[fmt]
            if find_spec(module) is None:
                raise FrameduelError(f"format {fmt} needs the '{module}' package, which is not installed; install "
                                     f"frameduel's {extra} extra: pip install -e '.[{extra}]'")
