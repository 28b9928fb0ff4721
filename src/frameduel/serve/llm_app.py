"""The LLM server's HTTP face (`frameduel serve --llm`): OpenAI-compatible routes, KServe's generate
extension, /metrics, auth; the lifespan that loads the model and runs the engine.

    GET  /v1/models                                    the one served model, with its context and KV cache
    POST /v1/completions, /v1/chat/completions         OpenAI's bodies; "stream": true answers SSE ending
                                                       "data: [DONE]"
    POST /v2/models/{m}/generate, .../generate_stream  KServe's generate extension ({"text_input", "parameters"})
    GET  /health, /v2/health/live|ready, /v2/models/{m}[/ready], /metrics

Errors a client causes are 4xx with one line: OpenAI's {"error": {"message", ...}} on /v1, KServe's
{"error": "..."} on /v2. A full waiting queue is 429. A client that disconnects (a stream closed, or
a plain request abandoned) has its sequence cancelled: its KV slot is free at the engine's next step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from frameduel import __version__
from frameduel.checkpoints import model_config
from frameduel.errors import FrameduelError
from frameduel.frameworks import kv_cache_bytes
from frameduel.llm.engine import Engine
from frameduel.llm.model import ServedModel, describe_mode, load_model_stepper, load_tokenizer, resolve_model
from frameduel.llm.params import EngineConfig
from frameduel.llm.scheduler import Event, Sequence
from frameduel.llm.tokenizer import Tokenizer
from frameduel.serve.app import check_address, freeze_heap, read_body
from frameduel.serve.llm_metrics import CONTENT_TYPE, LLMMetrics
from frameduel.serve.openai_api import (
    SSE_DONE,
    GenerationRequest,
    Reply,
    loads,
    openai_error,
    parse_request,
    sampling_params,
    sse,
    usage,
)
from frameduel.serve.service import token_matches
from frameduel.v2.protocol import ServeError
from frameduel.workloads import get_workload

log = logging.getLogger("frameduel.serve.llm")
GENERATE_STATUS = {400: 422}  # KServe's generate extension answers a request it cannot process with 422


@dataclass(frozen=True)
class LLMServerConfig:
    model: ServedModel
    engine: EngineConfig = field(default_factory=EngineConfig)
    host: str = "127.0.0.1"  # loopback unless the user asks for more
    port: int = 8000
    token: str | None = field(default=None, repr=False)  # bearer token on every route but health, when set
    max_body_bytes: int = 4 * 2**20


class LLMService:
    """The served model behind the routes: tokenizer, engine, metrics."""

    def __init__(self, config: LLMServerConfig, tokenizer: Tokenizer) -> None:
        self.config, self.served, self.tokenizer = config, config.model, tokenizer
        self.metrics = LLMMetrics(config.engine.slots)
        self.engine: Engine | None = None
        self.facts: dict[str, Any] = {}

    def start(self) -> None:
        """Load the framework and the model (minutes at worst: tracing, compiling), then run the engine on
        the running event loop."""
        stepper = load_model_stepper(self.served, self.config.engine)

        def dispatch(events: list[Event]) -> None:
            for event in events:
                event.sequence.sink.put_nowait(event)

        self.engine = Engine(stepper, self.tokenizer, self.config.engine, self.served.max_len, self.metrics,
                             dispatch)
        self.metrics.kv_bytes.set(stepper.kv_bytes)
        self.facts = {**self.config.engine.to_dict(), **self.served.to_dict(), **describe_mode(self.served),
                      "kv_cache_bytes": stepper.kv_bytes, "tokenizer": self.tokenizer.source}
        self.engine.start()

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    # -- requests ------------------------------------------------------------------------------------------
    def model_entry(self) -> dict[str, Any]:
        return {"id": self.served.name, "object": "model", "created": 0, "owned_by": "frameduel",
                "max_model_len": self.served.max_len, "frameduel": self.facts}

    def check_model(self, name: str) -> None:
        if name != self.served.name:
            raise ServeError(f"the model '{name}' does not exist; this server serves '{self.served.name}'",
                             "unknown_model")

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_ids is not None:
            vocab = self.engine.stepper.vocab_size
            if max(request.prompt_ids) >= vocab:
                raise ServeError(f"prompt token {max(request.prompt_ids)} is outside the vocabulary (0..{vocab - 1})")
            return list(request.prompt_ids)
        if request.messages is not None:
            return self.tokenizer.encode(self.tokenizer.render_chat(list(request.messages)), special_tokens=False)
        ids = self.tokenizer.encode(request.prompt_text)
        if not ids:
            raise ServeError("the prompt encodes to no tokens; send some text")
        return ids

    def submit(self, request: GenerationRequest) -> tuple[Sequence, int]:
        """Tokenize, check the context, queue: (the sequence, its prompt's token count)."""
        prompt = self.prompt_ids(request)
        params = sampling_params(request, len(prompt), self.served.max_len)
        return self.engine.submit(prompt, params, asyncio.Queue()), len(prompt)

    async def stream(self, reply: Reply, sequence: Sequence, request: GenerationRequest,
                     http: Request) -> AsyncIterator[bytes]:
        """SSE events as the engine's steps arrive, one per step that adds text (a token that completes no
        character, or may begin a stop string, waits for the next). A client that leaves cancels: watched
        here, since the stream task rarely waits long enough for Starlette's own watch to cancel it."""
        pending: list[int] = []  # token ids not sent yet (return_token_ids)
        watcher = asyncio.create_task(self.watch(http, sequence))
        try:
            if reply.kind == "chat":  # OpenAI's first chunk names the role
                yield reply.chunk("", None, first=True)
            while True:
                event: Event | None = await sequence.sink.get()
                if event is None:  # the client has gone
                    return
                if event.error is not None:
                    yield sse({"error": openai_error(500, event.error)["error"]})
                    break
                pending.append(event.token)
                if event.text or event.finish_reason:
                    yield reply.chunk(event.text, event.finish_reason,
                                      token_ids=pending if request.return_token_ids else None)
                    pending = []
                if event.finish_reason:
                    break
            if request.include_usage:
                yield reply.usage_chunk(usage(len(sequence.prompt), len(sequence.output)))
            if reply.kind != "generate":
                yield SSE_DONE
        finally:
            watcher.cancel()
            if sequence.finish_reason is None:
                self.engine.cancel(sequence)

    async def collect(self, reply: Reply, sequence: Sequence, parsed: GenerationRequest,
                      request: Request) -> Response:
        """The whole answer at once; a client that leaves before it is ready cancels the sequence."""
        watcher = asyncio.create_task(self.watch(request, sequence))
        pieces = []
        try:
            while (event := await sequence.sink.get()) is not None:
                if event.error is not None:
                    raise ServeError(event.error, "compute_error")
                pieces.append(event.text)
                if event.finish_reason:
                    body = reply.whole("".join(pieces), event.finish_reason,
                                       usage(len(sequence.prompt), len(sequence.output)),
                                       list(sequence.output) if parsed.return_token_ids else None)
                    return Response(orjson.dumps(body), media_type="application/json")
            return Response(status_code=499)  # nobody reads it: the client has gone
        finally:
            watcher.cancel()

    async def watch(self, request: Request, sequence: Sequence) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            continue
        self.engine.cancel(sequence)
        sequence.sink.put_nowait(None)

    async def answer(self, kind: str, endpoint: str, request: Request, model: str | None = None,
                     stream: bool | None = None) -> Response:
        try:
            parsed = parse_request(kind, loads(await read_body(request, self.config.max_body_bytes)))
            self.check_model(model or parsed.model)
            sequence, _ = self.submit(parsed)
        except FrameduelError as exc:
            self.metrics.count(endpoint, status_of(exc, kind))
            raise
        self.metrics.count(endpoint, 200)
        reply = Reply.new(kind, self.served.name)
        if parsed.stream if stream is None else stream:
            return StreamingResponse(self.stream(reply, sequence, parsed, request), media_type="text/event-stream")
        return await self.collect(reply, sequence, parsed, request)


def status_of(exc: FrameduelError, kind: str) -> int:
    status = getattr(exc, "status", 400)
    return GENERATE_STATUS.get(status, status) if kind == "generate" else status


def install_error_handlers(app: FastAPI) -> None:
    """/v1 answers OpenAI's error object, /v2 KServe's {"error": "..."}; both one line."""

    def error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        if request.url.path.startswith("/v1"):
            return JSONResponse(openai_error(status, message), status_code=status, headers=headers)
        if request.url.path.endswith(("/generate", "/generate_stream")):
            status = GENERATE_STATUS.get(status, status)
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(FrameduelError)
    async def on_user_error(request: Request, exc: FrameduelError) -> JSONResponse:
        return error(request, getattr(exc, "status", 400), str(exc))

    @app.exception_handler(HTTPException)  # unknown routes, wrong methods, auth
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error(request, 400, f"invalid request: {where} {first.get('msg', '')}".strip())


def create_llm_app(config: LLMServerConfig, tokenizer: Tokenizer) -> FastAPI:
    service = LLMService(config, tokenizer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        freeze_heap()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="frameduel LLM server (OpenAI-compatible, KServe generate)", version=__version__,
                  lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    bearer = HTTPBearer(auto_error=False)

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not token_matches(credentials.credentials if credentials else "", config.token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)] if config.token else []
    add_health_routes(app, service)

    @app.get("/v1/models", dependencies=guarded)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [service.model_entry()]}

    @app.get("/v1/models/{model}", dependencies=guarded)
    async def model_info(model: str) -> dict[str, Any]:
        service.check_model(model)
        return service.model_entry()

    @app.post("/v1/completions", dependencies=guarded)
    async def completions(request: Request) -> Response:
        return await service.answer("completion", "completions", request)

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(request: Request) -> Response:
        return await service.answer("chat", "chat_completions", request)

    for suffix, streamed in (("generate", False), ("generate_stream", True)):
        add_generate_routes(app, service, guarded, suffix, streamed)

    @app.get("/v2/models/{model}", dependencies=guarded)
    async def v2_metadata(model: str) -> dict[str, Any]:
        service.check_model(model)
        return {"name": model, "versions": ["1"], "platform": f"frameduel_{config.model.framework}",
                "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]}],
                "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}],
                "parameters": service.facts}

    @app.get("/metrics", dependencies=guarded)
    async def prometheus() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def add_health_routes(app: FastAPI, service: LLMService) -> None:
    """Unauthenticated, as load balancers probe them; the routes exist only once the model is loaded."""

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": service.engine is not None}

    @app.get("/v2/models/{model}/ready")
    async def model_ready(model: str) -> dict[str, Any]:
        service.check_model(model)
        return {"name": model, "ready": service.engine is not None}


