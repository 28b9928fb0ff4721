"""Load-test a KServe v2 model endpoint: closed loop (N clients) or open loop (Poisson arrivals).

Closed loop: ``concurrency`` clients each keep one request in flight, so the offered load adapts to
the server (the throughput figure). Open loop: requests arrive at ``rate`` per second with exponential
gaps whatever the server does, and latency counts from the scheduled arrival, so a slow server shows
up as queueing instead of silently lowering the load (no coordinated omission).

The URL picks the protocol: ``http://HOST:PORT/v2/models/NAME[/versions/V]`` for REST, or
``grpc://HOST:PORT/NAME[/versions/V]`` for the v2 gRPC API (grpc_load.py). Either way the request is
built and checked once, then sent as the same bytes by every client. The HTTP hot loop speaks HTTP/1.1
keep-alive over asyncio streams itself: a general client costs several times more CPU per request,
and on a small machine the load generator would otherwise measure itself.

Stored results (``Store.save_result("loadtest", key, data, ...)``, key ``"<model>/<version> <mode>
c<concurrency> b<batch>"``) have these fields:
    config          LoadTestConfig as a dict (url, mode, concurrency, rate, batch, duration_s, ...)
    model, version  what answered (version as the server reported it)
    source          the artefact's origin from the model metadata: workload, size, framework, format
    requests        successful requests completed in the measured period (after warm-up)
    errors          {status: count} over the measured period: HTTP status code or "connection"; gRPC status
                    code name (RESOURCE_EXHAUSTED, UNAVAILABLE, ...)
    throughput_rps  successful requests per second;  throughput_sps: samples per second
    latency_ms      {"p50", "p90", "p99", "mean", "max"} of successful requests, milliseconds
    windows_sps     samples per second in consecutive windows of window_s (stability over time)
    window_noise    IQR/median of windows_sps;  stable: window_noise below stats.NOISE_THRESHOLD
    dropped         open loop only: arrivals not sent because too many were already waiting
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from frameduel.environment import fingerprint
from frameduel.errors import FrameduelError
from frameduel.export.runtimes import load_runtime
from frameduel.loadgen.target import MODEL_URLS, Connection, LoadTestConfig, Outcome, Target, make_inputs
from frameduel.stats import NOISE_THRESHOLD, percentile, summarize
from frameduel.store import Store
from frameduel.v2.protocol import encode_infer_request, tensor_metadata

MAX_WAITING_PER_CONNECTION = 16  # open loop: arrivals queued beyond this per connection are dropped


def resolve_target(config: LoadTestConfig) -> Target:
    """Check the URL names a served model (one clear error otherwise), fetch its metadata, try one request."""
    if config.url.startswith("grpc://"):
        from frameduel.loadgen.grpc_load import grpc_target  # grpcio and the stubs only load for gRPC

        return grpc_target(config)
    return http_target(config)


def http_target(config: LoadTestConfig) -> Target:
    parts = urlsplit(config.url.rstrip("/").removesuffix("/infer"))
    segments = parts.path.strip("/").split("/")
    if parts.scheme != "http" or not parts.hostname or segments[:2] != ["v2", "models"] or len(segments) not in (3, 5):
        raise FrameduelError(f"'{config.url}' is not a model URL; use {MODEL_URLS}")
    base = f"http://{parts.netloc}"
    model_path = parts.path.rstrip("/").removesuffix("/infer")
    try:
        response = httpx.get(base + model_path, headers=auth_headers(config.token), timeout=10)
    except httpx.HTTPError as exc:
        raise FrameduelError(f"cannot reach {base}: {exc}; is `frameduel serve` running there?") from None
    if response.status_code != 200:
        raise FrameduelError(f"{base + model_path} answered {response.status_code}: {error_text(response)}")
    metadata = response.json()
    request = request_bytes(base, parts.hostname, parts.port or 80, model_path + "/infer", metadata, config)
    return Target(segments[2], metadata, lambda: HttpConnection(parts.hostname, parts.port or 80, request))


def auth_headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


def request_bytes(base: str, host: str, port: int, infer_path: str, metadata: dict[str, Any],
                  config: LoadTestConfig) -> bytes:
    """One complete HTTP/1.1 request, built once and sent as it is by every client."""
    body, headers = encode_infer_request(make_inputs(metadata, config.batch, config.seed), config.binary,
                                         binary_outputs=config.binary)
    headers |= auth_headers(config.token)
    response = httpx.post(base + infer_path, content=body, headers=headers, timeout=60)
    if response.status_code != 200:  # fail before the run, with the server's own words
        raise FrameduelError(f"the first request failed ({response.status_code}): {error_text(response)}")
    lines = [f"POST {infer_path} HTTP/1.1", f"host: {host}:{port}",
             f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads Content-Length responses."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> str | None:
        status = await self.exchange()
        return None if status == 200 else str(status) if status else "connection"

    async def exchange(self) -> int:
        """Send the request once; return the status code, 0 when the connection failed."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(self.request)
            status_line = await self.reader.readuntil(b"\r\n")
            length, close = 0, False
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                length = int(value) if name == "content-length" else length
                close = close or (name == "connection" and value.strip().lower() == "close")
            await self.reader.readexactly(length)
            if close:
                self.drop()
            return int(status_line.split()[1])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            self.drop()
            return 0

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def close(self) -> None:
        self.drop()


