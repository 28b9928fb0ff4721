"""The model server driven by Triton's own clients (tritonclient.grpc and tritonclient.http), and loadtest over gRPC.

One `frameduel serve --grpc-port` process serves both faces from one repository, with a bearer token, so
every call below passes it; each call the clients offer that the server supports is made at least once,
and client errors are checked by their status code.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from frameduel.errors import FrameduelError
from frameduel.loadgen.loadtest import LoadTestConfig, run_loadtest
from tests.conftest import run_cli, wait_for
from tests.serve_support import ServerProcess, expected, serving_process, write_affine_model
from tests.tools import require_module

tritonclient_grpc = require_module("tritonclient.grpc")  # the [dev] extra
tritonclient_http = require_module("tritonclient.http")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402  (Triton's own messages and stub)
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "s3cret"
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 8  # (B=2, 4)


def auth() -> dict[str, str]:
    """A new dict per call: tritonclient.http adds its Inference-Header-Content-Length to the dict it is given."""
    return {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    repo = tmp_path_factory.mktemp("repo")
    write_affine_model(repo, "affine", 1)
    write_affine_model(repo, "affine", 2)  # newest: served by default
    write_affine_model(repo, "spare", 1)  # loaded and unloaded by the repository tests
    write_affine_model(repo, "spare", 2)
    # A batch that never fills (4 samples of queue, 32 per batch) waits its full delay: a queue that stays full.
    write_affine_model(repo, "slow", 1)
    (repo / "slow" / "serving.json").write_text(json.dumps({"max_queue_size": 4, "max_queue_delay_us": 1_500_000}))
    with serving_process(repo, "--token", TOKEN, "--threads", "1", "--max-queue-delay-us", "500") as process:
        yield process


@pytest.fixture(scope="module")
def grpc_client(server: ServerProcess):
    client = tritonclient_grpc.InferenceServerClient(server.grpc)
    yield client
    client.close()


@pytest.fixture(scope="module")
def http_client(server: ServerProcess):
    client = tritonclient_http.InferenceServerClient(server.http.removeprefix("http://"))
    yield client
    client.close()


def grpc_status(call, *args, **kwargs) -> str:
    """The gRPC status name a failing tritonclient.grpc call got (never UNKNOWN or INTERNAL for client errors)."""
    with pytest.raises(InferenceServerException) as error:
        call(*args, **kwargs)
    return error.value.status().removeprefix("StatusCode.")


def grpc_input(array: np.ndarray, datatype: str = "FP32", name: str = "x"):
    tensor = tritonclient_grpc.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)  # raw_input_contents
    return tensor


def http_input(array: np.ndarray, binary: bool):
    tensor = tritonclient_http.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


# -- tritonclient.grpc ---------------------------------------------------------------------------------------
def test_grpc_health_and_metadata(grpc_client):
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()  # health needs no token
    server = grpc_client.get_server_metadata(headers=auth(), as_json=True)
    assert server["name"] == "frameduel" and "model_repository" in server["extensions"]
    meta = grpc_client.get_model_metadata("affine", headers=auth(), as_json=True)
    assert meta["versions"] == ["2"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]  # int64 as JSON strings
    assert grpc_client.get_model_metadata("affine", "2", headers=auth()).versions == ["2"]
    assert grpc_client.is_model_ready("affine", headers=auth())
    assert not grpc_client.is_model_ready("affine", "1", headers=auth())  # on disk, not loaded


def test_grpc_infer_raw_contents(grpc_client):
    result = grpc_client.infer("affine", [grpc_input(X)], request_id="r1", headers=auth(),
                               outputs=[tritonclient_grpc.InferRequestedOutput("y")])
    np.testing.assert_allclose(result.as_numpy("y"), expected(X, 2), rtol=1e-6)
    response = result.get_response()
    assert response.model_version == "2" and response.id == "r1" and len(response.raw_output_contents) == 1
    versioned = grpc_client.infer("affine", [grpc_input(X[:1])], model_version="2", headers=auth())
    np.testing.assert_allclose(versioned.as_numpy("y"), expected(X[:1], 2), rtol=1e-6)


def test_grpc_typed_contents_with_tritons_own_messages(server: ServerProcess):
    """Triton's generated messages parse here: typed contents in, typed contents out."""
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="affine")
        request.inputs.add(name="x", datatype="FP32", shape=[2, 4]).contents.fp32_contents.extend(X.ravel().tolist())
        response = stub.ModelInfer(request, metadata=tuple(auth().items()))
        assert not response.raw_output_contents and list(response.outputs[0].shape) == [2, 3]
        got = np.array(response.outputs[0].contents.fp32_contents, dtype=np.float32).reshape(2, 3)
        np.testing.assert_allclose(got, expected(X, 2), rtol=1e-6)

        def code(message) -> grpc.StatusCode:
            with pytest.raises(grpc.RpcError) as error:
                stub.ModelInfer(message, metadata=tuple(auth().items()))
            return error.value.code()

        wrong_field = service_pb2.ModelInferRequest(model_name="affine")
        wrong_field.inputs.add(name="x", datatype="FP32", shape=[1, 4]).contents.int_contents.extend([1, 2, 3, 4])
        assert code(wrong_field) == grpc.StatusCode.INVALID_ARGUMENT
        short_raw = service_pb2.ModelInferRequest(model_name="affine", raw_input_contents=[b"\0" * 12])
        short_raw.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        assert code(short_raw) == grpc.StatusCode.INVALID_ARGUMENT
        negative = service_pb2.ModelInferRequest(model_name="affine", raw_input_contents=[b""])
        negative.inputs.add(name="x", datatype="FP32", shape=[-1, 4])
        assert code(negative) == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_client_errors_get_their_status(grpc_client):
    assert grpc_status(grpc_client.infer, "nope", [grpc_input(X)], headers=auth()) == "NOT_FOUND"
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(X)], model_version="9", headers=auth()) == "NOT_FOUND"
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(X)], model_version="1", headers=auth()) == "UNAVAILABLE"
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(X)], model_version="x", headers=auth()) \
        == "INVALID_ARGUMENT"
    wrong_shape = np.zeros((2, 5), np.float32)
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(wrong_shape)], headers=auth()) == "INVALID_ARGUMENT"
    wrong_dtype = X.astype(np.float64)
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(wrong_dtype, "FP64")], headers=auth()) \
        == "INVALID_ARGUMENT"
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(X, name="w")], headers=auth()) == "INVALID_ARGUMENT"
    strings = np.array([b"a", b"b"], dtype=np.object_)
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(strings, "BYTES")], headers=auth()) \
        == "INVALID_ARGUMENT"
    unknown_output = [tritonclient_grpc.InferRequestedOutput("z")]
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(X)], outputs=unknown_output, headers=auth()) \
        == "INVALID_ARGUMENT"
    assert grpc_status(grpc_client.get_model_metadata, "nope", headers=auth()) == "NOT_FOUND"
    assert grpc_status(grpc_client.is_model_ready, "nope", headers=auth()) == "NOT_FOUND"


