"""gRPC tensors of the v2 protocol: the service's name, each datatype's typed contents field, and a tensor
appended to a message (typed, or raw bytes). The server (serve/grpc_app.py) and the load generator
(loadgen/grpc_load.py) both write messages with these."""

from __future__ import annotations

from typing import Any

import numpy as np

from frameduel.v2.protocol import datatype_of

SERVICE = "inference.GRPCInferenceService"
# The typed contents field of each v2 datatype, as KServe and Triton assign them; FP16 has none (raw only).
CONTENTS_FIELDS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
                   "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
                   "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
                   "FP64": "fp64_contents"}
# What each field holds on the wire, before narrowing to the tensor's datatype (INT8 travels as int32).
FIELD_DTYPES = {"bool_contents": "bool", "int_contents": "int32", "int64_contents": "int64",
                "uint_contents": "uint32", "uint64_contents": "uint64", "fp32_contents": "float32",
                "fp64_contents": "float64"}


def raw_needed(arrays: dict[str, np.ndarray], raw: bool) -> bool:
    """Raw when asked for, or when a datatype has no typed contents field (FP16): a message is all raw or all typed."""
    return raw or any(datatype_of(array.dtype.name) not in CONTENTS_FIELDS for array in arrays.values())


def add_tensor(tensors: Any, raw_contents: Any, name: str, array: np.ndarray, raw: bool) -> None:
    """Append a tensor to a message's inputs or outputs: its bytes to raw_contents when raw, else typed contents."""
    datatype = datatype_of(array.dtype.name)
    tensor = tensors.add(name=name, datatype=datatype, shape=array.shape)
    if raw:
        raw_contents.append(np.ascontiguousarray(array).tobytes())
    else:
        getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(array.reshape(-1).tolist())
