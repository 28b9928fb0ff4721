"""What the fault scenarios share: the row each one reports, a model server process, its memory, and a watch on
files it must never open.

Every scenario injects a real fault into real processes on 127.0.0.1 and returns a FaultRow: what was injected,
how frameduel detected it, what the user saw, what was lost (must be nothing) and how long until it was whole
again. The tests assert on the rows; benchmarks/faults.py prints them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.serve_support import free_port, ready

ROOT = Path(__file__).resolve().parents[2]  # the repository: where `python -m tests.faults...` finds `tests`


@dataclass
class FaultRow:
    fault: str
    injected: str
    detected_as: str
    result: str  # what the user saw: status codes, the one line
    lost: int  # cells, trials, requests or bytes lost or overwritten: must be 0
    recover_s: float | None  # until whole again (None: nothing went down)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_line(text: str) -> bool:
    """What a command wrote to stderr is a single line, and no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text


# -- a model server in a process of its own ---------------------------------------------------------------
@dataclass
class Server:
    process: subprocess.Popen
    http: str
    grpc: str | None
    log: Any  # the server's stderr, a temporary file

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()


def start_server(repository: Path, grpc: bool = False, **settings: Any) -> Server:
    """run_server(ServerConfig(repository, **settings)) in a new process (tests/faults/server_main.py), ready."""
    port = free_port()
    grpc_port = free_port() if grpc else None
    config = {"repository": str(repository), "port": port, "grpc_port": grpc_port, "threads": 1, **settings}
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, "-m", "tests.faults.server_main", json.dumps(config)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=log, text=True)
    server = Server(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}" if grpc else None, log)
    deadline = time.monotonic() + 120
    while not ready(server.http):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"the test server did not start: {server.stderr()[-2000:]}")
        time.sleep(0.1)
    return server


def stop_server(server: Server, timeout_s: float = 60) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@contextmanager
def running(repository: Path, grpc: bool = False, **settings: Any) -> Iterator[Server]:
    server = start_server(repository, grpc, **settings)
    try:
        yield server
    finally:
        stop_server(server)
        server.log.close()


def metric(server: Server, name: str, token: str | None = None, **labels: str) -> float:
    """Sum of the /metrics samples called name whose labels include the given ones."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"{server.http}/metrics", headers=headers, timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


# -- memory -----------------------------------------------------------------------------------------------
def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field_name} for process {pid}")


def reset_peak_rss(pid: int) -> None:
    """Start the process's peak resident set (VmHWM) over from its current size (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pid: int) -> float:
    return rss_mb(pid, "VmHWM")


# -- files nobody may open --------------------------------------------------------------------------------
IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x1, 0x20, 0x800


class OpenWatch:
    """Every open or read of the files in the given directories (the kernel's inotify), counted from now on."""

    def __init__(self, directories: list[Path]) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.watches = {self.libc.inotify_add_watch(self.fd, str(d).encode(), IN_ACCESS | IN_OPEN): d
                        for d in directories}

    def events(self) -> list[str]:
        """Paths opened or read since the last call (a directory itself as its own path)."""
        found = []
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return found
        offset = 0
        while offset < len(data):
            wd, _, _, length = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode()
            found.append(str(self.watches[wd] / name) if name else str(self.watches[wd]))
            offset += 16 + length
        return found

    def close(self) -> None:
        os.close(self.fd)
