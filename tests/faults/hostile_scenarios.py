"""Hostile input to one model server process: each input is sent, its answer read, and the server's peak resident
memory (VmHWM, reset before each input) recorded; the server must answer every one with a 4xx and a reason, stay
within bounded memory, serve a normal request right after, and open nothing outside its repository.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np

from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2 as pb
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.faults.support import FaultRow, OpenWatch, Server, peak_rss_mb, reset_peak_rss, rss_mb, running
from tests.serve_support import infer_json, write_affine_model

MAX_CONNECTIONS, HEADER_TIMEOUT_S = 200, 2.0
AT_ONCE = 20  # large JSON bodies sent together: more than the server's body budget (256 MB) holds
GB = 2**30
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 8  # (B=2, 4)


def status_line(data: bytes) -> tuple[int | None, str]:
    """(status, the error's text) of a raw HTTP response."""
    if not data.startswith(b"HTTP/1.1 "):
        return None, data[:200].decode(errors="replace")
    status = int(data[9:12])
    _, _, body = data.partition(b"\r\n\r\n")
    try:
        return status, str(json.loads(body).get("error", ""))
    except ValueError:
        return status, body[:200].decode(errors="replace")


def read_response(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < content_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return data


def content_length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def stream_body(server: Server, head: bytes, chunks: Iterator[bytes]) -> tuple[int | None, str, int]:
    """Send head then chunks until the server answers or stops reading; (status, error, body bytes sent)."""
    host, port = server.http.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head)
        sock.settimeout(5.0)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            try:
                sock.sendall(chunk)
            except (OSError, TimeoutError):
                break
            sent += len(chunk)
        status, error = status_line(read_response(sock, 30))
    return status, error, sent


def head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunks_of(total: int, size: int = 2**20, chunked: bool = False) -> Iterator[bytes]:
    block = b"0" * size
    for _ in range(total // size):
        yield (f"{size:x}\r\n".encode() + block + b"\r\n") if chunked else block


def measured(server: Server, send: Callable[[], tuple[int | None, str]]) -> tuple[int | None, str, float, float]:
    """(status, reason, the server's resident MB before, its peak MB while it handled the input). Memory a
    previous input left to the allocator stays resident, so the peak is read against the size before."""
    reset_peak_rss(server.pid)
    before = rss_mb(server.pid)
    status, reason = send()
    time.sleep(0.2)  # let the server finish whatever the answer left running
    return status, reason, before, peak_rss_mb(server.pid)


def grpc_call(server: Server, rpc: str, request: object) -> tuple[str, str]:
    with grpc.insecure_channel(server.grpc, options=[("grpc.max_send_message_length", -1)]) as channel:
        try:
            getattr(pb_grpc.GRPCInferenceServiceStub(channel), rpc)(request, timeout=60)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details()
    return "OK", ""


def http_status(response: httpx.Response) -> tuple[int, str]:
    try:
        return response.status_code, str(response.json().get("error", ""))
    except ValueError:
        return response.status_code, response.text[:200]


# -- the inputs -----------------------------------------------------------------------------------------------
def huge_shapes(server: Server) -> list[tuple[str, Callable[[], tuple[int | None, str]]]]:
    shape = [10**9, 4]
    json_body = {"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    header = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    raw = pb.ModelInferRequest(model_name="affine", raw_input_contents=[X[0].tobytes()])
    raw.inputs.add(name="x", datatype="FP32", shape=shape)
    url = f"{server.http}/v2/models/affine/infer"
    return [
        ("declared shape of 4e9 elements (JSON)", lambda: http_status(httpx.post(url, json=json_body, timeout=60))),
        ("declared shape of 4e9 elements (binary)", lambda: http_status(httpx.post(
            url, content=header + X[0].tobytes(), timeout=60, headers={
                "Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}))),
        ("declared shape of 4e9 elements (gRPC raw)", lambda: grpc_call(server, "ModelInfer", raw)),
    ]


def json_body(numbers: int) -> bytes:
    """An infer body of `numbers` JSON numbers (0.5, 5 bytes each): too many samples for the queue, once parsed."""
    return json.dumps({"inputs": [{"name": "x", "shape": [numbers // 4, 4], "datatype": "FP32",
                                   "data": [0.5] * numbers}]}).encode()


def binary_body(numbers: int) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "x", "shape": [numbers // 4, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": numbers * 4}}]}).encode()
    return header + np.zeros(numbers, np.float32).tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                                              "Content-Type": "application/octet-stream"}


def big_bodies(server: Server) -> list[tuple[str, Callable[[], tuple[int | None, str]]]]:
    path, url = "/v2/models/affine/infer", f"{server.http}/v2/models/affine/infer"
    too_much_json, most_json = json_body(12_000_000), json_body(3_000_000)  # ~57 MB and ~14 MB
    binary, binary_headers = binary_body(15_000_000)  # 60 MB

    def at_once() -> tuple[int | None, str]:
        with ThreadPoolExecutor(AT_ONCE) as pool:
            answers = list(pool.map(lambda _: http_status(httpx.post(url, content=most_json, timeout=300)),
                                    range(AT_ONCE)))
        counts = {code: sum(c == code for c, _ in answers) for code in sorted({c for c, _ in answers})}
        return max(counts), "; ".join(f"{n} x {code}: {next(r for c, r in answers if c == code)[:90]}"
                                      for code, n in counts.items())

    typed = pb.ModelInferRequest(model_name="affine")
    typed.inputs.add(name="x", datatype="FP32", shape=[1_250_000, 4]).contents.fp32_contents.extend(
        np.zeros(5_000_000, np.float32))
    raw = pb.ModelInferRequest(model_name="affine", raw_input_contents=[np.zeros(15_000_000, np.float32).tobytes()])
    raw.inputs.add(name="x", datatype="FP32", shape=[3_750_000, 4])
    return [
        ("1 GB body, Content-Length declared", lambda: stream_body(server, head(path, Content_Length=str(GB)),
                                                                   chunks_of(GB))[:2]),
        ("1 GB body, chunked (no length)", lambda: stream_body(server, head(path, Transfer_Encoding="chunked"),
                                                               chunks_of(GB, chunked=True))[:2]),
        (f"a {len(too_much_json) / 2**20:.0f} MB JSON tensor (12M numbers)", lambda: http_status(
            httpx.post(url, content=too_much_json, timeout=300))),
        (f"a {len(most_json) / 2**20:.0f} MB JSON tensor (3M numbers, under the JSON limit)", lambda: http_status(
            httpx.post(url, content=most_json, timeout=300))),
        (f"{AT_ONCE} such JSON bodies at once ({AT_ONCE * len(most_json) / 2**20:.0f} MB)", at_once),
        (f"a {len(binary) / 2**20:.0f} MB binary tensor (15M numbers, under the body limit)", lambda: http_status(
            httpx.post(url, content=binary, headers=binary_headers, timeout=300))),
        ("gRPC typed contents of 5M numbers", lambda: grpc_call(server, "ModelInfer", typed)),
        ("gRPC raw contents of 15M numbers (60 MB)", lambda: grpc_call(server, "ModelInfer", raw)),
    ]


def nested_json(server: Server) -> list[tuple[str, Callable[[], tuple[int | None, str]]]]:
    url = f"{server.http}/v2/models/affine/infer"
    depth = 200_000
    bare = b"[" * depth + b"]" * depth
    inside = (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ' + b"[" * depth + b"1"
              + b"]" * depth + b"}]}")
    shallow = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                      "data": json.loads("[" * 100 + "1" + "]" * 100)}]}).encode()
    return [
        (f"JSON nested {depth} deep", lambda: http_status(httpx.post(url, content=bare, timeout=60))),
        (f"tensor data nested {depth} deep", lambda: http_status(httpx.post(url, content=inside, timeout=60))),
        ("tensor data nested 100 deep (past numpy's 64 dims)", lambda: http_status(
            httpx.post(url, content=shallow, timeout=60))),
    ]


def slowloris(server: Server, connections: int = MAX_CONNECTIONS + 50) -> tuple[int | None, str, dict]:
    """Open connections that send half a request's headers and then nothing."""
    host, port = server.http.removeprefix("http://").split(":")
    started, socks = time.monotonic(), []
    for _ in range(connections):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"POST /v2/models/affine/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(sock)
    during = http_status(httpx.post(f"{server.http}/v2/models/affine/infer", json=infer_json(X), timeout=30))
    statuses: dict[int | None, int] = {}
    reasons: dict[int | None, str] = {}
    for sock in socks:
        status, reason = status_line(read_response(sock, HEADER_TIMEOUT_S + 30))
        statuses[status] = statuses.get(status, 0) + 1
        reasons.setdefault(status, reason)
        sock.close()
    answered_s = time.monotonic() - started

    def served() -> bool:
        return httpx.post(f"{server.http}/v2/models/affine/infer", json=infer_json(X), timeout=30).status_code == 200

    while not served():
        time.sleep(0.05)
    recover_s = time.monotonic() - started
    summary = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items(), key=str))
    return max((s for s in statuses if s), default=None), f"{summary}: " + "; ".join(
        f"{status} '{reason}'" for status, reason in reasons.items()), {
        "statuses": statuses, "during": during, "answered_s": answered_s, "recover_s": recover_s}


def outside_names(server: Server) -> list[tuple[str, Callable[[], tuple[int | None, str]]]]:
    http = server.http
    calls = {
        "GET /v2/models/%2E%2E/ready": lambda: httpx.get(f"{http}/v2/models/%2E%2E/ready", timeout=30),
        "GET /v2/models/..%2Foutside/ready": lambda: httpx.get(f"{http}/v2/models/..%2Foutside/ready", timeout=30),
        "POST /v2/models/%2E%2E%2Foutside/infer": lambda: httpx.post(
            f"{http}/v2/models/%2E%2E%2Foutside/infer", json=infer_json(X), timeout=30),
        "POST /v2/models/outside%00/infer": lambda: httpx.post(f"{http}/v2/models/outside%00/infer",
                                                              json=infer_json(X), timeout=30),
        "GET /v2/models/affine/versions/%2E%2E/ready": lambda: httpx.get(
            f"{http}/v2/models/affine/versions/%2E%2E/ready", timeout=30),
    }
    rows = [(f"model name {name}", lambda call=call: http_status(call())) for name, call in calls.items()]
    for rpc, request in (("ModelMetadata", pb.ModelMetadataRequest(name="../outside")),
                         ("ModelReady", pb.ModelReadyRequest(name="../../outside")),
                         ("ModelInfer", pb.ModelInferRequest(model_name="../outside"))):
        rows.append((f"model name ../outside (gRPC {rpc})", lambda rpc=rpc, request=request: grpc_call(
            server, rpc, request)))
    return rows


def outside_loads(server: Server, outside: Path) -> list[tuple[str, Callable[[], tuple[int | None, str]]]]:
    http = server.http
    calls = {
        "POST /v2/repository/models/%2E%2E/load": lambda: httpx.post(f"{http}/v2/repository/models/%2E%2E/load",
                                                                     timeout=30),
        "POST /v2/repository/models/..%2Foutside/load": lambda: httpx.post(
            f"{http}/v2/repository/models/..%2Foutside/load", timeout=30),
        "load affine with versions ['../outside/1']": lambda: httpx.post(
            f"{http}/v2/repository/models/affine/load", json={"parameters": {"versions": ["../outside/1"]}},
            timeout=30),
        "load affine with a file: parameter (Triton's upload)": lambda: httpx.post(
            f"{http}/v2/repository/models/affine/load",
            json={"parameters": {"file:1/model.onnx": str(outside / "1" / "model.onnx")}}, timeout=30),
    }
    rows = [(f"repository load {name}", lambda call=call: http_status(call())) for name, call in calls.items()]
    for name in ("../outside", str(outside)):
        rows.append((f"repository load {name} (gRPC)", lambda name=name: grpc_call(
            server, "RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name=name))))
    return rows


def hostile_inputs(tmp: Path) -> list[FaultRow]:
    repo, outside = tmp / "repo", tmp / "outside"
    write_affine_model(repo, "affine", 1)
    write_affine_model(tmp, "outside", 1)  # a valid model beside the repository: never to be opened
    rows: list[FaultRow] = []
    with running(repo, grpc=True, connections={"max_connections": MAX_CONNECTIONS,
                                               "header_timeout_s": HEADER_TIMEOUT_S}) as server:
        baseline = rss_mb(server.pid)
        watch = OpenWatch([tmp, outside, outside / "1"])
        groups = [("shape", huge_shapes(server)), ("body", big_bodies(server)), ("nesting", nested_json(server)),
                  ("name", outside_names(server)), ("load", outside_loads(server, outside))]
        for group, inputs in groups:
            for name, send in inputs:
                status, reason, before, peak = measured(server, send)
                after = httpx.post(f"{server.http}/v2/models/affine/infer", json=infer_json(X), timeout=30)
                opened = [path for path in watch.events() if not path.startswith(str(repo))]
                rows.append(FaultRow(f"hostile: {name}", name, group, f"{status} '{reason[:160]}'",
                                     len(opened) + (after.status_code != 200), None,
                                     {"status": status, "reason": reason, "peak_rss_mb": peak,
                                      "rss_before_mb": before, "baseline_rss_mb": baseline, "opened_outside": opened,
                                      "after": after.status_code}))
        reset_peak_rss(server.pid)
        before = rss_mb(server.pid)
        status, reason, details = slowloris(server)
        peak = peak_rss_mb(server.pid)
        rows.append(FaultRow(f"hostile: slowloris, {MAX_CONNECTIONS + 50} idle connections",
                             f"{MAX_CONNECTIONS + 50} connections sending half their headers, limit {MAX_CONNECTIONS}, "
                             f"header timeout {HEADER_TIMEOUT_S:g} s", "connections", reason,
                             0, details["recover_s"], {**details, "status": status, "reason": reason,
                                                       "peak_rss_mb": peak, "rss_before_mb": before,
                                                       "baseline_rss_mb": baseline}))
        watch.close()
    return rows
