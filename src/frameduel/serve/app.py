"""The HTTP face of the model server: KServe v2 routes, the repository extension, /metrics, auth.

Every error a client can cause leaves as a 4xx JSON ``{"error": "..."}``; 5xx is reserved for the
server's own state (a version unloading, a request timing out in the queue, a runtime failure, draining).
With a token, only ``/v2/health/live`` and ``/v2/health/ready`` answer without it (gRPC: ServerLive and
ServerReady); the OpenAPI schema needs it too and the /docs page is off.
What a request does beyond HTTP lives in service.py, shared with the gRPC face (grpc_app.py), which
the same lifespan starts when ``grpc_port`` is set.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from frameduel import __version__
from frameduel.errors import FrameduelError
from frameduel.serve.batcher import BatchingConfig
from frameduel.serve.connections import ConnectionLimits
from frameduel.serve.metrics import CONTENT_TYPE, ServerMetrics
from frameduel.serve.repository import ModelRepository
from frameduel.serve.service import Inferred, ModelService, token_matches
from frameduel.v2.protocol import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    INFER_REQUEST_SCHEMA,
    ServeError,
    encode_infer_response,
    parse_infer_request,
)

log = logging.getLogger("frameduel.serve")


@dataclass(frozen=True)
class ServerConfig:
    repository: Path
    host: str = "127.0.0.1"  # loopback unless the user asks for more; gRPC binds the same host
    port: int = 8000
    token: str | None = None  # bearer token required on every route but health, when set (gRPC too)
    threads: int | None = None  # runtime intra-op threads per model version
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_body_bytes: int = 64 * 2**20  # larger bodies get 413 before they are read into memory (gRPC: messages)
    # The JSON part of a body: parsed, each number is a Python object for a while (~15x the text in memory), so
    # JSON is for small tensors; large ones go as binary data (Inference-Header-Content-Length), read in place.
    max_json_bytes: int = 16 * 2**20
    # All infer bodies held at once (being read, parsed, or viewed by queued inputs); past it: 429. Without it,
    # every open connection could hold max_body_bytes.
    max_buffered_bytes: int = 256 * 2**20
    grpc_port: int | None = None  # also serve the v2 gRPC API on this port (None: REST only)
    body_timeout_s: float = 60.0  # a request's body must arrive within this; else 408
    drain_timeout_s: float = 30.0  # after SIGTERM, the longest requests in flight get to finish (drain.py)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)  # open connections, header timeout


def default_threads() -> int:
    """Runtime threads per model version: all cores but one, which stays with the event loop (HTTP)."""
    return max(1, (os.cpu_count() or 2) - 1)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyBudget:
    """The bytes of infer bodies the server holds at once, bounded: a request that would pass the bound is refused
    (429) instead of growing memory, whatever the number of connections sending large bodies."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise ServeError(f"the server holds {self.held} bytes of other requests' bodies (limit {self.limit}); "
                             "retry later", "overloaded")
        self.held += size

    def release(self, size: int) -> None:
        self.held -= size


async def read_body(request: Request, limit: int, timeout_s: float = 60.0, budget: BodyBudget | None = None,
                    held: list[int] | None = None, hint: str = "") -> bytes:
    """The whole body, within limit bytes and timeout_s; with a budget, what it holds is added to held[0] (the
    caller releases it once the request is answered). hint: the fix a too large body's message names."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ServeError(f"the body is {declared} bytes; the limit is {limit}{hint}", "too_large")
    chunks: list[bytes] = []

    async def read() -> None:
        size = 0
        async for chunk in request.stream():  # counted as it arrives: chunked bodies have no declared length
            size += len(chunk)
            if size > limit:
                raise ServeError(f"the body exceeds the limit of {limit} bytes{hint}", "too_large")
            if budget is not None and held is not None:
                budget.take(len(chunk))
                held[0] += len(chunk)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:  # asyncio's (an alias of the builtin since 3.11)
        raise ServeError(f"the request body did not arrive within {timeout_s:g} s", "request_timeout") from None
    return b"".join(chunks)


async def request_parameters(request: Request) -> dict[str, Any]:
    """The optional {"parameters": {...}} body of the repository extension's load/unload."""
    body = await read_body(request, 2**16)
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ServeError("the body must be empty or a JSON object like {\"parameters\": {...}}") from None
    parameters = data.get("parameters", {}) if isinstance(data, dict) else None
    if not isinstance(parameters, dict):
        raise ServeError("the body must be empty or a JSON object like {\"parameters\": {...}}")
    return parameters


