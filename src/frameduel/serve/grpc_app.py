"""The gRPC face of the model server: KServe v2's ``inference.GRPCInferenceService`` plus Triton's repository rpcs.

It serves the same ``ModelService`` (repository, batchers, metrics) as the REST face in app.py, from the
same process and event loop; only the wire format differs. Inputs come as typed ``contents`` or as
``raw_input_contents`` (row-major, little-endian bytes); outputs go back raw when the request was raw
(or when a datatype has no typed field, FP16), typed otherwise. Errors a client causes leave with the
gRPC status of their reason (``protocol.REASONS``: INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE,
RESOURCE_EXHAUSTED, ...), never UNKNOWN; with a token, every rpc but ServerLive and ServerReady needs
the metadata ``authorization: Bearer TOKEN`` (UNAUTHENTICATED otherwise), as every REST route but health.

Named grpc_app, not grpc: a module called grpc beside the generated stubs would read as the grpc package.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np

from frameduel.errors import FrameduelError
from frameduel.serve.service import Inferred, ModelService, reason_of, token_matches
from frameduel.v2.grpc_tensors import CONTENTS_FIELDS, FIELD_DTYPES, SERVICE, add_tensor, raw_needed
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2 as pb
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from frameduel.v2.protocol import (
    REASONS,
    InferRequest,
    ServeError,
    checked_shape,
    checked_values,
    datatype_of,
    served_dtype,
)

OPEN_METHODS = frozenset(f"/{SERVICE}/{rpc}" for rpc in ("ServerLive", "ServerReady"))  # health needs no token
# Typed contents become a Python number each while decoded (a 61 MB message of FP32: +670 MB, 3 s of the event
# loop), so they are for small tensors, as REST's JSON is (app.ServerConfig.max_json_bytes); raw contents are not.
MAX_TYPED_VALUES = 4 * 2**20
Message = TypeVar("Message")


def grpc_code(exc: FrameduelError) -> grpc.StatusCode:
    return grpc.StatusCode[REASONS[reason_of(exc)][1]]


# -- tensors in and out ------------------------------------------------------------------------------
def typed_tensor(tensor: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    field = CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        raise ServeError(f"{where}: {tensor.datatype} has no typed contents field; send it in raw_input_contents")
    stray = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if stray:
        raise ServeError(f"{where}: a {tensor.datatype} tensor's values go in contents.{field}, not {stray}")
    contents = getattr(tensor.contents, field)
    if len(contents) > MAX_TYPED_VALUES:
        raise ServeError(f"{where}: {len(contents)} typed values; typed contents are for up to {MAX_TYPED_VALUES}: "
                         "send large tensors in raw_input_contents", "too_large")
    values = np.array(contents, dtype=FIELD_DTYPES[field])
    return checked_values(values, shape, dtype, where, f"contents.{field}")


def raw_tensor(data: bytes, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise ServeError(f"{where}: raw_input_contents holds {len(data)} bytes; shape {list(shape)} of "
                         f"{datatype_of(dtype)} is {expected}")
    # A view of the message's bytes, no copy (the runtime only reads its inputs); the wire is little-endian.
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(shape)


def decode_infer_request(message: pb.ModelInferRequest) -> InferRequest:
    raw = message.raw_input_contents
    if not message.inputs:
        raise ServeError("'inputs' must be a non-empty list of tensors")
    if raw and len(raw) != len(message.inputs):
        raise ServeError(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; "
                         "send one per input, in input order")
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(message.inputs):
        where = f"inputs[{index}]"
        if tensor.name in inputs:
            raise ServeError(f"input '{tensor.name}' is given twice")
        if raw and tensor.HasField("contents"):
            raise ServeError(f"{where}: give either contents or raw_input_contents, not both")
        shape, dtype = checked_shape(list(tensor.shape), where), served_dtype(tensor.datatype, where)
        inputs[tensor.name] = (raw_tensor(raw[index], shape, dtype, where) if raw
                               else typed_tensor(tensor, shape, dtype, where))
    outputs = tuple(output.name for output in message.outputs) or None
    return InferRequest(id=message.id or None, inputs=inputs, outputs=outputs)


def encode_infer_response(done: Inferred, raw: bool) -> pb.ModelInferResponse:
    """Raw outputs answer raw inputs; typed contents otherwise."""
    response = pb.ModelInferResponse(model_name=done.loaded.name, model_version=str(done.loaded.version),
                                     id=done.request.id or "")
    raw = raw_needed(done.outputs, raw)
    for name, array in done.outputs.items():
        add_tensor(response.outputs, response.raw_output_contents, name, array, raw)
    return response


# -- metadata and the repository extension -----------------------------------------------------------
def metadata_message(metadata: dict[str, Any]) -> pb.ModelMetadataResponse:
    """ModelService.model_metadata -> the message; REST's "parameters" travel as KServe's string properties."""
    tensors = [[pb.ModelMetadataResponse.TensorMetadata(**spec) for spec in metadata[side]]
               for side in ("inputs", "outputs")]
    return pb.ModelMetadataResponse(name=metadata["name"], versions=metadata["versions"],
                                    platform=metadata["platform"], inputs=tensors[0], outputs=tensors[1],
                                    properties={key: str(value) for key, value in metadata["parameters"].items()})


def repository_parameters(parameters: Any) -> dict[str, Any]:
    """ModelRepositoryParameter map -> plain values. It has no list type, so "versions" may be "1,2"."""
    values = {key: getattr(value, value.WhichOneof("parameter_choice"))
              for key, value in parameters.items() if value.WhichOneof("parameter_choice")}
    versions = values.get("versions")
    if isinstance(versions, str) and all(part.strip().isdigit() for part in versions.split(",")):
        values["versions"] = [int(part) for part in versions.split(",")]
    return values


# -- the service -------------------------------------------------------------------------------------
def refusals(method: Callable[..., Awaitable[Message]]) -> Callable[..., Awaitable[Message]]:
    """A FrameduelError out of an rpc becomes its reason's gRPC status (an uncaught one would be UNKNOWN)."""

    @functools.wraps(method)
    async def answer(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Message:
        try:
            return await method(self, request, context)
        except FrameduelError as exc:
            await context.abort(grpc_code(exc), str(exc))

    return answer


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: ModelService) -> None:
        self.service = service

    @refusals
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @refusals
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.service.ready)

    @refusals
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.service.server_metadata())

    @refusals
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.service.model_ready(request.name, request.version))

    @refusals
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        return metadata_message(self.service.model_metadata(request.name, request.version))

    @refusals
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        raw = bool(request.raw_input_contents)
        with self.service.admitted("grpc"):
            return await self.service.infer("grpc", request.model_name, request.model_version,
                                            lambda: decode_infer_request(request),
                                            lambda done: encode_infer_response(done, raw))

    @refusals
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        models = [pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in self.service.index(request.ready)]
        return pb.RepositoryIndexResponse(models=models)

    @refusals
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                                  context: Any) -> pb.RepositoryModelLoadResponse:
        await self.service.load(request.model_name, repository_parameters(request.parameters))
        return pb.RepositoryModelLoadResponse()

    @refusals
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                                    context: Any) -> pb.RepositoryModelUnloadResponse:
        await self.service.unload(request.model_name, repository_parameters(request.parameters))
        return pb.RepositoryModelUnloadResponse()


