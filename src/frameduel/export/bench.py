"""Benchmark one loaded artefact in its own runtime: batch-1 latency and throughput at max batch.

Every call is timed on its own with perf_counter (a batch-1 call is short enough that per-call
overhead is part of what a caller pays). Each series stops at its call count or its time budget,
whichever comes first; summaries use the median-based helpers of ``frameduel.stats``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from frameduel.export.gate import infer_one
from frameduel.export.runtimes import Runtime
from frameduel.stats import summarize, throughput


@dataclass(frozen=True)
class BenchBudget:
    warmup_calls: int = 5  # untimed: first calls pay for lazy allocation, delegate set-up, caches
    latency_calls: int = 300  # batch 1; p99 needs a few hundred samples to mean anything
    throughput_calls: int = 50  # max batch
    max_seconds: float = 3.0  # per series

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchBudget:
        return cls(**data)


@dataclass(frozen=True)
class ArtefactBenchmark:
    runtime: str
    threads: int
    size_bytes: int
    load_s: float  # load_runtime on an already imported runtime module
    import_s: float  # importing that runtime (onnxruntime, ai_edge_litert, torch, tensorflow) in a fresh process
    latency_ms_p50: float  # batch 1
    latency_ms_p99: float
    latency_calls: int
    latency_noise: float  # IQR / median of the batch-1 calls
    throughput_batch: int
    throughput_sps: float  # samples per second at throughput_batch: batch / median call time
    throughput_sps_ci: tuple[float, float]
    throughput_calls: int
    # RSS of the process that ran it (validate_worker.py; None in the browser, which runs in Chromium's):
    harness_rss_mb: float | None = None  # before importing the runtime
    runtime_rss_mb: float | None = None  # after importing it: peak - this is what the artefact added
    peak_rss_mb: float | None = None  # once the artefact was loaded and run at every gate batch size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_calls(call: Callable[[], object], budget: BenchBudget, calls: int) -> list[float]:
    for _ in range(budget.warmup_calls):
        call()
    seconds: list[float] = []
    deadline = time.perf_counter() + budget.max_seconds
    while len(seconds) < calls and (len(seconds) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def benchmark(runtime: Runtime, one: np.ndarray, full: np.ndarray, budget: BenchBudget, threads: int,
              size_bytes: int, load_s: float, import_s: float) -> ArtefactBenchmark:
    """one: a batch-1 input; full: an input at the artefact's largest accepted batch."""
    latency_s = time_calls(lambda: infer_one(runtime, one), budget, budget.latency_calls)
    batch_s = time_calls(lambda: infer_one(runtime, full), budget, budget.throughput_calls)
    return summarize_series(runtime.manifest.runtime, latency_s, batch_s, len(full), threads, size_bytes, load_s,
                            import_s)


def summarize_series(runtime: str, latency_s: list[float], batch_s: list[float], batch: int, threads: int,
                     size_bytes: int, load_s: float, import_s: float) -> ArtefactBenchmark:
    """The two timed series (batch-1 calls, calls at batch) -> the benchmark, wherever they were timed
    (here, or inside a browser page by the browser runner)."""
    latency = summarize(latency_s)
    batch_times = summarize(batch_s)
    sps, ci = throughput(batch, batch_times)
    return ArtefactBenchmark(
        runtime=runtime, threads=threads, size_bytes=size_bytes, load_s=load_s, import_s=import_s,
        latency_ms_p50=1e3 * latency.p50, latency_ms_p99=1e3 * latency.p99, latency_calls=latency.n,
        latency_noise=latency.noise, throughput_batch=batch, throughput_sps=sps,
        throughput_sps_ci=(ci.low, ci.high), throughput_calls=batch_times.n,
    )
