"""A proxy that refuses every request and remembers what was asked: the browser's whole outside traffic.

The browser runner points Chromium at it (loopback, where the artefact server is, bypasses it), so
nothing the page or Chromium itself asks for can leave the machine, and what was asked is on record.
"""

from __future__ import annotations

import re
import socket
import threading


class RecordingProxy:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.requests.append(connection.recv(4096).split(b"\r\n")[0].decode(errors="replace"))
                except OSError:
                    self.requests.append("(unreadable request)")

    @property
    def hosts(self) -> set[str]:
        """Hosts asked for: 'CONNECT host:443 HTTP/1.1' or 'GET http://host/path HTTP/1.1'."""
        return {re.sub(r"^(https?://)?([^/:]+).*$", r"\2", line.split(" ")[1]) if " " in line else line
                for line in self.requests}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> RecordingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
