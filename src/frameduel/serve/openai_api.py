"""The LLM server's wire formats, as plain data: OpenAI's completions and chat completions, and KServe's
generate extension. Requests are checked here, each refusal a ServeError of one line naming the
parameter; responses and stream chunks are built here. No HTTP: llm_app.py routes, this parses.

A parameter the server does not implement is refused by name (400), never silently ignored; OpenAI's
parameters that change nothing at their default value (frequency_penalty 0, logprobs null, ...) are
accepted at that value only.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from frameduel.llm.params import MAX_STOP_STRINGS, SamplingParams
from frameduel.v2.protocol import ServeError

KINDS = ("completion", "chat", "generate")
# Accepted with an effect, per kind (everything else is refused by name, unless NO_EFFECT allows its value).
SAMPLING_FIELDS = ("max_tokens", "temperature", "top_p", "seed", "stop")
# return_token_ids is vLLM's extension: each choice (and chunk) also carries the ids of its tokens.
FIELDS = {
    "completion": ("model", "prompt", *SAMPLING_FIELDS, "n", "stream", "stream_options", "user", "return_token_ids"),
    "chat": ("model", "messages", *SAMPLING_FIELDS, "max_completion_tokens", "n", "stream", "stream_options",
             "user", "return_token_ids"),
    "generate": ("text_input", "parameters", "id"),
}
# OpenAI parameters whose default changes nothing: accepted at exactly these values.
NO_EFFECT: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "logprobs": (None, False), "top_logprobs": (None,),
    "echo": (False,), "best_of": (1,), "logit_bias": (None, {}), "suffix": (None,),
}
ROLES = ("system", "user", "assistant")
OBJECTS = {"completion": ("text_completion", "text_completion"), "chat": ("chat.completion", "chat.completion.chunk")}
SSE_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class GenerationRequest:
    kind: str  # one of KINDS
    model: str | None  # None: the generate extension names it in the URL
    prompt_text: str | None = None
    prompt_ids: tuple[int, ...] | None = None  # a completion's prompt given as token ids
    messages: tuple[dict[str, str], ...] | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    return_token_ids: bool = False


def loads(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ServeError(f"the body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(data, dict):
        raise ServeError("the body must be a JSON object")
    return data


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_fields(data: dict[str, Any], allowed: tuple[str, ...], where: str = "") -> None:
    for name, value in data.items():
        if name in allowed or (name in NO_EFFECT and any(value == v and type(value) is type(v)
                                                         for v in NO_EFFECT[name])):
            continue
        if name in NO_EFFECT:
            raise ServeError(f"parameter '{where}{name}'={value!r} is not supported by this server (only "
                             f"{NO_EFFECT[name][0]!r}); remove it")
        raise ServeError(f"parameter '{where}{name}' is not supported by this server; remove it")


def sampling_fields(data: dict[str, Any], kind: str, where: str = "") -> dict[str, Any]:
    """max_tokens, temperature, top_p, seed and stop, checked."""
    found: dict[str, Any] = {}
    names = ("max_completion_tokens", "max_tokens") if kind == "chat" else ("max_tokens",)
    for name in (name for name in names if data.get(name) is not None):
        if not is_int(data[name]) or data[name] < 1:
            raise ServeError(f"'{where}{name}' must be an integer >= 1, got {data[name]!r}")
        found.setdefault("max_tokens", data[name])  # chat: max_completion_tokens wins, as OpenAI's own
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = data.get(name)
        if value is None:
            continue
        if not is_number(value) or not low <= value <= high or (name == "top_p" and value == 0):
            bounds = "0 < top_p <= 1" if name == "top_p" else "0 <= temperature <= 2"
            raise ServeError(f"'{where}{name}' must be a number with {bounds}, got {value!r}")
        found[name] = float(value)
    seed = data.get("seed")
    if seed is not None:
        if not is_int(seed) or seed < 0:
            raise ServeError(f"'{where}seed' must be a non-negative integer, got {seed!r}")
        found["seed"] = seed
    stop = data.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else None
    if stop is not None and (stops is None or not all(isinstance(s, str) and s for s in stops)):
        raise ServeError(f"'{where}stop' must be a non-empty string or a list of them")
    if stops and len(stops) > MAX_STOP_STRINGS:
        raise ServeError(f"'{where}stop' holds {len(stops)} strings; at most {MAX_STOP_STRINGS}")
    if stops:
        found["stop"] = stops
    return found


def stream_fields(data: dict[str, Any]) -> dict[str, Any]:
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ServeError(f"'stream' must be true or false, got {stream!r}")
    options = data.get("stream_options")
    if options is not None:
        if not stream:
            raise ServeError("'stream_options' is only allowed with \"stream\": true")
        if not isinstance(options, dict):
            raise ServeError("'stream_options' must be an object like {\"include_usage\": true}")
        check_fields(options, ("include_usage",), "stream_options.")
    include_usage = (options or {}).get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise ServeError("'stream_options.include_usage' must be true or false")
    token_ids = data.get("return_token_ids", False)
    if not isinstance(token_ids, bool):
        raise ServeError(f"'return_token_ids' must be true or false, got {token_ids!r}")
    n = data.get("n", 1)
    if n != 1 or not is_int(n):
        raise ServeError(f"'n'={n!r}: this server returns one choice per request; send n=1 (or leave it out)")
    return {"stream": stream, "include_usage": include_usage, "return_token_ids": token_ids}


def model_field(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ServeError("'model' is required: the id /v1/models lists")
    return model


def prompt_fields(prompt: Any) -> dict[str, Any]:
    """A string, token ids, or a list of one of either (one prompt per request)."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt:
        return {"prompt_text": prompt}
    if isinstance(prompt, list) and prompt and all(is_int(t) and t >= 0 for t in prompt):
        return {"prompt_ids": tuple(prompt)}
    if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, str | list) for p in prompt):
        raise ServeError(f"'prompt' holds {len(prompt)} prompts; this server takes one per request")
    raise ServeError("'prompt' must be a non-empty string or a non-empty list of token ids")


