"""frameduel loadtest against a real server: closed and open loop, stored results, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frameduel.loadgen.loadtest import LoadTestConfig, offline_throughput, run_loadtest
from frameduel.serve.app import ServerConfig
from frameduel.serve.batcher import BatchingConfig
from frameduel.store import Store
from tests.conftest import run_cli
from tests.serve_support import free_socket, running_server, write_affine_model


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    repo = tmp_path_factory.mktemp("repo")
    write_affine_model(repo, "affine", 1)
    with running_server(ServerConfig(repo, batching=BatchingConfig(max_queue_delay_us=500))) as base:
        yield base


def test_closed_loop_cli_prints_and_stores(url: str, db_path: Path):
    result = run_cli("loadtest", f"{url}/v2/models/affine", "--concurrency", "4", "--duration", "1",
                     "--warmup", "0.2", "--batch", "2", "--db", str(db_path), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "affine" and data["version"] == "1" and not data["errors"]
    assert data["requests"] > 0 and data["throughput_sps"] == pytest.approx(2 * data["throughput_rps"])
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p90"] <= data["latency_ms"]["p99"]
    assert len(data["windows_sps"]) == 1 and "token" not in data["config"]
    (stored,) = Store(db_path).results("loadtest")
    assert stored.key == "affine/1 closed c4 b2" and stored.data["requests"] == data["requests"]
    assert stored.data["source"] == {"workload": "affine", "size": "tiny", "framework": "torch", "format": "onnx"}


def test_open_loop_offers_the_requested_rate(url: str):
    result = run_loadtest(LoadTestConfig(f"{url}/v2/models/affine/versions/1/infer", concurrency=4, duration_s=2,
                                         warmup_s=0.2, mode="open", rate=40, binary=False))
    assert not result["errors"] and result["dropped"] == 0
    assert 40 * 2 * 0.5 < result["requests"] < 40 * 2 * 1.5  # Poisson: about rate x duration


def test_table_output(url: str, db_path: Path):
    result = run_cli("loadtest", f"{url}/v2/models/affine", "--duration", "0.5", "--warmup", "0",
                     "--db", str(db_path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "samples/s" in result.stdout and "affine/1" in result.stdout


@pytest.mark.parametrize(("target", "message"), [
    ("{url}/v2/models/nope", "404"),
    ("{url}/v2/health/ready", "not a model URL"),
    ("http://127.0.0.1:{free}/v2/models/affine", "cannot reach"),
])
def test_bad_targets_are_one_line_errors(url: str, db_path: Path, target: str, message: str):
    with free_socket() as sock:  # bound, never listening: connections are refused
        address = target.format(url=url, free=sock.getsockname()[1])
        result = run_cli("loadtest", address, "--duration", "0.5", "--db", str(db_path), timeout=120)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_offline_throughput_calls_the_runtime_directly(tmp_path: Path):
    directory = write_affine_model(tmp_path, "affine", 1)
    figures = offline_throughput(directory, batch=8, duration_s=0.2, threads=1)
    assert figures["calls"] > 0 and figures["throughput_sps"] > 0


def test_serve_cli_refuses_a_missing_repository_and_a_busy_port(tmp_path: Path):
    missing = run_cli("serve", "--repository", str(tmp_path / "nope"), timeout=60)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    write_affine_model(tmp_path / "repo", "affine", 1)
    with free_socket() as busy:
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--repository", str(tmp_path / "repo"), "--port", str(port), timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "pass a free --port" in result.stderr
    assert "Traceback" not in result.stderr
