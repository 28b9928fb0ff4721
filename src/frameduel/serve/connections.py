"""HTTP connections that hold the server without asking anything of it (slowloris) are closed with a reason.

uvicorn starts its keep-alive timer only after a response, so a connection that is opened and then sends
nothing, or its request headers a byte at a time, is held open forever; enough of them take every socket the
process may open. This protocol (uvicorn's httptools one, plus two guards) answers such connections itself:

* headers not complete within ``header_timeout_s`` of the connection, or of the first byte of its next request:
  408 "request headers not received within N s", and the connection closes;
* more than ``max_connections`` open at once: the newest gets 429 "too many open connections" at once, and
  closes. Memory stays bounded by that count.

A body that trickles in is bounded by the app (app.read_body, ``body_timeout_s``: 408).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from frameduel.serve.metrics import ServerMetrics


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000  # open HTTP connections; more are answered 429 and closed
    header_timeout_s: float = 10.0  # a request's headers must arrive within this; else 408 and closed


def refuse(transport: asyncio.Transport, status: str, message: str) -> None:
    """Answer a connection's pending or future request with one JSON error, then close it."""
    if transport.is_closing():
        return
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode()
    transport.write(head + body)
    transport.close()


def guarded_protocol(limits: ConnectionLimits, metrics: ServerMetrics) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the two guards, for uvicorn.Config(http=...)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # only a served app needs uvicorn

    class GuardedHttpProtocol(HttpToolsProtocol):
        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # the transport uvicorn passes; typed as uvicorn does
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                metrics.connections_refused.labels("too_many").inc()
                refuse(transport, "429 Too Many Requests", f"too many open connections (the limit is "
                       f"{limits.max_connections}); close idle ones, or retry later")
                return
            self.arm_header_timer()

        def on_message_begin(self) -> None:  # the first byte of a request on a kept-alive connection
            super().on_message_begin()
            self.arm_header_timer()

        def on_headers_complete(self) -> None:
            self.disarm_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm_header_timer()
            super().connection_lost(exc)

        def arm_header_timer(self) -> None:
            if self.header_timer is None:
                self.header_timer = self.loop.call_later(limits.header_timeout_s, self.headers_too_slow)

        def disarm_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def headers_too_slow(self) -> None:
            self.header_timer = None
            metrics.connections_refused.labels("headers_too_slow").inc()
            refuse(self.transport, "408 Request Timeout", f"request headers not received within "
                   f"{limits.header_timeout_s:g} s; send the whole request at once")

    return GuardedHttpProtocol
