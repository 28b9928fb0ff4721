"""Browser formats through the real CLI: a torch MLP as a TF.js graph model (through the Keras twin and
the tfjs converter's own venv) and as ONNX for ONNX Runtime Web, gated and timed in headless Chromium.

One module-scoped export (mlp tiny, small budgets); the tests read what it stored, prove the page asked
for nothing beyond 127.0.0.1 (a control page proves the guard sees outside requests), and that no
Chromium process outlives the run. Skipped locally without Chromium or `frameduel browser setup`;
under CI (where `CI` is set) that is a failure instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from frameduel.analysis.evidence import EDGE_FORMATS, best_artefact_latency
from frameduel.browser.page import browser_session, find_chromium
from frameduel.errors import FrameduelError
from frameduel.export.manifest import BROWSER_FORMATS, read_manifest
from frameduel.export.reference import REFERENCE_FILE, load_reference
from frameduel.export.table import export_rows
from frameduel.report.browser_claim import browser_latencies, check_browser_claim
from frameduel.store import Store
from tests.browser_support import chromium_processes
from tests.conftest import run_cli
from tests.tools import skip_or_fail

PROFILE_MARKER = "frameduel-chromium-"  # browser/page.py's profile prefix: every Chromium it starts has it


@pytest.fixture(scope="module")
def browser_export(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if find_chromium() is None:
        skip_or_fail("chromium is not installed; run scripts/install-system-deps (Debian: apt-get install chromium)")
    try:
        from frameduel.browser.setup import require_converter, require_npm_packages
        require_npm_packages()
        require_converter()
    except FrameduelError as exc:
        skip_or_fail(str(exc))
    root = tmp_path_factory.mktemp("browser-export")
    out, db = root / "models", root / "results.sqlite"
    proc = run_cli("export", "mlp", "--framework", "torch", "--size", "tiny", "--formats", ",".join(BROWSER_FORMATS),
                   "--out", str(out), "--db", str(db), "--threads", "1", "--bench-seconds", "0.3", "--json",
                   timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"results": {r["format"]: r for r in json.loads(proc.stdout)["results"]}, "db": db}


def test_browser_artefacts_pass_the_gate_on_every_backend(browser_export):
    results = browser_export["results"]
    assert list(results) == list(BROWSER_FORMATS)
    want = {"tfjs": {"wasm", "webgl"}, "onnx-web": {"wasm"}}
    for fmt, result in results.items():
        assert result["status"] == "valid", (fmt, result["reason"])
        validation = result["manifest"]["validation"]
        assert validation["batch_sizes"] == [1, 2, 32] and validation["max_rel_diff"] <= 1e-4
        backends = result["benchmark"]["backends"]
        assert {label.split(" ")[0] for label in backends} == want[fmt]
        for bench in backends.values():
            assert bench["load_s"] > 0 and bench["throughput_batch"] == 32 and bench["throughput_sps"] > 0
            assert 0 < bench["latency_ms_p50"] <= bench["latency_ms_p99"]
    # No GPU here: WebGL runs on a software rasteriser, and the label says so.
    webgl = next(b for label, b in results["tfjs"]["benchmark"]["backends"].items() if label.startswith("webgl"))
    assert ("software" in webgl["backend"]) == bool(webgl["renderer"]) and "SwiftShader" in webgl["renderer"]
    assert Path(results["tfjs"]["directory"], "tfjs_model", "model.json").is_file()
    stored = {r.key: r.data for r in Store(browser_export["db"]).results("export")}
    backends = results["tfjs"]["benchmark"]["backends"]
    assert stored["mlp-tiny-torch-tfjs"]["benchmark"]["backends"].keys() == backends.keys()


def test_a_residual_cnn_from_tf_runs_on_every_tfjs_backend(browser_export, tmp_path):
    """Untrained, its BatchNorm shifts are zero and constant-fold away, so a skip connection's Add follows a
    Conv2D directly: the converter's own pass made it a rank-4 "bias", which TF.js's wasm backend refuses
    (browser/tfjs_converter_main.py corrects the pass)."""
    proc = run_cli("export", "cnn", "--framework", "tf", "--size", "tiny", "--formats", "tfjs", "--out",
                   str(tmp_path / "models"), "--db", str(tmp_path / "results.sqlite"), "--threads", "1",
                   "--bench-seconds", "0.1", "--json", timeout=600)
    result = json.loads(proc.stdout)["results"][0]
    assert proc.returncode == 0 and result["status"] == "valid", result["reason"]
    assert {label.split(" ")[0] for label in result["benchmark"]["backends"]} == {"wasm", "webgl"}


def test_the_page_fetched_nothing_beyond_127_0_0_1(browser_export):
    for fmt, result in browser_export["results"].items():
        requests = result["benchmark"]["requests"]
        hosts = {urlsplit(url).hostname for url in requests["page"]}
        assert hosts == {"127.0.0.1"}, (fmt, hosts)
        assert requests["refused"] == [], fmt
        assert any("/npm/" in url for url in requests["page"]) and any("/model/" in url for url in requests["page"])
    assert chromium_processes(PROFILE_MARKER) == [], "a Chromium process outlived the export"


def test_the_guard_refuses_and_records_an_outside_request(browser_export):
    """Control: the same session machinery sees, and stops, a page's request to another host."""
    directory = Path(browser_export["results"]["onnx-web"]["directory"])
    with browser_session(directory, read_manifest(directory).artefact) as session:
        page = session.open("onnxruntime-web", "wasm")
        failed = page.page.evaluate("fetch('http://frameduel-control.invalid/x').then(() => false, () => true)")
        inputs, expected = load_reference(directory / REFERENCE_FILE).batches[2]
        outputs = page.infer(inputs)
    assert failed and session.refused == ["http://frameduel-control.invalid/x"]
    assert outputs.shape == expected.shape and np.abs(outputs - expected).max() <= 1e-4 * np.abs(expected).max()
    assert chromium_processes(PROFILE_MARKER) == []