def test_grpc_bearer_token(grpc_client):
    assert grpc_status(grpc_client.get_server_metadata) == "UNAUTHENTICATED"
    assert grpc_status(grpc_client.infer, "affine", [grpc_input(X)]) == "UNAUTHENTICATED"
    wrong = {"authorization": "Bearer nope"}
    assert grpc_status(grpc_client.get_model_repository_index, headers=wrong) == "UNAUTHENTICATED"


def test_grpc_repository_index_load_unload(grpc_client, server: ServerProcess):
    index = {(m.name, m.version): m.state for m in grpc_client.get_model_repository_index(headers=auth()).models}
    assert index[("spare", "2")] == "READY" and index[("spare", "1")] == "UNAVAILABLE"
    grpc_client.unload_model("spare", headers=auth())
    assert not grpc_client.is_model_ready("spare", headers=auth())
    assert grpc_status(grpc_client.infer, "spare", [grpc_input(X)], headers=auth()) == "UNAVAILABLE"
    grpc_client.load_model("spare", headers=auth())
    assert grpc_client.is_model_ready("spare", "2", headers=auth())
    assert grpc_status(grpc_client.load_model, "nope", headers=auth()) == "NOT_FOUND"
    # Versions to load: a parameter tritonclient has no argument for (a string, the message has no lists).
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.RepositoryModelLoadRequest(model_name="spare")
        request.parameters["versions"].string_param = "1,2"
        stub.RepositoryModelLoad(request, metadata=tuple(auth().items()))
    assert grpc_client.is_model_ready("spare", "1", headers=auth()) and grpc_client.is_model_ready("spare", "2",
                                                                                                 headers=auth())


