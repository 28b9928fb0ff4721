"""A streaming HTTP/1.1 client for OpenAI-compatible servers: one keep-alive connection per load client.

It posts a JSON body and reads the answer as it arrives, chunked or not, splitting it into Server-Sent
Events and stamping each with the time it was read. Written on asyncio streams rather than a general
client: a load generator sharing two cores with the server must spend little per token, or it
measures itself (as loadtest.py's HttpConnection, for the same reason).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

READ_SIZE = 65536


class ProtocolError(Exception):
    """The answer is not HTTP/1.1 as expected; the request counts as failed ("protocol")."""


@dataclass
class Answer:
    status: int  # 0: the connection failed
    body: bytes = b""  # a non-streamed answer (an error's JSON, or a whole completion)


class StreamingConnection:
    """Send one request at a time; hand each SSE event's data to `on_event(data, arrived_at)`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, head: bytes, body: bytes, on_event: Callable[[bytes, float], None]) -> Answer:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**22)
            self.writer.write(head + body)
            return await self.read_answer(on_event)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError,
                ProtocolError):
            self.close()
            return Answer(0)

    async def read_answer(self, on_event: Callable[[bytes, float], None]) -> Answer:
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length, chunked, close, streaming = None, False, False, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close"
            elif name == "content-type":
                streaming = value.startswith("text/event-stream")
        events = EventSplitter(on_event) if streaming and status == 200 else None
        body = await self.read_body(length, chunked, events)
        if close or (length is None and not chunked):
            self.close()
        return Answer(status, b"" if events else body)

    async def read_body(self, length: int | None, chunked: bool, events: EventSplitter | None) -> bytes:
        parts = []
        if chunked:
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                data = await self.reader.readexactly(size)
                await self.reader.readexactly(2)
                parts.append(events.feed(data, time.perf_counter()) if events else data)
            while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                continue
        elif length is not None:
            data = await self.reader.readexactly(length)
            parts.append(events.feed(data, time.perf_counter()) if events else data)
        else:  # no length: the body runs to the end of the connection
            while data := await self.reader.read(READ_SIZE):
                parts.append(events.feed(data, time.perf_counter()) if events else data)
        return b"" if events else b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class EventSplitter:
    """Bytes in, the data of each complete SSE event out (events end with a blank line)."""

    def __init__(self, on_event: Callable[[bytes, float], None]) -> None:
        self.on_event, self.buffer = on_event, b""

    def feed(self, data: bytes, arrived_at: float) -> bytes:
        self.buffer = (self.buffer + data).replace(b"\r\n", b"\n")  # a CR ending one read meets its LF later
        *events, self.buffer = self.buffer.split(b"\n\n")
        for event in events:
            payload = b"\n".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
            if payload:
                self.on_event(payload, arrived_at)
        return b""
