"""`frameduel loadtest --llm URL`: load on any OpenAI-compatible server, measured as `vllm bench serve` does.

Load:
  - closed loop: `concurrency` clients, each with one streaming request in flight, until the requests
    are done (vLLM's --max-concurrency C with an infinite request rate);
  - open loop: requests arrive at `rate` per second, exponential gaps from the seed, at most
    `concurrency` in flight (an arrival beyond that waits for a free client).
  A warm-up of `warmup` requests (default: one per client) runs first at the same load and is not counted.

Prompts: `input_len` words drawn from WORDS (a fixed list) with the seed, so the server's tokenizer decides
their token count (reported as the mean of usage.prompt_tokens); `output_len` tokens asked for (max_tokens),
at temperature 0 unless told otherwise. With `range_ratio` r, each length is drawn uniformly from
[len x (1 - r), len x (1 + r)].

Metrics, vLLM's definitions, per request, from the time the request is sent:
  - TTFT: until the first chunk carrying text;
  - ITL: the gap between consecutive chunks carrying text (every gap, pooled over requests);
  - E2EL: until the last chunk carrying text;
  - TPOT: (E2EL - TTFT) / (output tokens - 1), output tokens from usage.completion_tokens (the request
    asks for stream_options.include_usage); a server that sends no usage has its text chunks counted
    instead (`output_tokens_from` says which);
  - mean, median, std and p99 (ms) of each; request/s, output tok/s and total tok/s over the duration
    (first measured send to last measured answer); goodput: requests/s meeting every given SLO.
A request fails on a non-200 status, a broken connection or a stream with no text; failures are counted by
status and left out of the latencies. The stream ends with the HTTP body: a server that never sends
`data: [DONE]` (transformers serve) is measured the same, and the result notes it.

Stored with `Store.save_result("llm-loadtest", key, result, ...)`, key "<label> <model> <mode> c<C> in<I>
out<O>"; `source` holds what a frameduel server says it runs (workload, framework, mode), else {}.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson

from frameduel.environment import fingerprint
from frameduel.errors import FrameduelError
from frameduel.loadgen.loadtest import auth_headers, error_text, frozen_heap
from frameduel.loadgen.sse_client import StreamingConnection
from frameduel.store import Store

RESULT_KIND = "llm-loadtest"
ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
MODES = ("closed", "open")
SLO_METRICS = ("ttft", "tpot", "e2el")
WORDS = ("the of and to in is was for on that with as by at from his it an were are which this be has had "
         "not but their first one they its new after who been also two have her she when time other more "
         "into during all over there only years can under would where later between most some about may "
         "such world three city made used these our state known then well through what while").split()


@dataclass(frozen=True)
class LLMLoadConfig:
    url: str  # http://HOST:PORT of the server (a trailing /v1 is fine)
    model: str | None = None  # default: the first model /v1/models lists
    endpoint: str = "completions"  # or "chat"
    mode: str = "closed"
    concurrency: int = 8
    rate: float | None = None  # open loop: mean arrivals per second
    requests: int | None = None  # measured requests; default max(16, 4 x concurrency)
    warmup: int | None = None  # unmeasured requests first; default: concurrency
    input_len: int = 16  # prompt words
    output_len: int = 64  # max_tokens
    range_ratio: float = 0.0
    temperature: float = 0.0
    slo: tuple[tuple[str, float], ...] = ()  # (metric, ms): ttft, tpot, e2el
    label: str | None = None  # who served: default from the server's own metadata
    token: str | None = field(default=None, repr=False)
    seed: int = 0
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FrameduelError(f"unknown load-test mode '{self.mode}'; choose from: {', '.join(MODES)}")
        if self.endpoint not in ENDPOINTS:
            raise FrameduelError(f"unknown endpoint '{self.endpoint}'; choose from: {', '.join(ENDPOINTS)}")
        if self.mode == "open" and not (self.rate and self.rate > 0):
            raise FrameduelError("the open loop needs --rate, the mean requests per second")
        if self.concurrency < 1 or self.input_len < 1 or self.output_len < 1 or (self.requests or 1) < 1:
            raise FrameduelError("concurrency, requests, --input-len and --output-len must be >= 1")
        if not 0 <= self.range_ratio < 1:
            raise FrameduelError(f"--range-ratio must be in [0, 1), got {self.range_ratio}")
        for metric, _ in self.slo:
            if metric not in SLO_METRICS:
                raise FrameduelError(f"unknown SLO metric '{metric}'; use {', '.join(SLO_METRICS)} in ms")

    @property
    def measured(self) -> int:
        return self.requests or max(16, 4 * self.concurrency)

    @property
    def warmups(self) -> int:
        return self.concurrency if self.warmup is None else self.warmup

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "token"}  # never store the secret


def parse_slo(text: str | None) -> tuple[tuple[str, float], ...]:
    """'ttft=200,tpot=50' (ms) -> (("ttft", 200.0), ("tpot", 50.0))."""
    found = []
    for part in filter(None, (text or "").split(",")):
        metric, _, value = part.partition("=")
        try:
            found.append((metric.strip(), float(value)))
        except ValueError:
            raise FrameduelError(f"--slo '{part}' is not METRIC=MS, e.g. ttft=200,tpot=50") from None
    return tuple(found)


@dataclass
class Record:
    """One request as the client saw it (perf_counter seconds)."""

    sent: float
    prompt_words: int
    max_tokens: int
    first: float | None = None
    last: float | None = None
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0  # chunks carrying text
    usage: dict[str, int] | None = None
    done: bool = False  # saw data: [DONE]
    error: str | None = None
    detail: str = ""  # the start of a failed answer's body (its error message)

    def on_event(self, data: bytes, now: float) -> None:
        if data == b"[DONE]":
            self.done = True
            return
        event = orjson.loads(data)
        if event.get("usage"):
            self.usage = event["usage"]
        if "error" in event:
            self.error = "stream error"
        choice = (event.get("choices") or [{}])[0]
        text = choice.get("text") or (choice.get("delta") or {}).get("content")
        if text:
            if self.first is None:
                self.first = now
            else:
                self.gaps.append(now - self.last)
            self.last, self.chunks = now, self.chunks + 1

    @property
    def output_tokens(self) -> int:
        return (self.usage or {}).get("completion_tokens") or self.chunks


def base_url(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url.rstrip("/").removesuffix("/v1"))
    if parts.scheme != "http" or not parts.hostname:
        raise FrameduelError(f"'{url}' is not a server URL; use http://HOST:PORT (an OpenAI-compatible server)")
    return f"http://{parts.netloc}", parts.hostname, parts.port or 80


def server_model(config: LLMLoadConfig, base: str) -> dict[str, Any]:
    """The model entry of /v1/models to load: config.model's, or the first."""
    try:
        response = httpx.get(f"{base}/v1/models", headers=auth_headers(config.token), timeout=30)
    except httpx.HTTPError as exc:
        raise FrameduelError(f"cannot reach {base}: {exc}; is an OpenAI-compatible server running there?") from None
    if response.status_code != 200:
        raise FrameduelError(f"{base}/v1/models answered {response.status_code}: {error_text(response)}")
    models = response.json().get("data") or []
    found = [m for m in models if config.model in (None, m.get("id"))]
    if config.model is not None and not found:
        return {"id": config.model}  # a server loading models on demand lists only some (transformers serve)
    if not found:
        raise FrameduelError(f"{base}/v1/models lists no model; name one with --model")
    return found[0]