def bearer_token(metadata: Sequence[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        scheme, _, credentials = str(value).partition(" ")
        if key == "authorization" and scheme.lower() == "bearer":
            return credentials.strip()
    return ""


class BearerAuth(grpc.aio.ServerInterceptor):
    """Every rpc but health needs the metadata 'authorization: Bearer TOKEN'."""

    def __init__(self, token: str, service: ModelService) -> None:
        self.token = token
        self.service = service  # counts the refusals

        async def deny(request: bytes, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing or wrong bearer token; send the metadata 'authorization: Bearer TOKEN'")

        self.deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation: Callable[..., Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        if details.method in OPEN_METHODS or token_matches(bearer_token(details.invocation_metadata), self.token):
            return await continuation(details)
        self.service.count_auth_failure("grpc")
        return self.deny


async def start_grpc_server(service: ModelService, host: str, port: int, token: str | None,
                            max_message_bytes: int) -> grpc.aio.Server:
    """Listen on host:port on the running event loop (where the batchers live)."""
    server = grpc.aio.server(interceptors=[BearerAuth(token, service)] if token else None, options=[
        ("grpc.max_receive_message_length", max_message_bytes),  # larger requests: RESOURCE_EXHAUSTED, by grpc
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a busy port is an error, never a port silently shared with another server
    ])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # newer grpcio raises where older ones returned 0
        bound = 0
    if not bound:
        raise FrameduelError(f"cannot listen on {address} for gRPC; pass a free --grpc-port")
    await server.start()
    return server