def test_grpc_overload_is_resource_exhausted(grpc_client, server: ServerProcess):
    """A full queue answers at once with RESOURCE_EXHAUSTED (REST's 429), counted under protocol="grpc"."""
    first: dict[str, object] = {}
    thread = threading.Thread(target=lambda: first.update(
        result=grpc_client.infer("slow", [grpc_input(np.zeros((4, 4), np.float32))], headers=auth())))
    thread.start()
    wait_for(lambda: 'frameduel_queue_depth_samples{model="slow",version="1"} 4.0' in metrics(server), 30)
    assert grpc_status(grpc_client.infer, "slow", [grpc_input(X[:1])], headers=auth()) == "RESOURCE_EXHAUSTED"
    thread.join(timeout=30)
    assert first["result"].as_numpy("y").shape == (4, 3)
    text = metrics(server)
    assert 'code="RESOURCE_EXHAUSTED",model="slow",protocol="grpc",version="1"' in text
    assert 'code="OK",model="affine",protocol="grpc",version="2"' in text


def metrics(server: ServerProcess) -> str:
    return httpx.get(f"{server.http}/metrics", headers=auth(), timeout=10).text


# -- tritonclient.http -----------------------------------------------------------------------------------------
def test_http_health_metadata_and_infer(http_client):
    assert http_client.is_server_live() and http_client.is_server_ready()
    assert http_client.is_model_ready("affine", headers=auth())
    assert http_client.get_server_metadata(headers=auth())["name"] == "frameduel"
    assert http_client.get_model_metadata("affine", headers=auth())["versions"] == ["2"]
    for binary in (True, False):  # the binary-tensor extension, then JSON tensors
        outputs = [tritonclient_http.InferRequestedOutput("y", binary_data=binary)]
        result = http_client.infer("affine", [http_input(X, binary)], outputs=outputs, headers=auth())
        np.testing.assert_allclose(result.as_numpy("y"), expected(X, 2), rtol=1e-6)
    versioned = http_client.infer("affine", [http_input(X, True)], model_version="2", headers=auth())
    assert versioned.get_response()["model_version"] == "2"


def test_http_repository_errors_and_token(http_client):
    index = {(m["name"], m["version"]): m["state"] for m in http_client.get_model_repository_index(headers=auth())}
    assert index[("affine", "2")] == "READY"
    http_client.load_model("affine", headers=auth())  # already serving its newest version: nothing changes
    assert http_client.is_model_ready("affine", "2", headers=auth())

    def status(call, *args, **kwargs) -> str:
        with pytest.raises(InferenceServerException) as error:
            call(*args, **kwargs)
        return error.value.status()

    assert status(http_client.infer, "nope", [http_input(X, True)], headers=auth()) == "404"
    wrong_shape = http_input(np.zeros((2, 5), np.float32), True)
    assert status(http_client.infer, "affine", [wrong_shape], headers=auth()) == "400"
    assert status(http_client.unload_model, "nope", headers=auth()) == "404"
    assert status(http_client.get_server_metadata) == "401"


# -- loadtest over gRPC ---------------------------------------------------------------------------------------
def test_loadtest_grpc_cli_closed_loop(server: ServerProcess, db_path: Path):
    result = run_cli("loadtest", f"grpc://{server.grpc}/affine", "--concurrency", "2", "--duration", "1",
                     "--warmup", "0.2", "--batch", "2", "--token", TOKEN, "--db", str(db_path), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "affine" and data["version"] == "2" and not data["errors"] and data["requests"] > 0
    assert data["source"] == {"workload": "affine", "size": "tiny", "framework": "torch", "format": "onnx"}


def test_loadtest_grpc_open_loop_typed_contents(server: ServerProcess):
    result = run_loadtest(LoadTestConfig(f"grpc://{server.grpc}/affine/versions/2", concurrency=2, duration_s=1,
                                         warmup_s=0.2, mode="open", rate=40, binary=False, token=TOKEN))
    assert not result["errors"] and result["dropped"] == 0 and result["requests"] > 10


def test_loadtest_grpc_errors_are_one_line(server: ServerProcess, db_path: Path):
    result = run_cli("loadtest", "grpc://127.0.0.1/affine", "--db", str(db_path), timeout=120)
    assert result.returncode == 2 and "not a model URL" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(FrameduelError, match="UNAUTHENTICATED"):  # no token
        run_loadtest(LoadTestConfig(f"grpc://{server.grpc}/affine", duration_s=0.5))


def test_serve_refuses_a_busy_grpc_port(server: ServerProcess, tmp_path: Path):
    busy = server.grpc.rsplit(":", 1)[1]  # the module's server holds it
    write_affine_model(tmp_path, "affine", 1)
    result = run_cli("serve", "--repository", str(tmp_path), "--port", "0", "--grpc-port", busy, timeout=60)
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{busy}" in result.stderr
    assert "pass a free --grpc-port" in result.stderr and "Traceback" not in result.stderr