JSON_HINT = ("; JSON bodies are for small tensors: send large ones as binary data (the binary tensor extension, "
             f"{HEADER_LENGTH})")


def encode_rest(done: Inferred) -> tuple[bytes, dict[str, str]]:
    return encode_infer_response(done.loaded.name, done.loaded.version, done.request, done.outputs)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FrameduelError)  # ServeError carries its status; input checks are plain 400s
    async def on_user_error(request: Request, exc: FrameduelError) -> JSONResponse:
        return error_response(getattr(exc, "status", 400), str(exc))

    @app.exception_handler(HTTPException)  # unknown routes, wrong methods, auth
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # no route matched (a name holding '/' never does)
            message = (f"no endpoint {request.method} {request.url.path}; model names hold no '/', and the "
                       "endpoints are listed in /openapi.json")
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(400, f"invalid request: {where} {first.get('msg', '')}".strip())


def freeze_heap() -> None:
    """Move everything alive after start-up (modules, the models, FastAPI's routes) out of the collector's reach.

    Requests in flight outlive a few young collections and get promoted, so full collections keep coming
    under load, and each one walked the whole start-up heap: 50-550 ms pauses that stalled every request
    in flight, the p99 of a tiny model. Frozen, a full collection walks only what requests left: ~1 ms.
    """
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def serving(service: ModelService, config: ServerConfig) -> AsyncIterator[None]:
    """The FastAPI lifespan: models load, the gRPC face (if asked for) runs beside REST, both stop together.

    gRPC runs as grpc.aio on uvicorn's own event loop rather than in a thread: the batchers' futures belong
    to this loop, so gRPC handlers await them directly, with no hop between threads per request.
    """
    grpc_server = None
    if config.grpc_port is not None:
        from frameduel.serve.grpc_app import start_grpc_server  # grpcio is only imported when asked for

        grpc_server = await start_grpc_server(service, config.host, config.grpc_port, config.token,
                                              config.max_body_bytes)
    try:
        await service.start()
        freeze_heap()
        yield
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=5.0)  # in-flight calls finish before the batchers close
        await service.stop()


