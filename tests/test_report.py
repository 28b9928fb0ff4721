"""frameduel report: self-contained HTML with figures, Markdown and JSON from a stored run."""

from __future__ import annotations

import json
import re

import pytest

from frameduel.environment import fingerprint
from frameduel.report.document import BreakEven
from frameduel.runner.plan import MatrixRequest, build_plan
from frameduel.spec import Measurement
from frameduel.store import Store
from tests.conftest import run_cli
from tests.test_summary import fake
from tests.tools import require_module


def stored_run(db_path) -> str:
    """A real stored run (plan, environment, cells with raw samples), without running a framework."""
    plan = build_plan(MatrixRequest(workloads=("mlp",), modes=("eager", "compile", "function"), size="tiny",
                                    device="cpu", threads=1))
    store = Store(db_path)
    store.create_run("r1", plan.to_dict(), fingerprint())
    speeds = {("torch", "eager"): 0.010, ("torch", "compile"): 0.0075, ("tf", "eager"): 0.050,
              ("tf", "function"): 0.009}
    for index, spec in enumerate(plan.specs):
        base = fake(spec.framework, spec.mode, speeds[(spec.framework, spec.mode)], seed=index)
        store.save_measurement("r1", 0, Measurement(spec=spec, status="ok", step_seconds=base.step_seconds,
                                                    compile_s=base.compile_s, first_step_s=2.0,
                                                    peak_rss_mb=300.0 + index, background_cores=0.0))
    store.set_run_status("r1", "complete")
    return "r1"