def export_tfjs_with(tmp_path: Path, path: Path) -> str:
    """A tfjs export's stderr with PATH set to path and an empty cache: exit 2, one line, no traceback.
    The conditions are simulated, so the tests pass whether or not this machine has Chromium."""
    env = {"PATH": str(path), "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    proc = run_cli("export", "mlp", "--framework", "tf", "--formats", "tfjs", "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def test_a_missing_chromium_is_one_line_naming_its_install(tmp_path):
    (tmp_path / "bin").mkdir()
    stderr = export_tfjs_with(tmp_path, tmp_path / "bin")
    assert "Chromium is not installed" in stderr and "apt-get install chromium" in stderr


def test_missing_browser_setup_is_one_line_and_exit_2(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "chromium"  # found on PATH, never started: the set-up check comes first
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    assert "frameduel browser setup" in export_tfjs_with(tmp_path, bin_dir)


def test_the_deployment_table_and_the_edge_advice_read_every_browser_backend(browser_export):
    exports = list(browser_export["results"].values())
    formats = [row["format"] for result in exports for row in export_rows(result)]
    assert sorted(formats) == ["onnx-web wasm", "tfjs wasm", "tfjs webgl (software)"]
    # advise --scenario edge: with no TFLite artefact here, the best edge latency is a browser backend's
    best = best_artefact_latency(exports, EDGE_FORMATS)["mlp"]["torch"]
    fastest = min(exports, key=lambda r: r["benchmark"]["latency_ms_p50"])
    assert best.value == fastest["benchmark"]["latency_ms_p50"] and best.source == fastest["format"]


def test_the_browser_claim_names_tfjs_only_beyond_the_noise(browser_export):
    exports = [dict(result, framework=framework) for result in browser_export["results"].values()
               for framework in ("torch", "tf")]
    ort = browser_latencies(exports)["mlp", "torch", "onnx-web"]

    def with_tfjs_p50(p50: float) -> list[dict]:
        changed = []
        for result in exports:
            if result["format"] == "tfjs":
                backends = {label: dict(bench, latency_ms_p50=p50) for label, bench in
                            result["benchmark"]["backends"].items()}
                result = dict(result, benchmark=dict(result["benchmark"], backends=backends))
            changed.append(result)
        return changed

    assert check_browser_claim(with_tfjs_p50(0.5 * ort))[0] == "supported"
    assert check_browser_claim(with_tfjs_p50(0.95 * ort))[0] == "not supported"  # within the noise: no winner
    assert check_browser_claim(with_tfjs_p50(2 * ort))[0] == "not supported"


def test_browser_claim_needs_both_frameworks(browser_export):
    exports = list(browser_export["results"].values())
    latencies = browser_latencies(exports)
    assert set(latencies) == {("mlp", "torch", "tfjs"), ("mlp", "torch", "onnx-web")}
    assert check_browser_claim(exports)[0] == "inconclusive"  # torch only: the claim compares frameworks
