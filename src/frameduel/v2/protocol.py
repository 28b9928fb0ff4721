"""KServe v2 / Open Inference Protocol: tensors in and out of HTTP bodies, JSON or binary.

A request body is a JSON object, optionally followed by raw tensor bytes (the binary-tensor extension):
the ``Inference-Header-Content-Length`` header gives the JSON part's length, and each input with a
``binary_data_size`` parameter takes that many bytes, in input order, from what follows. Responses use
the same layout for outputs that ask for it (``"binary_data": true`` on an output, or the request
parameter ``binary_data_output``).

Everything a client can get wrong raises ``ServeError`` with a reason (a 4xx status) and a one-line message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from frameduel.errors import FrameduelError
from frameduel.export.manifest import TensorSpec

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"

# v2 datatype -> numpy dtype name. BYTES (variable-length strings) is not served: no workload takes text.
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
NUMPY_DATATYPES: dict[str, str] = {numpy: v2 for v2, numpy in DATATYPES.items()}
# numpy kinds a JSON array may parse to for each target kind: no floats into integers, only bools into BOOL.
ACCEPTED_KINDS: dict[str, str] = {"b": "b", "i": "biu", "u": "biu", "f": "biuf"}


# Why a request failed -> the status each transport answers with: (HTTP status code, gRPC status code name).
# One table, so the two faces cannot drift apart; gRPC codes are names here so the REST side never imports grpc.
REASONS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "INVALID_ARGUMENT"),
    "too_large": (413, "INVALID_ARGUMENT"),  # a retry never helps; fewer samples per request do
    "unknown_model": (404, "NOT_FOUND"),  # no such model or version on disk
    "not_loaded": (404, "UNAVAILABLE"),  # on disk but not serving: a load makes it ready
    "load_failed": (400, "FAILED_PRECONDITION"),  # the artefact on disk does not load
    "overloaded": (429, "RESOURCE_EXHAUSTED"),  # the batch queue is full
    "unavailable": (503, "UNAVAILABLE"),  # the version is unloading
    "timeout": (503, "UNAVAILABLE"),  # still queued after timeout_s: the server is behind
    "compute_error": (500, "INTERNAL"),  # the runtime failed: the server's fault, never the client's
    "deadline_exceeded": (504, "DEADLINE_EXCEEDED"),  # the runtime did not answer within compute_timeout_s
    "shutting_down": (503, "UNAVAILABLE"),  # the server drains after SIGTERM: retry on another replica
    "request_timeout": (408, "DEADLINE_EXCEEDED"),  # the request's body did not arrive in time (REST)
}


class ServeError(FrameduelError):
    """A request the server refuses; reason (a key of REASONS) labels it in /metrics and picks its status."""

    def __init__(self, message: str, reason: str = "bad_request") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return REASONS[self.reason][0]


@dataclass(frozen=True)
class InferRequest:
    """A parsed infer request: inputs as numpy arrays, the outputs asked for and how to encode them."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...] | None  # None: every output of the model
    binary_outputs: frozenset[str] = field(default_factory=frozenset)
    binary_all: bool = False  # request parameter binary_data_output


def datatype_of(dtype: str) -> str:
    return NUMPY_DATATYPES[str(np.dtype(dtype))]