def create_app(config: ServerConfig) -> FastAPI:
    metrics = ServerMetrics()
    repository = ModelRepository(config.repository, config.batching, metrics, config.threads)
    service = ModelService(repository, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(service, config):
            yield

    closed = {"openapi_url": None, "docs_url": None, "redoc_url": None} if config.token else {}
    app = FastAPI(title="frameduel model server (KServe v2 / Open Inference Protocol)", version=__version__,
                  lifespan=lifespan, **closed)
    app.state.repository = repository
    app.state.metrics = metrics
    app.state.service = service
    install_error_handlers(app)
    bearer = HTTPBearer(auto_error=False)

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if config.token is None:
            return
        if not token_matches(credentials.credentials if credentials else "", config.token):
            service.count_auth_failure("rest")
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)] if config.token else []  # no per-request dependency work without a token
    if config.token:
        @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
        async def openapi() -> dict[str, Any]:
            return app.openapi()

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:  # OIP: 200 means true, a 4xx means false
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 400)

    @app.get("/v2", dependencies=guarded)
    async def server_metadata() -> dict[str, Any]:
        return service.server_metadata()

    @app.get("/v2/models/{model}", dependencies=guarded)
    async def metadata(model: str) -> dict[str, Any]:
        return service.model_metadata(model, None)

    @app.get("/v2/models/{model}/versions/{version}", dependencies=guarded)
    async def version_metadata(model: str, version: str) -> dict[str, Any]:
        return service.model_metadata(model, version)

    def readiness(model: str, version: str | None) -> JSONResponse:
        is_ready = service.model_ready(model, version)
        return JSONResponse({"name": model, "ready": is_ready}, status_code=200 if is_ready else 400)

    @app.get("/v2/models/{model}/ready", dependencies=guarded)
    async def model_ready(model: str) -> JSONResponse:
        return readiness(model, None)

    @app.get("/v2/models/{model}/versions/{version}/ready", dependencies=guarded)
    async def model_version_ready(model: str, version: str) -> JSONResponse:
        return readiness(model, version)

    infer_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": INFER_REQUEST_SCHEMA},
        BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
    }}}

    bodies = BodyBudget(config.max_buffered_bytes)

    def body_limit(header_length: str | None) -> tuple[int, str]:
        """(bytes an infer body may take, the fix a larger one is told): all JSON, or JSON and binary tensor data."""
        if header_length is None:
            return min(config.max_json_bytes, config.max_body_bytes), JSON_HINT
        if header_length.isascii() and header_length.isdigit() and int(header_length) > config.max_json_bytes:
            raise ServeError(f"{HEADER_LENGTH} {header_length} is past the JSON limit of {config.max_json_bytes} "
                             "bytes; send the tensors' values as binary data", "too_large")
        return config.max_body_bytes, ""

    async def infer(request: Request, model: str, version: str | None) -> Response:
        held = [0]  # bytes of this body in the budget, released once it is answered (its inputs may view it)
        header_length = request.headers.get(HEADER_LENGTH)
        with service.admitted("rest"):
            try:
                try:
                    limit, hint = body_limit(header_length)
                    body = await read_body(request, limit, config.body_timeout_s, bodies, held, hint)
                except ServeError as exc:
                    service.count_failure("rest", exc)
                    raise
                answer, headers = await service.infer("rest", model, version,
                                                      lambda: parse_infer_request(body, header_length), encode_rest)
            finally:
                bodies.release(held[0])
        return Response(answer, headers=headers)

    @app.post("/v2/models/{model}/infer", dependencies=guarded, openapi_extra=infer_body)
    async def infer_default(request: Request, model: str) -> Response:
        return await infer(request, model, None)

    @app.post("/v2/models/{model}/versions/{version}/infer", dependencies=guarded, openapi_extra=infer_body)
    async def infer_version(request: Request, model: str, version: str) -> Response:
        return await infer(request, model, version)

    @app.post("/v2/repository/index", dependencies=guarded)
    async def repository_index() -> list[dict[str, Any]]:
        return service.index()

    load_body = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"parameters": {"type": "object"}}}}}}}

    @app.post("/v2/repository/models/{model}/load", dependencies=guarded, openapi_extra=load_body)
    async def load(request: Request, model: str) -> dict[str, Any]:
        """Serve the newest version, or exactly {"parameters": {"versions": [...]}}; new load before old unload."""
        versions = await service.load(model, await request_parameters(request))
        return {"name": model, "versions": [str(v) for v in versions]}

    @app.post("/v2/repository/models/{model}/unload", dependencies=guarded, openapi_extra=load_body)
    async def unload(request: Request, model: str) -> dict[str, Any]:
        """Unload every version, or only {"parameters": {"version": N}}; queued requests finish first."""
        remaining = await service.unload(model, await request_parameters(request))
        return {"name": model, "versions": [str(v) for v in remaining]}

    @app.get("/metrics", dependencies=guarded)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def check_address(host: str, port: int, option: str = "--port") -> None:
    """Fail with the fix in one line before loading any model, rather than uvicorn's log line after it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FrameduelError(f"cannot listen on {host}:{port} ({exc.strerror}); pass a free {option}, or "
                                 "--host with an address of this machine") from None


def run_server(config: ServerConfig) -> None:
    """Serve until SIGTERM or Ctrl-C, then drain (drain.py). The access log is off: one line per request would cost
    throughput. Connections that send nothing, or too many at once, are closed with a reason (connections.py)."""
    import uvicorn  # imported here so that building the app in tests needs no server

    from frameduel.serve.connections import guarded_protocol
    from frameduel.serve.drain import DrainingServer

    check_address(config.host, config.port)
    if config.grpc_port is not None:
        if config.grpc_port == config.port:
            raise FrameduelError(f"--grpc-port {config.grpc_port} is the REST --port too; give gRPC a port of its own")
        check_address(config.host, config.grpc_port, "--grpc-port")

    app = create_app(config)
    protocol = guarded_protocol(config.connections, app.state.metrics)
    server_config = uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", access_log=False,
                                   http=protocol)  # type: ignore[arg-type] - uvicorn takes a protocol class too
    DrainingServer(server_config, app.state.service, config.drain_timeout_s).run()