def test_report_writes_html_markdown_and_json(db_path, tmp_path):
    run_id = stored_run(db_path)
    out = tmp_path / "out"
    result = run_cli("report", run_id, "--db", str(db_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text()
    for section in ("overview", "verdict", "cells", "speedups", "claims", "break-even", "figures", "environment"):
        assert f"id='{section}'" in page
    images = re.findall(r"<img [^>]*src='([^']+)'", page)
    assert len(images) >= 3 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing fetched from anywhere
    markdown = (out / "report.md").read_text()
    assert "| torch | compile |" in markdown and "## Compile time vs steady state" in markdown
    data = json.loads((out / "report.json").read_text())
    assert data["run_id"] == run_id and len(data["cells"]) == 8 and data["environment"]["cpu"]
    assert {item["mode"] for item in data["break_even"]} == {"compile", "function"}
    compile_claim = data["claims"][0]
    # 10 ms eager / 7.5 ms compiled = 1.33x, inside the claimed 1.3-1.6x
    assert compile_claim["claim"].startswith("torch.compile") and compile_claim["status"] == "supported"
    assert "torch.compile speeds up training/inference by 30–60%: supported" in markdown


def test_tensorboard_reads_the_event_file_back(db_path, tmp_path):
    from frameduel.report.tensorboard import crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    run_id = stored_run(db_path)
    result = run_cli("report", run_id, "--db", str(db_path), "--out", str(tmp_path / "out"),
                     "--tensorboard", str(tmp_path / "tb"))
    assert result.returncode == 0, result.stderr
    event_accumulator = require_module("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb" / run_id))
    events.Reload()
    tags = events.Tags()["scalars"]
    step_tag = "mlp/tiny/train/b32/fp32/cpu/torch compile/step_ms"
    assert step_tag in tags and any("/speedup/" in tag for tag in tags)
    assert events.Scalars(step_tag)[0].value == pytest.approx(7.5, rel=0.05)


def test_break_even_is_compile_time_over_the_per_step_saving():
    assert BreakEven("g", "torch", "compile", 2.0, 0.010, 0.006).steps == 500
    assert BreakEven("g", "torch", "compile", 2.0, 0.010, 0.012).steps is None  # never repaid


def test_report_of_unknown_run_is_exit_2(db_path, tmp_path):
    result = run_cli("report", "nope", "--db", str(db_path), "--out", str(tmp_path))
    assert result.returncode == 2 and "no run 'nope'" in result.stderr


def test_report_logs_to_an_mlflow_file_store(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the reading client, too, opens the file store
    from mlflow.tracking import MlflowClient

    run_id = stored_run(db_path)
    store_dir = tmp_path / "mlruns"
    result = run_cli("report", run_id, "--db", str(db_path), "--out", str(tmp_path / "out"), "--mlflow", str(store_dir))
    assert result.returncode == 0, result.stderr
    client = MlflowClient(store_dir.resolve().as_uri())
    experiment = client.get_experiment_by_name("frameduel")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["frameduel.run_id"] == run_id
    metrics = logged.data.metrics
    # 10 ms torch eager training step; compile's speedup label has parentheses MLflow refuses, made safe
    assert metrics["mlp/tiny/train/b32/fp32/cpu/torch eager/step_ms"] == pytest.approx(10, rel=0.01)
    assert any(key.endswith("torch best _compile_ vs tf best _function_") for key in metrics)
    assert logged.data.params["version.torch"]
    assert {item.path for item in client.list_artifacts(logged.info.run_id)} == {"report.html", "report.md",
                                                                                   "report.json"}


def test_caveats_name_eager_fallback_contention_and_unproven_parity(db_path, tmp_path):
    run_id = stored_run(db_path)
    store = Store(db_path)
    for _, measurement in store.measurements(run_id):
        if measurement.spec.mode == "compile" and measurement.spec.task == "train":
            measurement.runtime = {"compiled_graphs": 0, "graph_breaks": 0,
                                   "eager_fallback_reasons": ["Attempted to wrap RNN, GRU, or LSTM"]}
            measurement.background_cores = 0.9
            store.save_measurement(run_id, 0, measurement)
    out = tmp_path / "out"
    assert run_cli("report", run_id, "--db", str(db_path), "--out", str(out)).returncode == 0
    caveats = json.loads((out / "report.json").read_text())["caveats"]
    assert caveats == [
        "mlp/tiny/train/b32/fp32/cpu torch compile: torch.compile compiled nothing, the whole model ran eagerly "
        "(Attempted to wrap RNN, GRU, or LSTM)",
        "mlp/tiny/train/b32/fp32/cpu torch compile: other processes kept 0.90 cores busy while it was measured; "
        "re-run on a quiet machine",
        "mlp: parity not checked; run `frameduel parity mlp` to prove both implementations are the same model",
    ]
    assert "id='caveats'" in (out / "report.html").read_text() and "## Caveats" in (out / "report.md").read_text()


def test_report_shows_stored_parity_exports_and_load_tests_of_its_workloads(db_path, tmp_path):
    run_id = stored_run(db_path)
    store, env = Store(db_path), fingerprint()
    store.save_result("parity", "mlp/tiny/torch-to-tf", {"workload": "mlp", "size": "tiny", "source": "torch",
                                                         "target": "tf", "passed": True, "forward_rel": 1e-7}, env)
    bench = {"runtime": "onnxruntime", "threads": 1, "size_bytes": 2048, "load_s": 0.007, "latency_ms_p50": 0.05,
             "latency_ms_p99": 0.09, "throughput_batch": 32, "throughput_sps": 300000.0}
    validation = {"valid": True, "max_abs_diff": 2e-6, "max_rel_diff": 2e-7, "metric": {}}
    exported = {"workload": "mlp", "size": "tiny", "framework": "torch", "format": "onnx", "status": "valid",
                "reason": "", "manifest": {"validation": validation}, "benchmark": bench}
    store.save_result("export", "mlp-tiny-torch-onnx", exported, env)
    store.save_result("export", "cnn-tiny-tf-onnx", {"workload": "cnn", "size": "tiny", "framework": "tf",
                                                     "format": "onnx", "status": "valid"}, env)  # not this run's
    store.save_result("loadtest", "mlp-tiny-torch-onnx/1 closed c8 b4", {
        "model": "mlp-tiny-torch-onnx", "version": "1", "config": {"mode": "closed", "concurrency": 8, "batch": 4},
        "source": {"workload": "mlp", "size": "tiny", "framework": "torch", "format": "onnx"}, "requests": 500,
        "throughput_sps": 1234.0, "latency_ms": {"p50": 3.0, "p90": 4.0, "p99": 6.0}, "errors": {}, "stable": True,
    }, env)
    out = tmp_path / "out"
    assert run_cli("report", run_id, "--db", str(db_path), "--out", str(out)).returncode == 0
    markdown = (out / "report.md").read_text()
    # a record from before the float64 proof says what little it proved, here and under Caveats
    weaker = ("- mlp: parity passed an older, weaker check only (fp32 forward and loss curves within 1e-4, forward "
              "diff 1.0e-07; tiny torch->tf); rerun `frameduel parity mlp`")
    assert markdown.count(weaker) == 2
    assert "| mlp-tiny | torch | onnx | yes | 2.0e-06 | 2.0e-07 |" in markdown and "cnn-tiny" not in markdown
    assert "| mlp-tiny-torch-onnx/1 | torch onnx | closed c8 b4 | 500 | 1,234 | 3/4/6 | none | yes |" in markdown
    page = (out / "report.html").read_text()
    assert "id='deployment'" in page and "<td>300,000/s @b32</td>" in page
    data = json.loads((out / "report.json").read_text())
    assert [e["format"] for e in data["exports"]] == ["onnx"] and len(data["loadtests"]) == 1


def test_report_has_a_scaling_section_and_the_two_scaling_claims(db_path, tmp_path):
    plan = build_plan(MatrixRequest(workloads=("mlp",), frameworks=("torch", "tf"), modes=("eager", "function"),
                                    tasks=("train",), size="tiny", device="cpu", threads=1, workers=(1, 2)))
    store = Store(db_path)
    store.create_run("dp", plan.to_dict(), fingerprint())
    for round_index in range(3):
        for index, spec in enumerate(plan.specs):  # 2 workers take 0.6 of one worker's step: efficiency 0.83
            median = 0.010 * (0.6 if spec.workers == 2 else 1.0) * (1 + 0.005 * round_index)
            samples = fake(spec.framework, spec.mode, median, seed=10 * round_index + index).step_seconds
            store.save_measurement("dp", round_index, Measurement(spec=spec, status="ok", step_seconds=samples,
                                                                  series={"allreduce": [0.001] * 5}))
    store.set_run_status("dp", "complete")
    out = tmp_path / "out"
    assert run_cli("report", "dp", "--db", str(db_path), "--out", str(out)).returncode == 0
    page, data = (out / "report.html").read_text(), json.loads((out / "report.json").read_text())
    assert "id='scaling'" in page and "2 worker processes on cpu, 1 thread(s) each" in page
    assert len(data["scaling"]) == 3 and {row["kind"] for row in data["scaling"]} == {"strong"}
    assert all(0.8 < row["efficiency"] < 0.87 and row["allreduce_share"] > 0 for row in data["scaling"])
    claims = {claim["claim"]: claim for claim in data["claims"]}
    assert claims["DDP scales linearly across multiple GPUs"]["status"] == "not supported"
    assert "not GPUs" in claims["DDP scales linearly across multiple GPUs"]["evidence"][0]
    assert "## Data-parallel scaling" in (out / "report.md").read_text()
    assert any("`frameduel parity mlp --workers 2`" in line for line in data["caveats"])