def request_plan(config: LLMLoadConfig) -> list[tuple[int, int]]:
    """(prompt words, max_tokens) of every request, warm-up first: drawn from the seed."""
    rng = np.random.default_rng(config.seed)

    def lengths(mean: int, count: int) -> np.ndarray:
        low, high = max(1, round(mean * (1 - config.range_ratio))), max(1, round(mean * (1 + config.range_ratio)))
        return rng.integers(low, high + 1, size=count)

    total = config.warmups + config.measured
    return list(zip(lengths(config.input_len, total).tolist(), lengths(config.output_len, total).tolist(),
                    strict=True))


def request_bytes(config: LLMLoadConfig, model: str, host: str, port: int, index: int, words: int,
                  max_tokens: int) -> tuple[bytes, bytes]:
    """(head, body) of one streaming request; the prompt's words come from the seed and the request's index."""
    rng = random.Random(config.seed * 1_000_003 + index)
    prompt = " ".join(rng.choice(WORDS) for _ in range(words))
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "temperature": config.temperature,
                            "stream": True, "stream_options": {"include_usage": True}}
    if config.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    data = orjson.dumps(body)
    headers = {"host": f"{host}:{port}", "content-type": "application/json", "content-length": str(len(data)),
               "accept": "text/event-stream", **auth_headers(config.token)}
    head = f"POST {ENDPOINTS[config.endpoint]} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode(), data


async def send(connection: StreamingConnection, request: tuple[bytes, bytes], record: Record) -> Record:
    answer = await connection.post(*request, record.on_event)
    if answer.status != 200:
        record.error = str(answer.status) if answer.status else "connection"
        record.detail = answer.body[:300].decode("utf-8", "replace")
    elif record.first is None and record.error is None:
        record.error = "no text"
    return record


async def drive(config: LLMLoadConfig, requests: list[tuple[bytes, bytes]], plan: list[tuple[int, int]],
                host: str, port: int) -> list[Record]:
    """Every request through `concurrency` connections, closed or open loop; records in request order."""
    idle: asyncio.Queue[StreamingConnection] = asyncio.Queue()
    for _ in range(config.concurrency):
        idle.put_nowait(StreamingConnection(host, port))
    records: list[Record | None] = [None] * len(requests)

    async def one(index: int) -> None:
        connection = await idle.get()
        record = Record(time.perf_counter(), *plan[index])
        records[index] = await send(connection, requests[index], record)
        idle.put_nowait(connection)

    if config.mode == "closed":
        await asyncio.gather(*(one(i) for i in range(len(requests))))
    else:
        rng, tasks, arrival = random.Random(config.seed), [], time.perf_counter()
        for index in range(len(requests)):
            await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
            tasks.append(asyncio.create_task(one(index)))
            arrival += rng.expovariate(config.rate)
        await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return records


