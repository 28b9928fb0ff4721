"""Model server over real HTTP on 127.0.0.1: every KServe v2 endpoint, batching, overload, bad requests."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from frameduel.serve.app import ServerConfig
from frameduel.serve.batcher import BatchingConfig
from frameduel.v2.protocol import HEADER_LENGTH, decode_infer_response, encode_infer_request
from tests.serve_support import client, expected, infer_json, running_server, write_affine_model

FAST = BatchingConfig(max_batch_size=8, max_queue_delay_us=500)


def write_serving(repo: Path, name: str, **settings: object) -> None:
    (repo / name / "serving.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    repo = tmp_path_factory.mktemp("repo")
    write_affine_model(repo, "affine", 1)
    write_affine_model(repo, "affine", 2)  # newest: served by default
    write_affine_model(repo, "fixed", 1, batch_sizes=(1, 4, 8), max_batch=8)  # like a TFLite artefact
    write_affine_model(repo, "split", 1)
    write_serving(repo, "split", max_batch_size=4)
    # A batch that never fills (4 samples of queue, 32 per batch) waits its full delay: a queue that stays full.
    write_affine_model(repo, "slow", 1)
    write_serving(repo, "slow", max_queue_size=4, max_queue_delay_us=1_500_000)
    write_affine_model(repo, "expiring", 1)
    write_serving(repo, "expiring", max_queue_delay_us=1_000_000, timeout_s=0.2)
    with running_server(ServerConfig(repo, batching=FAST, max_body_bytes=2**20)) as base:
        yield base


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called name whose labels include the given ones (Prometheus text format)."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


# -- protocol conformance -----------------------------------------------------------------------------------
def test_health_and_server_metadata(url: str):
    with client(url) as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        server = http.get("/v2").json()
        assert server["name"] == "frameduel" and "binary_tensor_data" in server["extensions"]


def test_model_metadata_and_readiness(url: str):
    with client(url) as http:
        meta = http.get("/v2/models/affine").json()
        assert meta["versions"] == ["2"] and meta["platform"] == "onnxruntime_onnx"
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
        assert meta["parameters"]["framework"] == "torch" and meta["parameters"]["format"] == "onnx"
        assert http.get("/v2/models/affine/versions/2").json()["versions"] == ["2"]
        assert http.get("/v2/models/affine/ready").json() == {"name": "affine", "ready": True}
        assert http.get("/v2/models/affine/versions/2/ready").status_code == 200
        not_loaded = http.get("/v2/models/affine/versions/1/ready")  # on disk, not loaded: false is a 4xx
        assert not_loaded.status_code == 400 and not_loaded.json()["ready"] is False
        index = {(e["name"], e["version"]): e["state"] for e in http.post("/v2/repository/index").json()}
        assert index[("affine", "2")] == "READY" and index[("affine", "1")] == "UNAVAILABLE"


def test_infer_json_matches_the_model(url: str):
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with client(url) as http:
        body = http.post("/v2/models/affine/infer", json={**infer_json(x), "id": "r1"}).json()
        versioned = http.post("/v2/models/affine/versions/2/infer", json=infer_json(x)).json()
    assert body["model_name"] == "affine" and body["model_version"] == "2" and body["id"] == "r1"
    (output,) = body["outputs"]
    assert output["name"] == "y" and output["shape"] == [5, 3] and output["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(output["data"], (5, 3)), expected(x, 2), rtol=1e-5)
    assert versioned["outputs"] == body["outputs"]


def test_infer_binary_extension(url: str):
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    body, headers = encode_infer_request({"x": x}, binary=True, binary_outputs=True)
    with client(url) as http:
        response = http.post("/v2/models/affine/infer", content=body, headers=headers)
    assert response.status_code == 200 and HEADER_LENGTH.lower() in response.headers
    outputs = decode_infer_response(response.content, response.headers[HEADER_LENGTH])
    np.testing.assert_allclose(outputs["y"], expected(x, 2), rtol=1e-5)


def test_large_requests_split_and_fixed_shapes_pad(url: str):
    x = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    with client(url) as http:
        split = http.post("/v2/models/split/infer", json=infer_json(x)).json()  # 10 samples, batches of <= 4
        padded = http.post("/v2/models/fixed/infer", json=infer_json(x[:3])).json()  # 3 -> padded to 4
        text = http.get("/metrics").text
    np.testing.assert_allclose(np.reshape(split["outputs"][0]["data"], (10, 3)), expected(x, 1), rtol=1e-5)
    np.testing.assert_allclose(np.reshape(padded["outputs"][0]["data"], (3, 3)), expected(x[:3], 1), rtol=1e-5)
    assert metric(text, "frameduel_batch_size_count", model="split") == 3  # 4 + 4 + 2
    assert metric(text, "frameduel_batch_padding_samples_total", model="fixed") == 1


def test_concurrent_requests_share_batches(url: str):
    x = np.ones((1, 4), np.float32)
    with client(url) as http:
        before = metric(http.get("/metrics").text, "frameduel_batch_size_count", model="affine")
    statuses = []

    def send() -> None:
        with client(url) as http:
            statuses.append(http.post("/v2/models/affine/infer", json=infer_json(x)).status_code)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with client(url) as http:
        text = http.get("/metrics").text
    assert statuses == [200] * 16
    assert metric(text, "frameduel_batch_size_count", model="affine") - before < 16  # some requests shared a batch
    for phase in ("queue", "compute", "total"):
        assert metric(text, "frameduel_infer_latency_seconds_count", model="affine", version="2", phase=phase) > 0
    assert metric(text, "frameduel_infer_requests_total", model="affine", version="2", code="200") >= 16
    assert "frameduel_queue_depth_samples" in text


# -- overload and deadlines ---------------------------------------------------------------------------------
def test_full_queue_returns_429_and_the_server_stays_healthy(url: str):
    x = np.ones((4, 4), np.float32)
    results: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: results.append(httpx.post(f"{url}/v2/models/slow/infer",
                                                                        json=infer_json(x), timeout=30)))
    waiting.start()
    with client(url) as http:
        for _ in range(200):  # until the first request is queued (it fills the 4-sample queue for 1.5 s)
            if metric(http.get("/metrics").text, "frameduel_queue_depth_samples", model="slow") == 4:
                break
        rejected = http.post("/v2/models/slow/infer", json=infer_json(x[:1]))
        assert rejected.status_code == 429 and "queue full" in rejected.json()["error"]
        assert http.get("/v2/health/ready").status_code == 200
        assert http.get("/v2/health/live").status_code == 200
        waiting.join()
        assert results[0].status_code == 200  # the queued request still completes
        too_big = http.post("/v2/models/slow/infer", json=infer_json(np.ones((5, 4), np.float32)))
        assert too_big.status_code == 413
        assert metric(http.get("/metrics").text, "frameduel_infer_failures_total", model="slow",
                      reason="overloaded") == 1


def test_requests_past_their_deadline_fail_fast(url: str):
    with client(url) as http:
        response = http.post("/v2/models/expiring/infer", json=infer_json(np.ones((1, 4), np.float32)))
    assert response.status_code == 503 and "timed out" in response.json()["error"]


# -- bad requests: always a 4xx JSON error ------------------------------------------------------------------
GOOD = infer_json(np.ones((2, 4), np.float32))
BAD_BODIES = {
    "not json": b"{inputs: oops",
    "not an object": b"[1, 2]",
    "no inputs": b"{}",
    "empty inputs": b'{"inputs": []}',
    "inputs not objects": b'{"inputs": [1]}',
    "wrong name": json.dumps({"inputs": [{**GOOD["inputs"][0], "name": "z"}]}).encode(),
    "wrong datatype": json.dumps({"inputs": [{**GOOD["inputs"][0], "datatype": "FP64"}]}).encode(),
    "unknown datatype": json.dumps({"inputs": [{**GOOD["inputs"][0], "datatype": "BYTES"}]}).encode(),
    "wrong shape": json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [4, 2]}]}).encode(),
    "negative dim": json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [-2, 4]}]}).encode(),
    "zero batch": json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [0, 4], "data": []}]}).encode(),
    "data count": json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [3, 4]}]}).encode(),
    "string data": json.dumps({"inputs": [{**GOOD["inputs"][0], "data": ["a"] * 8}]}).encode(),
    "ragged data": json.dumps({"inputs": [{**GOOD["inputs"][0], "data": [[1, 2], [3]]}]}).encode(),
    "huge claimed shape": json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [10**12, 4]}]}).encode(),
    "duplicate input": json.dumps({"inputs": GOOD["inputs"] * 2}).encode(),
    "unknown output": json.dumps({**GOOD, "outputs": [{"name": "nope"}]}).encode(),
    "deep nesting": b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "too large": b" " * (2**20 + 1),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_bodies_get_4xx_json(url: str, body: bytes):
    with client(url) as http:
        response = http.post("/v2/models/affine/infer", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]


@pytest.mark.parametrize(("length", "extra"), [("abc", b""), ("99999", b""), (None, b"\0" * 8)])
def test_malformed_binary_bodies_get_400(url: str, length: str | None, extra: bytes):
    body, headers = encode_infer_request({"x": np.ones((2, 4), np.float32)}, binary=True)
    headers[HEADER_LENGTH] = length or headers[HEADER_LENGTH]
    with client(url) as http:
        response = http.post("/v2/models/affine/infer", content=body + extra, headers=headers)
    assert response.status_code == 400 and response.json()["error"]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/v2/models/nope/infer", 404),
    ("GET", "/v2/models/nope", 404),
    ("GET", "/v2/models/affine/versions/7", 404),
    ("POST", "/v2/models/affine/versions/one/infer", 400),
    ("GET", "/v2/models/..%2F..%2Fetc/ready", 404),
    ("GET", "/v2/nothing-here", 404),
    ("DELETE", "/v2/models/affine", 405),
])
def test_unknown_models_and_routes_get_4xx_json(url: str, method: str, path: str, status: int):
    with client(url) as http:
        response = http.request(method, path, json=GOOD if method == "POST" else None)
    assert response.status_code == status and response.json()["error"]


# -- versions: load and unload ------------------------------------------------------------------------------
def test_versions_load_new_before_unloading_old(tmp_path: Path):
    write_affine_model(tmp_path, "model", 1)
    x = np.ones((1, 4), np.float32)
    with running_server(ServerConfig(tmp_path, batching=FAST)) as base, client(base) as http:
        def answer(path: str = "/v2/models/model/infer") -> np.ndarray:
            response = http.post(path, json=infer_json(x))
            assert response.status_code == 200, response.text
            return np.reshape(response.json()["outputs"][0]["data"], (1, 3))

        np.testing.assert_allclose(answer(), expected(x, 1), rtol=1e-6)
        write_affine_model(tmp_path, "model", 2)
        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:  # requests during the reload must all succeed
            with client(base) as other:
                while not stop.is_set():
                    statuses.append(other.post("/v2/models/model/infer", json=infer_json(x)).status_code)

        def wait_for_more(count: int) -> None:
            deadline = time.monotonic() + 30
            while len(statuses) <= count and time.monotonic() < deadline:
                time.sleep(0.01)

        thread = threading.Thread(target=hammer)
        thread.start()
        wait_for_more(0)
        loaded = http.post("/v2/repository/models/model/load")
        wait_for_more(len(statuses) + 1)  # and some after the switch
        stop.set()
        thread.join()
        assert loaded.json() == {"name": "model", "versions": ["2"]}
        assert statuses and set(statuses) == {200}
        np.testing.assert_allclose(answer(), expected(x, 2), rtol=1e-6)
        assert http.get("/v2/models/model/versions/1/ready").status_code == 400

        both = http.post("/v2/repository/models/model/load", json={"parameters": {"versions": [1, 2]}})
        assert both.json()["versions"] == ["1", "2"]
        np.testing.assert_allclose(answer("/v2/models/model/versions/1/infer"), expected(x, 1), rtol=1e-6)
        np.testing.assert_allclose(answer(), expected(x, 2), rtol=1e-6)  # default: newest loaded

        assert http.post("/v2/repository/models/model/unload", json={"parameters": {"version": 2}}).json()[
            "versions"] == ["1"]
        np.testing.assert_allclose(answer(), expected(x, 1), rtol=1e-6)
        assert http.post("/v2/repository/models/model/unload").json()["versions"] == []
        assert http.get("/v2/models/model/ready").json()["ready"] is False
        assert http.post("/v2/models/model/infer", json=infer_json(x)).status_code == 404
        assert http.post("/v2/repository/models/model/load", json={"parameters": {"versions": [9]}}).status_code == 404
        assert http.post("/v2/repository/models/model/load", json={"parameters": {"versions": "x"}}).status_code == 400
        assert http.post("/v2/repository/models/nope/load").status_code == 404


def test_broken_artefact_fails_its_load_only(tmp_path: Path):
    write_affine_model(tmp_path, "good", 1)
    broken = write_affine_model(tmp_path, "broken", 1)
    (broken / "model.onnx").write_bytes(b"not onnx")
    with running_server(ServerConfig(tmp_path, batching=FAST)) as base, client(base) as http:
        assert http.get("/v2/health/ready").status_code == 200
        assert http.get("/v2/models/good/ready").status_code == 200
        response = http.post("/v2/repository/models/broken/load")
        assert response.status_code == 400 and "cannot load broken" in response.json()["error"]
        index = {e["name"]: e for e in http.post("/v2/repository/index").json()}
        assert index["broken"]["state"] == "UNAVAILABLE" and "ONNX Runtime" in index["broken"]["reason"]


# -- auth ---------------------------------------------------------------------------------------------------
def test_bearer_token_guards_everything_but_health(tmp_path: Path):
    write_affine_model(tmp_path, "model", 1)
    with running_server(ServerConfig(tmp_path, token="s3cret", batching=FAST)) as base, client(base) as http:
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
            response = http.get("/v2/models/model", headers=headers)
            assert response.status_code in (401, 403) and response.json()["error"]
        assert http.post("/v2/models/model/infer", json=GOOD).status_code in (401, 403)
        good = {"authorization": "Bearer s3cret"}
        assert http.get("/v2/models/model", headers=good).status_code == 200
        assert http.post("/v2/models/model/infer", json=GOOD, headers=good).status_code == 200
        assert http.get("/metrics", headers=good).status_code == 200
