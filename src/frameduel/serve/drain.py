"""Graceful shutdown: on SIGTERM (or Ctrl-C) the server drains before it stops.

uvicorn on its own stops listening at the first signal and then waits for the requests in progress, so a
request sent a moment later finds no listener, and one sent on a kept-alive connection can meet a connection
closed under it; neither is told why. Draining instead:

1. the service stops admitting infer calls: each new one gets 503 (gRPC UNAVAILABLE) "the server is shutting
   down", and readiness turns false so a load balancer sends no more;
2. every call admitted before keeps its place in its batch and is answered;
3. once none is in flight and none was admitted for QUIET_S (clients that were answered 503 have stopped),
   or drain_timeout_s after the signal, uvicorn's own graceful shutdown runs: listeners close, idle
   connections close, the batchers finish their queues, gRPC stops with its grace period.

A second signal stops at once, as uvicorn does.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from frameduel.serve.service import ModelService

log = logging.getLogger("frameduel.serve")
QUIET_S = 0.5  # no call in flight and none admitted for this long: the drain is over


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: ModelService, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.service = service
        self.drain_timeout_s = drain_timeout_s
        self.drain_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_started is not None or self.should_exit:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self.drain_started = time.monotonic()
        self.service.begin_drain()
        log.warning("%s: draining %d request(s) in flight, refusing new ones with 503 (at most %g s)",
                    signal.Signals(sig).name, self.service.in_flight, self.drain_timeout_s)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_started is not None and not self.should_exit:
            now = time.monotonic()
            quiet = now - max(self.drain_started, self.service.last_admitted) >= QUIET_S
            if (self.service.in_flight == 0 and quiet) or now - self.drain_started >= self.drain_timeout_s:
                log.warning("drained in %.1f s (%d request(s) still in flight)", now - self.drain_started,
                            self.service.in_flight)
                self.should_exit = True
        return await super().on_tick(counter)