def add_generate_routes(app: FastAPI, service: LLMService, guarded: list[Any], suffix: str, streamed: bool) -> None:
    endpoint = suffix

    async def route(request: Request, model: str, version: str = "1") -> Response:
        if version != "1":
            raise ServeError(f"model '{model}' has one version, 1; got version '{version}'", "unknown_model")
        return await service.answer("generate", endpoint, request, model, stream=streamed)

    app.add_api_route(f"/v2/models/{{model}}/{suffix}", route, methods=["POST"], dependencies=guarded)
    app.add_api_route(f"/v2/models/{{model}}/versions/{{version}}/{suffix}", route, methods=["POST"],
                      dependencies=guarded)


def serve_llm(target: str, framework: str, mode: str | None, size: str, threads: int, name: str | None,
              engine: EngineConfig, host: str, port: int, token: str | None, say: Callable[[str], None]) -> None:
    """`frameduel serve --llm`: check everything, say what is served and how much memory its cache takes, serve."""
    served = resolve_model(target, framework, mode, size, engine.max_len, name, threads)
    config = model_config(get_workload(served.workload), served.checkpoint, served.size)
    cache = kv_cache_bytes(config, engine.slots, served.max_len)
    say(f"serving {served.name} ({served.workload}, {framework} {served.mode}, {threads} thread(s)) at "
        f"http://{host}:{port}/v1: KV cache {engine.slots} slots x {served.max_len} positions = "
        f"{cache / 2**20:.1f} MiB, {engine.running_limit} sequence(s) at once, prefill chunk {engine.prefill_chunk} "
        "(Ctrl-C stops)")
    run_llm_server(LLMServerConfig(served, engine, host, port, token))


def run_llm_server(config: LLMServerConfig) -> None:
    """Serve until interrupted: the tokenizer is read and the address checked before the framework loads,
    so a wrong checkpoint or a busy port is one line, not a traceback minutes later."""
    import uvicorn

    tokenizer = load_tokenizer(config.model)
    check_address(config.host, config.port)
    uvicorn.run(create_llm_app(config, tokenizer), host=config.host, port=config.port, log_level="warning",
                access_log=False)