async def closed_loop(target: Target, config: LoadTestConfig, stop: float) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def client() -> None:
        connection = target.connect()
        while (start := time.perf_counter()) < stop:
            error = await connection.send()
            end = time.perf_counter()
            outcomes.append(Outcome(end, end - start, error))
        await connection.close()

    await asyncio.gather(*(client() for _ in range(config.concurrency)))
    return outcomes


async def open_loop(target: Target, config: LoadTestConfig, stop: float) -> tuple[list[Outcome], int]:
    outcomes: list[Outcome] = []
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(config.concurrency):
        idle.put_nowait(target.connect())
    rng, tasks, dropped = random.Random(config.seed), set(), 0

    async def arrive(scheduled: float) -> None:
        connection = await idle.get()
        error = await connection.send()
        end = time.perf_counter()
        outcomes.append(Outcome(end, end - scheduled, error))  # from the arrival: waiting counts
        idle.put_nowait(connection)

    arrival = time.perf_counter()
    while (arrival := arrival + rng.expovariate(config.rate)) < stop:
        await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
        if len(tasks) >= config.concurrency * MAX_WAITING_PER_CONNECTION:
            dropped += 1
            continue
        task = asyncio.create_task(arrive(arrival))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    while not idle.empty():
        await idle.get_nowait().close()
    return outcomes, dropped


def summarize_outcomes(outcomes: list[Outcome], config: LoadTestConfig, begin: float) -> dict[str, Any]:
    """Figures over the measured period [begin, begin + duration_s)."""
    measured = [o for o in outcomes if begin <= o.end < begin + config.duration_s]
    ok = [o for o in measured if o.error is None]
    errors: dict[str, int] = {}
    for o in measured:
        if o.error is not None:
            errors[o.error] = errors.get(o.error, 0) + 1
    windows = np.zeros(max(1, int(config.duration_s / config.window_s)))
    for o in ok:
        windows[min(len(windows) - 1, int((o.end - begin) / config.window_s))] += config.batch / config.window_s
    latencies_ms = [o.latency_s * 1e3 for o in ok] or [float("nan")]
    noise = summarize(windows.tolist(), resamples=100).noise if windows.any() else float("inf")
    return {
        "requests": len(ok),
        "errors": errors,
        "throughput_rps": len(ok) / config.duration_s,
        "throughput_sps": len(ok) * config.batch / config.duration_s,
        "latency_ms": {f"p{q}": percentile(latencies_ms, q) for q in (50, 90, 99)}
        | {"mean": float(np.mean(latencies_ms)), "max": float(np.max(latencies_ms))},
        "windows_sps": windows.tolist(),
        "window_noise": noise,
        "stable": bool(noise < NOISE_THRESHOLD),
    }


@contextmanager
def frozen_heap() -> Iterator[None]:
    """The load generator's own start-up heap out of the collector's reach while it measures.

    Otherwise one full collection walks it mid-run (25-80 ms here) and every request in flight
    reads that pause as server latency.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_loadtest(config: LoadTestConfig) -> dict[str, Any]:
    """Run one load test against a live server; returns the stored-result document described above."""
    target = resolve_target(config)

    async def drive() -> tuple[list[Outcome], int, float]:
        begin = time.perf_counter() + config.warmup_s
        stop = begin + config.duration_s
        if config.mode == "closed":
            return await closed_loop(target, config, stop), 0, begin
        outcomes, dropped = await open_loop(target, config, stop)
        return outcomes, dropped, begin

    with frozen_heap():
        outcomes, dropped, begin = asyncio.run(drive())
    versions = target.metadata.get("versions") or ["?"]
    return {"config": config.to_dict(), "model": target.model, "version": versions[-1],
            "source": target.metadata.get("parameters", {}),
            **summarize_outcomes(outcomes, config, begin), "dropped": dropped}


def result_key(result: dict[str, Any]) -> str:
    config = result["config"]
    return f"{result['model']}/{result['version']} {config['mode']} c{config['concurrency']} b{config['batch']}"


def save_loadtest(store: Store, result: dict[str, Any]) -> int:
    return store.save_result("loadtest", result_key(result), result, fingerprint())


def offline_throughput(directory: Path, batch: int, duration_s: float, threads: int | None = None,
                       seed: int = 0) -> dict[str, Any]:
    """The runtime called directly at one batch size, no server: the ceiling served throughput is held to."""
    runtime = load_runtime(directory, threads)
    inputs = make_inputs({"inputs": tensor_metadata(runtime.manifest.inputs)}, batch, seed)
    for _ in range(3):  # first calls allocate and pick kernels
        runtime.infer(inputs)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration_s:
        runtime.infer(inputs)
        calls += 1
    return {"batch": batch, "calls": calls, "seconds": elapsed, "throughput_sps": calls * batch / elapsed}
