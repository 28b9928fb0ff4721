"""Prometheus metrics of the LLM server, in a registry of its own; the engine reports to it as its Observer.

Server-side figures: time to first token counts from the request's arrival at the engine (after its
body was read and tokenized) to its first token; the inter-token latency is the gap between two
tokens of one sequence. A load generator's figures (loadgen/llm_load.py) add the network and the
streaming of the text on top.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from frameduel.llm.scheduler import Sequence

CONTENT_TYPE = CONTENT_TYPE_LATEST
TOKEN_BUCKETS = (5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SHARE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class LLMMetrics:
    def __init__(self, slots: int) -> None:
        self.slots, self.holding = slots, 0  # holding: sequences in a slot now, for the occupancy per step
        r = self.registry = CollectorRegistry()
        self.requests = Counter("frameduel_llm_requests", "Requests by endpoint and status code",
                                ("endpoint", "code"), registry=r)
        self.ttft = Histogram("frameduel_llm_time_to_first_token_seconds", "Arrival at the engine to first token",
                              buckets=TOKEN_BUCKETS, registry=r)
        self.itl = Histogram("frameduel_llm_inter_token_latency_seconds", "Gap between two tokens of a sequence",
                             buckets=TOKEN_BUCKETS, registry=r)
        self.latency = Histogram("frameduel_llm_request_latency_seconds", "Arrival to the last token",
                                 buckets=REQUEST_BUCKETS, registry=r)
        self.prompt_tokens = Counter("frameduel_llm_prompt_tokens", "Prompt tokens of finished requests", registry=r)
        self.generated = Counter("frameduel_llm_generation_tokens", "Tokens generated", registry=r)
        self.finished = Counter("frameduel_llm_finished_requests", "Requests the engine finished, by reason",
                                ("reason",), registry=r)
        self.waiting = Gauge("frameduel_llm_waiting_requests", "Requests queued for a KV-cache slot", registry=r)
        self.running = Gauge("frameduel_llm_running_requests", "Requests holding a KV-cache slot", registry=r)
        self.occupancy = Histogram("frameduel_llm_batch_occupancy", "Share of the KV-cache slots running, per step",
                                   buckets=SHARE_BUCKETS, registry=r)
        self.step_tokens = Histogram("frameduel_llm_step_tokens", "Tokens (rows) per step: decode and prefill",
                                     buckets=ROW_BUCKETS, registry=r)
        self.step_seconds = Histogram("frameduel_llm_step_seconds", "Model time per step", buckets=TOKEN_BUCKETS,
                                      registry=r)
        self.kv_slots = Gauge("frameduel_llm_kv_cache_slots", "KV-cache slots (sequences at once)", registry=r)
        self.kv_bytes = Gauge("frameduel_llm_kv_cache_bytes", "KV-cache memory, preallocated", registry=r)
        self.kv_slots.set(slots)

    # -- the engine's Observer ---------------------------------------------------------------------------
    def on_step(self, rows: int, seconds: float) -> None:
        self.occupancy.observe(self.holding / self.slots)
        self.step_tokens.observe(rows)
        self.step_seconds.observe(seconds)

    def on_occupancy(self, running: int, waiting: int) -> None:
        self.holding = running
        self.running.set(running)
        self.waiting.set(waiting)

    def on_token(self, first: bool, gap: float) -> None:
        (self.ttft if first else self.itl).observe(gap)
        self.generated.inc()

    def on_finish(self, sequence: Sequence, now: float) -> None:
        self.finished.labels(sequence.finish_reason).inc()
        self.prompt_tokens.inc(len(sequence.prompt))
        if sequence.finish_reason in ("stop", "length"):
            self.latency.observe(now - sequence.arrival)

    # -- the serving face --------------------------------------------------------------------------------
    def count(self, endpoint: str, code: int) -> None:
        self.requests.labels(endpoint, str(code)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