def message_list(messages: Any) -> tuple[dict[str, str], ...]:
    """Chat messages with string content (or text parts, joined)."""
    if not isinstance(messages, list) or not messages:
        raise ServeError("'messages' must be a non-empty list of {\"role\", \"content\"} objects")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ServeError(f"messages[{index}] must be an object with 'role' and 'content'")
        check_fields(message, ("role", "content", "name"), f"messages[{index}].")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ServeError(f"messages[{index}].role '{role}' is not supported; use one of: {', '.join(ROLES)}")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ServeError(f"messages[{index}].content: only text parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ServeError(f"messages[{index}].content must be a string")
        checked.append({"role": role, "content": content})
    return tuple(checked)


def parse_request(kind: str, data: dict[str, Any]) -> GenerationRequest:
    """A completion, chat or generate request, checked in full."""
    check_fields(data, FIELDS[kind])
    if kind == "generate":
        text = data.get("text_input")
        if not isinstance(text, str) or not text:
            raise ServeError("'text_input' must be a non-empty string")
        parameters = data.get("parameters", {})
        if not isinstance(parameters, dict):
            raise ServeError("'parameters' must be an object")
        check_fields(parameters, SAMPLING_FIELDS, "parameters.")
        return GenerationRequest("generate", None, prompt_text=text,
                                 **sampling_fields(parameters, kind, "parameters."))
    found = {"model": model_field(data), **stream_fields(data), **sampling_fields(data, kind)}
    if kind == "chat":
        return GenerationRequest("chat", messages=message_list(data.get("messages")), **found)
    return GenerationRequest("completion", **prompt_fields(data.get("prompt")), **found)


def sampling_params(request: GenerationRequest, prompt_tokens: int, max_len: int) -> SamplingParams:
    """The engine's parameters; the prompt and the tokens asked for must fit one KV slot."""
    if prompt_tokens >= max_len:
        raise ServeError(f"the prompt has {prompt_tokens} tokens; this model's context is {max_len} tokens, so "
                         f"at most {max_len - 1} leave room for one new token: shorten the prompt")
    room = max_len - prompt_tokens
    max_tokens = room if request.max_tokens is None else request.max_tokens
    if max_tokens > room:
        raise ServeError(f"the prompt ({prompt_tokens} tokens) and max_tokens ({max_tokens}) exceed this model's "
                         f"context of {max_len} tokens; lower max_tokens to at most {room} or shorten the prompt")
    return SamplingParams(max_tokens, request.temperature, request.top_p, request.seed, request.stop)


# -- responses ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The fixed part of one request's answers."""

    kind: str
    model: str
    id: str
    created: int

    @classmethod
    def new(cls, kind: str, model: str) -> Reply:
        prefix = {"completion": "cmpl", "chat": "chatcmpl", "generate": "gen"}[kind]
        return cls(kind, model, f"{prefix}-{uuid.uuid4().hex}", int(time.time()))

    def head(self, chunk: bool) -> dict[str, Any]:
        return {"id": self.id, "object": OBJECTS[self.kind][chunk], "created": self.created, "model": self.model}

    def whole(self, text: str, finish_reason: str, usage: dict[str, int],
              token_ids: list[int] | None = None) -> dict[str, Any]:
        """The non-streamed answer; token_ids when the request asked for them."""
        if self.kind == "generate":
            return {"id": self.id, "model_name": self.model, "model_version": "1", "text_output": text,
                    "finish_reason": finish_reason, "usage": usage}
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish_reason}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        if token_ids is not None:
            choice["token_ids"] = token_ids
        return {**self.head(False), "choices": [choice], "usage": usage}

    def chunk(self, text: str, finish_reason: str | None, first: bool = False,
              token_ids: list[int] | None = None) -> bytes:
        """One SSE event carrying a piece of text (and the finish reason on the last one)."""
        if self.kind == "generate":
            body: dict[str, Any] = {"id": self.id, "model_name": self.model, "model_version": "1",
                                    "text_output": text, "done": finish_reason is not None}
            if finish_reason is not None:
                body["finish_reason"] = finish_reason
        elif self.kind == "chat":
            delta = {"role": "assistant", "content": text} if first else {"content": text} if text else {}
            body = {**self.head(True), "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                    "finish_reason": finish_reason}]}
        else:
            body = {**self.head(True), "choices": [{"index": 0, "text": text, "logprobs": None,
                                                    "finish_reason": finish_reason}]}
        if token_ids is not None and self.kind != "generate":
            body["choices"][0]["token_ids"] = token_ids
        return sse(body)

    def usage_chunk(self, usage: dict[str, int]) -> bytes:
        """stream_options.include_usage: the last event before [DONE], with no choices."""
        return sse({**self.head(True), "choices": [], "usage": usage})


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\n\n"


def openai_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object, which its clients read the message from."""
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}
