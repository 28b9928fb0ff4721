"""Prometheus metrics of one server, in a registry of its own (two apps in one process never collide).

Label values for ``model`` only ever come from loaded models: a request naming an unknown model is
counted under ``model=""``, so clients cannot grow the label set (and the server's memory) at will.
Request metrics carry ``protocol`` ("rest" or "grpc"); ``code`` is that protocol's status (HTTP status
code, or gRPC status code name such as ``OK`` or ``RESOURCE_EXHAUSTED``).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from frameduel.serve.batcher import BatchStats

CONTENT_TYPE = CONTENT_TYPE_LATEST
PHASES = ("queue", "compute", "total")
# Latency buckets from 100 us to 30 s: CPU batches of small models take ~1 ms, overloaded queues seconds.
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "version")
        request_labels = ("protocol", *labels)
        self.requests = Counter("frameduel_infer_requests", "Infer requests by protocol and outcome (its status code)",
                                (*request_labels, "code"), registry=self.registry)
        self.failures = Counter("frameduel_infer_failures", "Failed infer requests by reason",
                                (*request_labels, "reason"), registry=self.registry)
        self.latency = Histogram("frameduel_infer_latency_seconds", "Infer request latency by phase",
                                 (*request_labels, "phase"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("frameduel_batch_size", "Real samples per executed batch",
                                    labels, buckets=BATCH_BUCKETS, registry=self.registry)
        self.padding = Counter("frameduel_batch_padding_samples", "Padding rows added to reach an allowed batch size",
                               labels, registry=self.registry)
        self.samples = Counter("frameduel_inferred_samples", "Real samples computed", labels, registry=self.registry)
        self.queue_depth = Gauge("frameduel_queue_depth_samples", "Samples waiting in the batch queue",
                                 labels, registry=self.registry)
        # Faults: batches a runtime failed (cause "error") or overstayed compute_timeout_s in ("timeout", after
        # which its compute thread was replaced); refused bearer tokens; connections closed unanswered.
        self.batch_failures = Counter("frameduel_batch_failures", "Batches the runtime failed or did not finish",
                                      (*labels, "cause"), registry=self.registry)
        self.auth_failures = Counter("frameduel_auth_failures", "Requests refused for a missing or wrong bearer "
                                     "token", ("protocol",), registry=self.registry)
        self.connections_refused = Counter("frameduel_connections_refused", "HTTP connections closed without "
                                           "serving a request: too many open, or a request's headers too slow",
                                           ("reason",), registry=self.registry)

    def observe_request(self, protocol: str, model: str, version: str, code: str, reason: str | None = None,
                        phases: dict[str, float] | None = None) -> None:
        self.requests.labels(protocol, model, version, code).inc()
        if reason is not None:
            self.failures.labels(protocol, model, version, reason).inc()
        for phase, seconds in (phases or {}).items():
            self.latency.labels(protocol, model, version, phase).observe(seconds)

    def observe_batch(self, model: str, version: str, stats: BatchStats) -> None:
        self.batch_size.labels(model, version).observe(stats.samples)
        self.samples.labels(model, version).inc(stats.samples)
        if stats.padding:
            self.padding.labels(model, version).inc(stats.padding)

    def observe_batch_failure(self, model: str, version: str, cause: str) -> None:
        self.batch_failures.labels(model, version, cause).inc()

    def set_queue_depth(self, model: str, version: str, samples: int) -> None:
        self.queue_depth.labels(model, version).set(samples)

    def forget(self, model: str, version: str) -> None:
        """Drop the queue-depth series of an unloaded version (counters keep their history)."""
        try:
            self.queue_depth.remove(model, version)
        except KeyError:
            pass

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
