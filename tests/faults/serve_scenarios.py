"""Faults in a served model: a runtime that raises or hangs, models that fail to load or vanish, SIGTERM under
load, and a token. Each scenario runs its own server process (tests/faults/server_main.py) on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

from frameduel.serve.service import token_matches
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2 as pb
from frameduel.v2.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import wait_for
from tests.faults.runtimes import HANG, HANG_S, RAISE
from tests.faults.support import FaultRow, Server, metric, running, start_server
from tests.serve_support import expected, infer_json, write_affine_model

FAULTY = "tests.faults.runtimes:FaultyRuntime"
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 8  # (B=2, 4)


def write_serving(repo: Path, name: str, **settings: Any) -> None:
    (repo / name / "serving.json").write_text(json.dumps(settings))


def poisoned(value: float) -> np.ndarray:
    x = X.copy()
    x[0, 0] = value  # the fault the runtime is asked for (tests/faults/runtimes.py)
    return x


def post(server: Server, model: str, x: np.ndarray, timeout: float = 60, **headers: str) -> httpx.Response:
    """One infer call on a connection of its own."""
    return httpx.post(f"{server.http}/v2/models/{model}/infer", json=infer_json(x), headers=headers, timeout=timeout)


def answered_right(response: httpx.Response, x: np.ndarray, version: int = 1) -> bool:
    if response.status_code != 200:
        return False
    y = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(-1, 3)
    return bool(np.allclose(y, expected(x, version), atol=1e-5))


def grpc_infer(server: Server, model: str, x: np.ndarray, token: str | None = None,
               timeout: float = 60) -> tuple[str, str]:
    """(status code name, details) of one ModelInfer with raw contents."""
    request = pb.ModelInferRequest(model_name=model, raw_input_contents=[x.tobytes()])
    request.inputs.add(name="x", datatype="FP32", shape=x.shape)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(server.grpc) as channel:
        try:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details()
    return "OK", ""


def error_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return response.text


# -- a runtime that raises mid-batch -----------------------------------------------------------------------
def runtime_raises(tmp: Path) -> FaultRow:
    repo = tmp / "repo"
    write_affine_model(repo, "faulty", 1)
    # A 300 ms window: the four requests sent at once share one batch however busy the machine is.
    write_serving(repo, "faulty", runtime=FAULTY, max_queue_delay_us=300_000, max_batch_size=16)
    with running(repo, grpc=True) as server:
        inputs = [X, X, poisoned(RAISE), X]
        with ThreadPoolExecutor(len(inputs)) as pool:
            batch = list(pool.map(lambda x: post(server, "faulty", x), inputs))
        failed_at = time.monotonic()
        after = post(server, "faulty", X)
        recover_s = time.monotonic() - failed_at
        grpc_code, grpc_details = grpc_infer(server, "faulty", poisoned(RAISE))
        grpc_after, _ = grpc_infer(server, "faulty", X)
        counted = metric(server, "frameduel_batch_failures_total", cause="error")
        failures = metric(server, "frameduel_infer_failures_total", reason="compute_error")
    errors = [error_of(r) for r in batch]
    unanswered = sum(r.status_code not in (200, 500) for r in batch) + (not answered_right(after, X))
    return FaultRow(
        "runtime raises mid-batch", "1 of 4 requests batched together asks the runtime to raise (2-line error)",
        "the runtime's exception, once per batch", f"{[r.status_code for r in batch]} each with the cause in one line; "
        f"gRPC {grpc_code}; the next batch {after.status_code} (gRPC {grpc_after}); "
        f"frameduel_batch_failures{{cause=error}} {counted:g}", unanswered, recover_s,
        {"statuses": [r.status_code for r in batch], "errors": errors, "after": after.status_code,
         "grpc": (grpc_code, grpc_details), "grpc_after": grpc_after, "batch_failures": counted,
         "request_failures": failures})


# -- a runtime that hangs -----------------------------------------------------------------------------------
def runtime_hangs(tmp: Path, deadline_s: float = 1.0) -> FaultRow:
    repo = tmp / "repo"
    write_affine_model(repo, "faulty", 1)
    write_affine_model(repo, "affine", 1)
    write_serving(repo, "faulty", runtime=FAULTY, max_queue_delay_us=300_000, max_batch_size=16,
                  compute_timeout_s=deadline_s)
    with running(repo, grpc=True) as server:
        for _ in range(20):  # 16 quick batches: the next ones are waited for on the event loop ("inline")
            assert post(server, "faulty", X).status_code == 200
        live_latencies: list[float] = []
        stop = threading.Event()

        def probe_liveness() -> None:
            while not stop.is_set():
                started = time.monotonic()
                httpx.get(f"{server.http}/v2/health/live", timeout=30)
                live_latencies.append(time.monotonic() - started)
                time.sleep(0.02)

        prober = threading.Thread(target=probe_liveness)
        prober.start()
        hung_at = time.monotonic()
        with ThreadPoolExecutor(3) as pool:  # the hang and two requests batched with it
            batch = list(pool.map(lambda x: post(server, "faulty", x), [poisoned(HANG), X, X]))
        answered_in = time.monotonic() - hung_at
        after = post(server, "faulty", X)
        recover_s = time.monotonic() - hung_at
        other = post(server, "affine", X)
        stop.set()
        prober.join()
        grpc_code, grpc_details = grpc_infer(server, "faulty", poisoned(HANG))
        replaced = metric(server, "frameduel_batch_failures_total", cause="timeout")
        ready = httpx.get(f"{server.http}/v2/models/faulty/ready", timeout=30).status_code
    unanswered = sum(r.status_code not in (200, 504) for r in batch) + (not answered_right(after, X))
    return FaultRow(
        "runtime hangs", f"the runtime sleeps {HANG_S:g} s on a batch (compute_timeout_s {deadline_s:g})",
        f"compute_timeout_s passed: the batch's requests failed, its compute thread replaced ({replaced:g} so far)",
        f"{[r.status_code for r in batch]} after {answered_in:.1f} s; gRPC {grpc_code}; next request "
        f"{after.status_code}; event loop stalled at most {max(live_latencies) * 1000:.0f} ms",
        unanswered, recover_s,
        {"statuses": [r.status_code for r in batch], "errors": [error_of(r) for r in batch], "after": after.status_code,
         "other_model": other.status_code, "grpc": (grpc_code, grpc_details), "replaced": replaced,
         "answered_in": answered_in, "live_max_s": max(live_latencies), "ready": ready})


# -- models that fail to load, or vanish while served ---------------------------------------------------------
def load_failures(tmp: Path) -> FaultRow:
    repo = tmp / "repo"
    write_affine_model(repo, "affine", 1)
    write_affine_model(repo, "doomed", 1)
    (write_affine_model(repo, "broken", 1) / "model.onnx").write_bytes(b"\x00 not an onnx model " * 100)
    write_affine_model(repo, "crashy", 1)
    write_serving(repo, "crashy", runtime="tests.faults.runtimes:BrokenAtLoad")
    with running(repo) as server:
        http = httpx.Client(base_url=server.http, timeout=30)
        server_ready = http.get("/v2/health/ready").status_code
        not_ready = {name: http.get(f"/v2/models/{name}/ready").status_code for name in ("broken", "crashy")}
        reasons = {e["name"]: e.get("reason", "") for e in http.post("/v2/repository/index").json()}
        reload = http.post("/v2/repository/models/broken/load")
        outcomes: list[tuple[str, int]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.http, timeout=30) as client:
                while not stop.is_set():
                    for name in ("affine", "doomed"):
                        response = client.post(f"/v2/models/{name}/infer", json=infer_json(X))
                        outcomes.append((name, response.status_code))

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.5)
        shutil.rmtree(repo / "doomed")  # deleted while it is served
        time.sleep(1.0)
        stop.set()
        worker.join()
        deleted_ready = http.get("/v2/models/doomed/ready").status_code
        deleted_entry = next(e for e in http.post("/v2/repository/index").json() if e["name"] == "doomed")
        unload = http.post("/v2/repository/models/doomed/unload").status_code
        gone = (http.get("/v2/models/doomed/ready").status_code,
                http.post("/v2/models/doomed/infer", json=infer_json(X)).status_code)
        affine_after = http.post("/v2/models/affine/infer", json=infer_json(X)).status_code
        http.close()
    failed = [outcome for outcome in outcomes if outcome[1] != 200]
    return FaultRow(
        "model fails to load / deleted while served",
        "a garbage model.onnx, a runtime raising ValueError at load; a served model's directory deleted under load",
        "load errors caught per model (load_failed); the index's state and reason",
        f"server ready {server_ready}; broken models ready {sorted(not_ready.values())} (false), load "
        f"{reload.status_code}; {len(outcomes) - len(failed)}/{len(outcomes)} requests 200 across the deletion; "
        f"deleted model served from memory (ready {deleted_ready}) until unloaded ({unload}), then {gone}",
        len(failed), None,
        {"server_ready": server_ready, "not_ready": not_ready, "reasons": reasons, "reload": reload.status_code,
         "reload_error": error_of(reload), "failed": failed, "requests": len(outcomes),
         "deleted_ready": deleted_ready, "deleted_entry": deleted_entry, "unload": unload, "gone": gone,
         "affine_after": affine_after})


# -- SIGTERM under load ---------------------------------------------------------------------------------------
def _sigterm_under_load(tmp: Path, server: Server, clients: int, drain_timeout_s: float) -> FaultRow:
    calls: list[tuple[float, float, str]] = []  # (sent, answered, outcome)
    lock = threading.Lock()

    def client() -> None:
        # A connection per call (no keep-alive), so no call can meet a kept-alive connection closed under it.
        http = httpx.Client(base_url=server.http, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))
        while True:
            sent = time.monotonic()
            try:
                response = http.post("/v2/models/affine/infer", json=infer_json(X))
                if answered_right(response, X):
                    outcome = "200"
                elif response.status_code == 503 and "shutting down" in error_of(response):
                    outcome = "503"
                else:
                    outcome = f"wrong: {response.status_code} {error_of(response)[:100]}"
            except httpx.ConnectError:
                outcome = "refused"  # no listener: the server never saw it
            except httpx.HTTPError as exc:
                outcome = f"lost: {type(exc).__name__}"
            with lock:
                calls.append((sent, time.monotonic(), outcome))
            if outcome != "200":
                http.close()
                return

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(calls) >= 2 * clients, timeout=120)  # every client under way
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    returncode = server.process.wait(timeout=drain_timeout_s + 60)
    drained_s = time.monotonic() - signalled
    for thread in threads:
        thread.join(timeout=60)
    log = server.stderr()
    server.log.close()
    # Which calls the server had admitted when the signal came, only it knows: a 503 says it refused one at the door
    # (before any work), a 200 answered after the signal was one it had admitted; anything else is a lost call.
    finished_after = [c for c in calls if c[0] < signalled < c[1] and c[2] == "200"]
    refused = [c for c in calls if c[2] == "503"]
    lost = [c for c in calls if c[2] not in ("200", "503", "refused")]
    return FaultRow(
        "SIGTERM under load", f"SIGTERM to the server with {clients} clients in a closed loop (300 ms batch window)",
        "the signal: readiness false, new infer calls 503, admitted ones finish (drain)",
        f"{len(finished_after)} calls in flight at SIGTERM answered 200; {len(refused)} new ones 503 'shutting "
        f"down'; exit {returncode} {drained_s:.1f} s after the signal (limit {drain_timeout_s:g} s)",
        len(lost), drained_s,
        {"returncode": returncode, "finished_after": len(finished_after), "refused_503": len(refused),
         "server_in_flight": int(re.search(r"draining (\d+) request", log).group(1)) if "draining" in log else None,
         "connection_refused": sum(c[2] == "refused" for c in calls), "lost": lost, "calls": len(calls),
         "log": log[-1000:]})


# -- a token -------------------------------------------------------------------------------------------------
TOKEN = "s3cret-token"
ROUTES = [("GET", "/v2/health/live"), ("GET", "/v2/health/ready"), ("GET", "/v2"), ("GET", "/v2/models/affine"),
          ("GET", "/v2/models/affine/versions/1"), ("GET", "/v2/models/affine/ready"),
          ("POST", "/v2/models/affine/infer"), ("POST", "/v2/repository/index"),
          ("POST", "/v2/repository/models/affine/load"), ("POST", "/v2/repository/models/affine/unload"),
          ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs")]


def token_timing(blocks: int = 400, calls: int = 500) -> float:
    """Median time of a wrong token differing in its last byte over one differing in its first (1.0: constant),
    timed in interleaved blocks, the order swapped every block, so that load from other processes hits both."""
    token = "t" * 64
    wrong = {"first": "x" + token[1:], "last": token[:-1] + "x"}
    times: dict[str, list[float]] = {"first": [], "last": []}
    for block in range(blocks):
        for name in ("first", "last") if block % 2 else ("last", "first"):
            started = time.perf_counter()
            for _ in range(calls):
                token_matches(wrong[name], token)
            times[name].append(time.perf_counter() - started)
    return float(np.median(times["last"]) / np.median(times["first"]))


def auth_faults(tmp: Path) -> FaultRow:
    repo = tmp / "repo"
    write_affine_model(repo, "affine", 1)
    with running(repo, grpc=True, token=TOKEN) as server:
        open_routes, answers = [], {}
        for method, path in ROUTES:
            body = {"json": infer_json(X)} if path.endswith("/infer") else {}
            for name, headers in (("none", {}), ("wrong", {"Authorization": "Bearer nope"})):
                status = httpx.request(method, f"{server.http}{path}", headers=headers, timeout=30, **body).status_code
                answers[(path, name)] = status
                if name == "none" and status not in (401, 404):  # 404: no such route (/docs is off with a token)
                    open_routes.append(f"{path} ({status})")
        right = post(server, "affine", X, Authorization=f"Bearer {TOKEN}")
        grpc_answers = {}
        with grpc.insecure_channel(server.grpc) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for rpc, request in (("ServerLive", pb.ServerLiveRequest()), ("ServerReady", pb.ServerReadyRequest()),
                                 ("ServerMetadata", pb.ServerMetadataRequest()),
                                 ("ModelReady", pb.ModelReadyRequest(name="affine"))):
                try:
                    getattr(stub, rpc)(request, timeout=30)
                    grpc_answers[rpc] = "OK"
                except grpc.RpcError as exc:
                    grpc_answers[rpc] = exc.code().name
        grpc_answers["ModelInfer"] = grpc_infer(server, "affine", X, token="nope")[0]
        counted = {protocol: metric(server, "frameduel_auth_failures_total", token=TOKEN, protocol=protocol)
                   for protocol in ("rest", "grpc")}
    refused = sum(status == 401 for status in answers.values())
    ratio = token_timing()
    grpc_open = [rpc for rpc, code in grpc_answers.items() if code == "OK"]
    return FaultRow(
        "auth", f"every route without a token and with a wrong one ({len(answers)} REST calls, 5 gRPC)",
        f"hmac.compare_digest: a wrong last byte takes {ratio:.2f}x a wrong first byte",
        f"{refused} x 401, gRPC UNAUTHENTICATED; open without a token: {', '.join(open_routes)}, "
        f"{', '.join(grpc_open)}; counted rest {counted['rest']:g}, grpc {counted['grpc']:g}; right token "
        f"{right.status_code}", 0, None,
        {"answers": {f"{path} {name}": status for (path, name), status in answers.items()}, "open": open_routes,
         "grpc": grpc_answers, "counted": counted, "right": right.status_code, "timing_ratio": ratio,
         "refused": refused})



def sigterm_under_load(tmp: Path, clients: int = 16, drain_timeout_s: float = 30.0) -> FaultRow:
    repo = tmp / "repo"
    write_affine_model(repo, "affine", 1)
    write_serving(repo, "affine", max_queue_delay_us=300_000, max_batch_size=64)  # requests wait in the queue
    server = start_server(repo, drain_timeout_s=drain_timeout_s)
    try:
        return _sigterm_under_load(tmp, server, clients, drain_timeout_s)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
