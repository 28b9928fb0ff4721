"""Model-server test support: a real ONNX model repository, and a real server on 127.0.0.1 (uvicorn in a
thread, or a `frameduel serve` process when gRPC is wanted too).

The model is an affine map built with onnx.helper (y = x @ W + b, x: (B, 4) float32), so expected
outputs are exact and building it takes milliseconds; versions differ in b, so a test can tell which
version answered.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnx
import uvicorn
from onnx import TensorProto, helper, numpy_helper

from frameduel.export.manifest import Manifest, TensorSpec, write_manifest
from frameduel.serve.app import ServerConfig, create_app
from tests.conftest import cli_command

FEATURES, CLASSES = 4, 3
WEIGHT = np.arange(FEATURES * CLASSES, dtype=np.float32).reshape(FEATURES, CLASSES) / 10


def bias(version: int) -> np.ndarray:
    return np.full(CLASSES, float(version), dtype=np.float32)


def expected(x: np.ndarray, version: int) -> np.ndarray:
    return x @ WEIGHT + bias(version)


def write_affine_model(repo: Path, name: str, version: int, batch_sizes: tuple[int, ...] | None = None,
                       max_batch: int = 64) -> Path:
    """<repo>/<name>/<version>/ with model.onnx and its manifest."""
    directory = repo / name / str(version)
    directory.mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=[numpy_helper.from_array(WEIGHT, "W"), numpy_helper.from_array(bias(version), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, directory / "model.onnx")
    write_manifest(directory, Manifest(
        workload="affine", size="tiny", framework="torch", format="onnx", artefact="model.onnx",
        inputs=(TensorSpec("x", (None, FEATURES), "float32"),), outputs=(TensorSpec("y", (None, CLASSES), "float32"),),
        batch_sizes=batch_sizes, max_batch=max_batch, opset=17,
    ))
    return directory


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running_server(config: ServerConfig) -> Iterator[str]:
    """Serve create_app(config) from a thread on a free port; yields the base URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def infer_json(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}


def client(url: str, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, **kwargs)


@dataclass(frozen=True)
class ServerProcess:
    http: str  # base URL of the REST face
    grpc: str  # HOST:PORT of the gRPC face


def free_port() -> int:
    """A port free now; a server started right after binds it (the short race is harmless on loopback)."""
    with free_socket() as sock:
        return sock.getsockname()[1]


@contextmanager
def serving_process(repository: Path, *options: str) -> Iterator[ServerProcess]:
    """`frameduel serve --grpc-port` in a process of its own, ready; always stopped afterwards."""
    port, grpc_port = free_port(), free_port()
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a pipe nobody reads would block a chatty server
    server = subprocess.Popen(cli_command("serve", "--repository", str(repository), "--port", str(port),
                                          "--grpc-port", str(grpc_port), *options),
                              stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready(f"http://127.0.0.1:{port}"):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                log.seek(0)
                raise RuntimeError(f"the test server did not start: {log.read()[-2000:]}")
            time.sleep(0.1)
        yield ServerProcess(f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")
    finally:
        server.terminate()  # uvicorn stops gracefully on SIGTERM, gRPC with it
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
