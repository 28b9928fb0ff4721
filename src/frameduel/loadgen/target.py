"""What a load test aims at and with what: its configuration, the target (a model's metadata and how to
connect), one request's outcome, and the inputs sent. Shared by the REST (loadtest.py) and gRPC
(grpc_load.py) clients, which import this and never each other at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from frameduel.errors import FrameduelError
from frameduel.v2.protocol import DATATYPES

MODES = ("closed", "open")


@dataclass(frozen=True)
class LoadTestConfig:
    url: str  # http://HOST:PORT/v2/models/NAME[/versions/V] (a trailing /infer is fine), or grpc://HOST:PORT/NAME...
    concurrency: int = 8  # closed loop: clients; open loop: connections
    duration_s: float = 10.0  # measured period, after warm-up
    warmup_s: float = 1.0
    mode: str = "closed"
    rate: float | None = None  # open loop: mean arrivals per second
    batch: int = 1  # samples per request
    binary: bool = True  # binary-tensor extension (gRPC: raw contents) for inputs and outputs; JSON (typed) if not
    window_s: float = 1.0
    token: str | None = field(default=None, repr=False)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FrameduelError(f"unknown load-test mode '{self.mode}'; choose from: {', '.join(MODES)}")
        if self.mode == "open" and not (self.rate and self.rate > 0):
            raise FrameduelError("the open loop needs --rate, the mean requests per second")
        if self.concurrency < 1 or self.batch < 1 or self.duration_s <= 0 or self.window_s <= 0:
            raise FrameduelError("concurrency and batch must be >= 1, duration and window > 0")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "token"}  # never store the secret


class Connection(Protocol):
    """One client's link to the server, sending the one prepared request again and again."""

    async def send(self) -> str | None:
        """Send the request once; None on success, else the failure's status (see ``errors``)."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    model: str
    metadata: dict[str, Any]  # as the REST model metadata has it
    connect: Callable[[], Connection]  # a new connection (on the running event loop)


@dataclass(frozen=True)
class Outcome:
    end: float  # perf_counter at completion
    latency_s: float
    error: str | None  # None: success


MODEL_URLS = "http://HOST:PORT/v2/models/NAME[/versions/V] or grpc://HOST:PORT/NAME[/versions/V]"


def make_inputs(metadata: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random inputs of the model's shapes, the dynamic (-1) axes set to batch."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in metadata["inputs"]:
        shape = tuple(batch if d == -1 else d for d in spec["shape"])
        dtype = np.dtype(DATATYPES[spec["datatype"]])
        values = rng.standard_normal(shape) if dtype.kind == "f" else rng.integers(0, 2, shape)
        inputs[spec["name"]] = values.astype(dtype)
    return inputs
