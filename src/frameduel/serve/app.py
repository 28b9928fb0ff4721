"""The HTTP face of the model server: KServe v2 routes, the repository extension, /metrics, auth.

Every error a client can cause leaves as a 4xx JSON ``{"error": "..."}``; 5xx is reserved for the
server's own state (a version unloading, a request timing out in the queue, a runtime failure).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import time
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
from frameduel.serve.metrics import CONTENT_TYPE, ServerMetrics
from frameduel.serve.protocol import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    INFER_REQUEST_SCHEMA,
    ServeError,
    encode_infer_response,
    parse_infer_request,
    tensor_metadata,
)
from frameduel.serve.repository import LoadedVersion, ModelRepository, parse_version

log = logging.getLogger("frameduel.serve")
EXTENSIONS = ("binary_tensor_data", "model_repository")


@dataclass(frozen=True)
class ServerConfig:
    repository: Path
    host: str = "127.0.0.1"  # loopback unless the user asks for more
    port: int = 8000
    token: str | None = None  # bearer token required on every route but health, when set
    threads: int | None = None  # runtime intra-op threads per model version
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_body_bytes: int = 64 * 2**20  # larger bodies get 413 before they are read into memory


def default_threads() -> int:
    """Runtime threads per model version: all cores but one, which stays with the event loop (HTTP)."""
    return max(1, (os.cpu_count() or 2) - 1)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ServeError(f"the body is {declared} bytes; the limit is {limit}", 413, "too_large")
    chunks, size = [], 0
    async for chunk in request.stream():  # counted as it arrives: chunked bodies have no declared length
        size += len(chunk)
        if size > limit:
            raise ServeError(f"the body exceeds the limit of {limit} bytes", 413, "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def model_metadata(repository: ModelRepository, loaded: LoadedVersion, all_versions: bool) -> dict[str, Any]:
    manifest = loaded.manifest
    versions = sorted(repository.loaded.get(loaded.name, {})) if all_versions else [loaded.version]
    return {
        "name": loaded.name,
        "versions": [str(v) for v in versions],
        "platform": f"{manifest.runtime}_{manifest.format}",
        "inputs": tensor_metadata(manifest.inputs),
        "outputs": tensor_metadata(manifest.outputs),
        # What the artefact was exported from, so a load test can be attributed to a framework.
        "parameters": {"workload": manifest.workload, "size": manifest.size, "framework": manifest.framework,
                       "format": manifest.format},
    }


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


def is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def version_list(value: Any) -> list[int] | None:
    """The load parameter "versions": absent, one version number or a non-empty list of them."""
    values = [value] if is_version(value) else value
    if values is not None and (not isinstance(values, list) or not values or not all(map(is_version, values))):
        raise ServeError("parameter 'versions' must be a version number or a non-empty list of them")
    return values


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FrameduelError)  # ServeError carries its status; input checks are plain 400s
    async def on_user_error(request: Request, exc: FrameduelError) -> JSONResponse:
        return error_response(getattr(exc, "status", 400), str(exc))

    @app.exception_handler(HTTPException)  # unknown routes, wrong methods, auth
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(400, f"invalid request: {where} {first.get('msg', '')}".strip())


def create_app(config: ServerConfig) -> FastAPI:
    metrics = ServerMetrics()
    repository = ModelRepository(config.repository, config.batching, metrics, config.threads)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for name in repository.models_on_disk():
            try:
                await repository.load(name)
            except ServeError as exc:  # one broken model must not keep the others from serving
                log.warning("not serving %s: %s", name, exc)
        state["ready"] = True
        yield
        state["ready"] = False
        await repository.close()

    app = FastAPI(title="frameduel model server (KServe v2 / Open Inference Protocol)", version=__version__,
                  lifespan=lifespan)
    app.state.repository = repository
    app.state.metrics = metrics
    install_error_handlers(app)
    bearer = HTTPBearer(auto_error=False)

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if config.token is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), config.token.encode()):  # constant time: no guessing by timing
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)] if config.token else []  # no per-request dependency work without a token

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:  # OIP: 200 means true, a 4xx means false
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 400)

    @app.get("/v2", dependencies=guarded)
    async def server_metadata() -> dict[str, Any]:
        return {"name": "frameduel", "version": __version__, "extensions": list(EXTENSIONS)}

    @app.get("/v2/models/{model}", dependencies=guarded)
    async def metadata(model: str) -> dict[str, Any]:
        return model_metadata(repository, repository.get(model), all_versions=True)

    @app.get("/v2/models/{model}/versions/{version}", dependencies=guarded)
    async def version_metadata(model: str, version: str) -> dict[str, Any]:
        return model_metadata(repository, repository.get(model, parse_version(version)), all_versions=False)

    async def readiness(model: str, version: int | None) -> JSONResponse:
        try:
            repository.get(model, version)
        except ServeError as exc:
            if exc.reason != "not_loaded":
                raise
            return JSONResponse({"name": model, "ready": False}, status_code=400)
        return JSONResponse({"name": model, "ready": True})

    @app.get("/v2/models/{model}/ready", dependencies=guarded)
    async def model_ready(model: str) -> JSONResponse:
        return await readiness(model, None)

    @app.get("/v2/models/{model}/versions/{version}/ready", dependencies=guarded)
    async def model_version_ready(model: str, version: str) -> JSONResponse:
        return await readiness(model, parse_version(version))

    infer_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": INFER_REQUEST_SCHEMA},
        BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
    }}}

    async def infer(request: Request, model: str, version: str | None) -> Response:
        start = time.perf_counter()
        labels = ("", "")  # until the model resolves: unknown names never become label values
        try:
            body = await read_body(request, config.max_body_bytes)
            # Resolve the version only now: from here to the batcher's queue nothing awaits, so a version
            # swap (new loaded, then old closed) cannot slip in between and fail the request with 503.
            loaded = repository.get(model, None if version is None else parse_version(version))
            labels = (loaded.name, str(loaded.version))
            parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
            loaded.check(parsed.inputs)
            unknown = sorted(set(parsed.outputs or ()) - {spec.name for spec in loaded.manifest.outputs})
            if unknown:
                names = [spec.name for spec in loaded.manifest.outputs]
                raise ServeError(f"unknown outputs {unknown}; the model has {names}")
            result = await loaded.batcher.submit(parsed.inputs)
            body, headers = encode_infer_response(loaded.name, loaded.version, parsed, result.outputs)
        except FrameduelError as exc:
            status, reason = getattr(exc, "status", 400), getattr(exc, "reason", "bad_request")
            metrics.observe_request(*labels, status, reason)
            return error_response(status, str(exc))
        total = time.perf_counter() - start
        metrics.observe_request(*labels, 200, phases={"queue": result.queue_s, "compute": result.compute_s,
                                                       "total": total})
        return Response(body, headers=headers)

    @app.post("/v2/models/{model}/infer", dependencies=guarded, openapi_extra=infer_body)
    async def infer_default(request: Request, model: str) -> Response:
        return await infer(request, model, None)

    @app.post("/v2/models/{model}/versions/{version}/infer", dependencies=guarded, openapi_extra=infer_body)
    async def infer_version(request: Request, model: str, version: str) -> Response:
        return await infer(request, model, version)

    @app.post("/v2/repository/index", dependencies=guarded)
    async def repository_index() -> list[dict[str, Any]]:
        return repository.index()

    load_body = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"parameters": {"type": "object"}}}}}}}

    @app.post("/v2/repository/models/{model}/load", dependencies=guarded, openapi_extra=load_body)
    async def load(request: Request, model: str) -> dict[str, Any]:
        """Serve the newest version, or exactly {"parameters": {"versions": [...]}}; new load before old unload."""
        versions = version_list((await request_parameters(request)).get("versions"))
        return {"name": model, "versions": [str(v) for v in await repository.load(model, versions)]}

    @app.post("/v2/repository/models/{model}/unload", dependencies=guarded, openapi_extra=load_body)
    async def unload(request: Request, model: str) -> dict[str, Any]:
        """Unload every version, or only {"parameters": {"version": N}}; queued requests finish first."""
        version = (await request_parameters(request)).get("version")
        if version is not None and not is_version(version):
            raise ServeError("parameter 'version' must be a version number")
        await repository.unload(model, version)
        return {"name": model, "versions": [str(v) for v in sorted(repository.loaded.get(model, {}))]}

    @app.get("/metrics", dependencies=guarded)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def check_address(host: str, port: int) -> None:
    """Fail with the fix in one line before loading any model, rather than uvicorn's log line after it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FrameduelError(f"cannot listen on {host}:{port} ({exc.strerror}); pass a free --port, or "
                                 "--host with an address of this machine") from None


def run_server(config: ServerConfig) -> None:
    """Serve until interrupted. The access log is off: one line per request would cost throughput."""
    import uvicorn  # imported here so that building the app in tests needs no server

    check_address(config.host, config.port)

    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning", access_log=False)
