"""The load tester's gRPC side: ``grpc://HOST:PORT/NAME[/versions/V]`` against the v2 gRPC API.

Metadata and one checked request go through the generated stubs; the hot loop then sends the request
already serialised and does not parse answers (bytes in, bytes out, as the HTTP client sends fixed bytes
and only reads the response), on ``grpc.aio`` channels, one connection per client like HTTP keep-alive.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import grpc

from frameduel.errors import FrameduelError
from frameduel.loadgen.target import MODEL_URLS, LoadTestConfig, Target, make_inputs
from frameduel.v2.grpc_tensors import SERVICE, add_tensor, raw_needed
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2 as pb
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

# Own connection per channel (not grpc's process-wide subchannel pool, where equal channels share one),
# and answers of any size.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]


def parse_grpc_url(url: str) -> tuple[str, str, str]:
    """grpc://HOST:PORT/NAME[/versions/V] -> (HOST:PORT, NAME, V or "")."""
    parts = urlsplit(url.rstrip("/"))
    segments = parts.path.strip("/").split("/")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = None
    versioned = len(segments) == 3 and segments[1] == "versions" and segments[2].isdigit()
    if not parts.hostname or port is None or not segments[0] or (len(segments) != 1 and not versioned):
        raise FrameduelError(f"'{url}' is not a model URL; use {MODEL_URLS}")
    return parts.netloc, segments[0], segments[2] if versioned else ""


def metadata_dict(message: pb.ModelMetadataResponse) -> dict[str, Any]:
    """The gRPC model metadata in the REST metadata's shape (KServe's properties as its "parameters")."""
    def tensors(specs: Any) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]

    return {"name": message.name, "versions": list(message.versions), "platform": message.platform,
            "inputs": tensors(message.inputs), "outputs": tensors(message.outputs),
            "parameters": dict(message.properties)}


def infer_request(model: str, version: str, metadata: dict[str, Any], config: LoadTestConfig) -> pb.ModelInferRequest:
    """Raw contents with config.binary, typed contents otherwise (--json-tensors)."""
    inputs = make_inputs(metadata, config.batch, config.seed)
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    raw = raw_needed(inputs, config.binary)
    for name, array in inputs.items():
        add_tensor(request.inputs, request.raw_input_contents, name, array, raw)
    return request


def grpc_target(config: LoadTestConfig) -> Target:
    address, model, version = parse_grpc_url(config.url)
    call_metadata = (("authorization", f"Bearer {config.token}"),) if config.token else ()
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=5)
        except grpc.FutureTimeoutError:
            raise FrameduelError(f"cannot reach {address} over gRPC; is `frameduel serve --grpc-port` running "
                                 "there?") from None
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            answer = stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version), metadata=call_metadata,
                                        timeout=10)
        except grpc.RpcError as exc:
            raise FrameduelError(f"{config.url} answered {exc.code().name}: {exc.details()}") from None
        metadata = metadata_dict(answer)
        request = infer_request(model, version, metadata, config)
        try:  # fail before the run, with the server's own words
            stub.ModelInfer(request, metadata=call_metadata, timeout=60)
        except grpc.RpcError as exc:
            raise FrameduelError(f"the first request failed ({exc.code().name}): {exc.details()}") from None
    payload = request.SerializeToString()
    return Target(model, metadata, lambda: GrpcConnection(address, payload, call_metadata))


class GrpcConnection:
    """One grpc.aio channel that sends a serialised ModelInferRequest; errors are gRPC status code names."""

    def __init__(self, address: str, payload: bytes, call_metadata: tuple[tuple[str, str], ...]) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.infer = self.channel.unary_unary(f"/{SERVICE}/ModelInfer")  # no (de)serialisers: bytes both ways
        self.payload, self.call_metadata = payload, call_metadata

    async def send(self) -> str | None:
        try:
            await self.infer(self.payload, metadata=self.call_metadata)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return None

    async def close(self) -> None:
        await self.channel.close()