def spread(values: list[float]) -> dict[str, float | None]:
    """mean, median, std, p90, p99 in ms (vLLM reports mean, median, std and p99)."""
    if not values:
        return {"mean": None, "median": None, "std": None, "p90": None, "p99": None}
    ms = np.asarray(values) * 1e3
    return {"mean": float(ms.mean()), "median": float(np.median(ms)), "std": float(ms.std()),
            "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99))}


def summarize(records: list[Record], config: LLMLoadConfig) -> dict[str, Any]:
    """The measured requests' figures (records after the warm-up)."""
    measured = records[config.warmups:]
    ok = [r for r in measured if r.error is None]
    errors: dict[str, int] = {}
    for record in measured:
        if record.error is not None:
            errors[record.error] = errors.get(record.error, 0) + 1
    duration = max((r.last or r.sent for r in measured), default=0.0) - min((r.sent for r in measured), default=0.0)
    duration = max(duration, 1e-9)
    ttft = [r.first - r.sent for r in ok]
    e2el = [r.last - r.sent for r in ok]
    tpot = [(r.last - r.first) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1]
    output = sum(r.output_tokens for r in ok)
    prompt_tokens = [r.usage["prompt_tokens"] for r in ok if r.usage and r.usage.get("prompt_tokens")]
    good = [r for r in ok if meets_slo(r, config.slo)]
    return {
        "requests": len(ok), "errors": errors, "duration_s": duration,
        "request_throughput": len(ok) / duration, "output_throughput": output / duration,
        "total_token_throughput": (output + sum(prompt_tokens)) / duration,
        "output_tokens_mean": output / len(ok) if ok else None,
        "output_tokens_from": "usage" if ok and all(r.usage for r in ok) else "text chunks",
        "prompt_tokens_mean": float(np.mean(prompt_tokens)) if prompt_tokens else None,
        "ttft_ms": spread(ttft), "tpot_ms": spread(tpot), "itl_ms": spread([g for r in ok for g in r.gaps]),
        "e2el_ms": spread(e2el),
        "goodput": {"slo_ms": dict(config.slo), "request_throughput": len(good) / duration,
                    "share": len(good) / len(ok) if ok else 0.0} if config.slo else None,
        "sends_done": bool(ok) and all(r.done for r in ok),
        "sends_usage": bool(ok) and all(r.usage is not None for r in ok),
    }


def meets_slo(record: Record, slo: tuple[tuple[str, float], ...]) -> bool:
    values = {"ttft": record.first - record.sent, "e2el": record.last - record.sent,
              "tpot": (record.last - record.first) / (record.output_tokens - 1) if record.output_tokens > 1 else 0.0}
    return all(values[metric] * 1e3 <= limit for metric, limit in slo)


def server_label(entry: dict[str, Any], config: LLMLoadConfig) -> tuple[str, dict[str, Any]]:
    """(label, source): what a frameduel server says it runs, or the entry's owner."""
    facts = entry.get("frameduel") or {}
    source = {key: facts[key] for key in ("workload", "framework", "mode", "checkpoint", "max_running")
              if key in facts}
    if config.label:
        return config.label, source
    if facts:
        batching = "one at a time" if facts.get("max_running") == 1 else "continuous batching"
        return f"frameduel {facts['framework']} {facts['mode']} ({batching})", source
    return str(entry.get("owned_by") or "server"), source


def run_llm_loadtest(config: LLMLoadConfig) -> dict[str, Any]:
    """Run the load against a live server; returns the stored-result document (module docstring)."""
    base, host, port = base_url(config.url)
    entry = server_model(config, base)
    model = str(entry["id"])
    plan = request_plan(config)
    requests = [request_bytes(config, model, host, port, i, words, tokens) for i, (words, tokens) in enumerate(plan)]
    probe = asyncio.run(drive_one(requests[0], plan[0], host, port))
    if probe.error is not None:  # fail before the run, with the server's own words
        detail = " ".join(probe.detail.split())
        raise FrameduelError(f"the first request failed ({probe.error} {detail}); check --model, --endpoint and "
                             "the server")
    with frozen_heap():
        records = asyncio.run(asyncio.wait_for(drive(config, requests, plan, host, port), config.timeout_s))
    label, source = server_label(entry, config)
    return {"config": config.to_dict(), "model": model, "label": label, "source": source,
            "max_model_len": entry.get("max_model_len"), **summarize(records, config)}


async def drive_one(request: tuple[bytes, bytes], plan: tuple[int, int], host: str, port: int) -> Record:
    connection = StreamingConnection(host, port)
    try:
        return await send(connection, request, Record(time.perf_counter(), *plan))
    finally:
        connection.close()


def result_key(result: dict[str, Any]) -> str:
    config = result["config"]
    return (f"{result['label']} {result['model']} {config['mode']} c{config['concurrency']} in{config['input_len']} "
            f"out{config['output_len']}")


def save_llm_loadtest(store: Store, result: dict[str, Any]) -> int:
    return store.save_result(RESULT_KIND, result_key(result), result, fingerprint())