def tensor_metadata(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
    """Manifest tensors as v2 metadata lists them: a dynamic axis is -1."""
    return [{"name": s.name, "datatype": datatype_of(s.dtype), "shape": [-1 if d is None else d for d in s.shape]}
            for s in specs]


def _field(data: dict[str, Any], key: str, kind: type, where: str, required: bool = True) -> Any:
    value = data.get(key)
    if value is None and not required:
        return None
    # bool is an int subclass in Python, but a JSON true is never a valid count.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ServeError(f"{where}: '{key}' must be {'a' if required else 'absent or a'} {kind.__name__}")
    return value


def checked_shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise ServeError(f"{where}: 'shape' must be a list of non-negative integers")
    return tuple(raw)


def served_dtype(datatype: str, where: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise ServeError(f"{where}: datatype '{datatype}' is not served; use one of {', '.join(DATATYPES)}")
    return np.dtype(DATATYPES[datatype])


def checked_values(values: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, where: str,
                   source: str = "data") -> np.ndarray:
    """Values as a JSON list or typed gRPC contents sent them -> an array of shape; strict about conversions."""
    if values.size != math.prod(shape):
        raise ServeError(f"{where}: '{source}' holds {values.size} values, shape {list(shape)} needs "
                         f"{math.prod(shape)}")
    if values.size and values.dtype.kind not in ACCEPTED_KINDS[dtype.kind]:
        raise ServeError(f"{where}: '{source}' holds {values.dtype.kind!r}-kind values, not valid {datatype_of(dtype)}")
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise ServeError(f"{where}: '{source}' has values outside the {datatype_of(dtype)} range")
    return values.astype(dtype).reshape(shape)


def _json_tensor(data: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    """JSON data (flat or nested, row-major) -> an array of shape."""
    if not isinstance(data, list):
        raise ServeError(f"{where}: 'data' must be a list")
    try:
        parsed = np.asarray(data)
    except (ValueError, OverflowError):  # ragged nesting, integers beyond 64 bits
        raise ServeError(f"{where}: 'data' is not a regular array of numbers") from None
    return checked_values(parsed, shape, dtype, where)


def _input_tensor(spec: Any, index: int, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    """One entry of "inputs" -> (name, array, bytes of the binary section it used)."""
    where = f"inputs[{index}]"
    if not isinstance(spec, dict):
        raise ServeError(f"{where} must be an object with name, shape, datatype and data")
    name = _field(spec, "name", str, where)
    shape = checked_shape(spec.get("shape"), where)
    datatype = _field(spec, "datatype", str, where)
    dtype = served_dtype(datatype, where)
    parameters = _field(spec, "parameters", dict, where, required=False) or {}
    size = _field(parameters, "binary_data_size", int, f"{where}.parameters", required=False)
    if size is None:
        return name, _json_tensor(spec.get("data"), shape, dtype, where), 0
    if "data" in spec:
        raise ServeError(f"{where}: give either 'data' or the binary_data_size parameter, not both")
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        raise ServeError(f"{where}: binary_data_size is {size} bytes; shape {list(shape)} of {datatype} is {expected}")
    if offset + size > len(binary):
        raise ServeError(f"{where}: the body ends before its {size} bytes of binary data")
    # frombuffer views the body without copying; the runtime only reads its inputs.
    array = np.frombuffer(binary, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)
    return name, array, size


def _requested_outputs(raw: Any) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    if raw is None:
        return None, frozenset()
    if not isinstance(raw, list):
        raise ServeError("'outputs' must be a list of objects with a name")
    names, binary = [], set()
    for index, spec in enumerate(raw):
        where = f"outputs[{index}]"
        if not isinstance(spec, dict):
            raise ServeError(f"{where} must be an object with a name")
        name = _field(spec, "name", str, where)
        parameters = _field(spec, "parameters", dict, where, required=False) or {}
        if _field(parameters, "binary_data", bool, f"{where}.parameters", required=False):
            binary.add(name)
        names.append(name)
    return tuple(names), frozenset(binary)


# JSON has no NaN or infinity. Outputs spell them as proto3's JSON mapping does (the strings "NaN",
# "Infinity", "-Infinity"), so every response parses with a strict parser; a request holding Python's
# bare NaN/Infinity is refused, naming the fix.
NON_FINITE_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def refuse_non_finite(constant: str) -> None:
    raise ServeError(f"the request holds a bare {constant}, which is not JSON; send finite numbers, or "
                     "non-finite values as binary data (the binary tensor extension)")


def json_values(array: np.ndarray) -> list[Any]:
    """A tensor's values, flattened, as valid JSON: non-finite floats as proto3's strings."""
    values = array.reshape(-1).tolist()
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return values
    return [NON_FINITE_TEXT[repr(v)] if isinstance(v, float) and not math.isfinite(v) else v for v in values]


def parse_json(header: bytes) -> Any:
    """The JSON part of a request body, parsed.

    orjson first: a one-sample request for the tiny CNN carries 3,072 numbers, which the standard parser
    takes ~0.9 ms over and orjson ~0.08 ms, and at concurrency 32 that parse was most of the server's
    time (issue 17). What orjson refuses (bare NaN, invalid JSON, nesting past its depth limit) goes
    through the standard parser, so the client gets the same one-line message as ever.
    """
    try:
        return orjson.loads(header)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(header, parse_constant=refuse_non_finite)
    except ServeError:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ServeError("the request body is not valid JSON; send an inference request object") from None


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode an infer body; header_length is the Inference-Header-Content-Length header, if sent."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise ServeError(f"{HEADER_LENGTH} must be a byte count within the body ({len(body)} bytes)")
        header, binary = body[: int(header_length)], memoryview(body)[int(header_length) :]
    request = parse_json(header)
    if not isinstance(request, dict):
        raise ServeError("the request body must be a JSON object with an 'inputs' list")
    inputs_raw = request.get("inputs")
    if not isinstance(inputs_raw, list) or not inputs_raw:
        raise ServeError("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, spec in enumerate(inputs_raw):
        name, array, used = _input_tensor(spec, index, binary, offset)
        if name in inputs:
            raise ServeError(f"input '{name}' is given twice")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise ServeError(f"the body has {len(binary) - offset} bytes of binary data that no input claims")
    parameters = _field(request, "parameters", dict, "request", required=False) or {}
    outputs, binary_outputs = _requested_outputs(request.get("outputs"))
    request_id = request.get("id")
    return InferRequest(
        id=request_id if isinstance(request_id, str) else None,
        inputs=inputs,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_all=_field(parameters, "binary_data_output", bool, "request.parameters", required=False) or False,
    )


def encode_infer_response(
    model: str, version: int, request: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers; binary outputs follow the JSON header in output order."""
    entries, chunks = [], []
    for name in request.outputs or tuple(outputs):
        array = np.ascontiguousarray(outputs[name])
        entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype_of(array.dtype.name)}
        if request.binary_all or name in request.binary_outputs:
            entry["parameters"] = {"binary_data_size": array.nbytes}
            chunks.append(array.tobytes())
        else:
            entry["data"] = json_values(array)
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": entries}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, allow_nan=False).encode()
    if not chunks:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(header))}


def decode_infer_response(body: bytes, header_length: str | None) -> dict[str, np.ndarray]:
    """A response body -> output name -> array (the load tester and tests read responses with this)."""
    header = body if header_length is None else body[: int(header_length)]
    response = json.loads(header)
    outputs, offset = {}, len(header)
    for entry in response["outputs"]:
        dtype = np.dtype(DATATYPES[entry["datatype"]])
        size = entry.get("parameters", {}).get("binary_data_size")
        if size is None:
            data = [float(v) if isinstance(v, str) else v for v in entry["data"]]  # "NaN", "Infinity" (json_values)
            outputs[entry["name"]] = np.asarray(data, dtype=dtype).reshape(entry["shape"])
        else:
            outputs[entry["name"]] = np.frombuffer(body, dtype, offset=offset, count=size // dtype.itemsize).reshape(
                entry["shape"]
            )
            offset += size
    return outputs


def encode_infer_request(
    inputs: dict[str, np.ndarray], binary: bool, binary_outputs: bool = False
) -> tuple[bytes, dict[str, str]]:
    """Client side: a request body (binary extension when binary) and its headers."""
    entries, chunks = [], []
    for name, array in inputs.items():
        entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype_of(array.dtype.name)}
        if binary:
            entry["parameters"] = {"binary_data_size": array.nbytes}
            chunks.append(np.ascontiguousarray(array).tobytes())
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    request: dict[str, Any] = {"inputs": entries}
    if binary_outputs:
        request["parameters"] = {"binary_data_output": True}
    header = json.dumps(request).encode()
    if not binary:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(header))}


# The infer request body as OpenAPI documents it (FastAPI's schema for the route; the fuzz test feeds on it).
TENSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
        "data": {"type": "array", "items": {}},
    },
}
INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
        "inputs": {"type": "array", "minItems": 1, "items": TENSOR_SCHEMA},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
                },
            },
        },
    },
}
