"""ExecuTorch beside LiteRT: PyTorch's on-device formats, gated like every format, and the fair edge pairs.

One module-scoped fixture exports mlp, cnn and transformer from torch through the real CLI: the transformer
to executorch-int8, the cnn to executorch, and the mlp to all three ExecuTorch formats and LiteRT's three
(the Keras twin of the same weights), the fair pairs. The mlp is digits-trained (size "digits"), so its int8
artefacts are judged on test accuracy after quantization; cnn and transformer are size "tiny" (untrained:
gated on their outputs), which keeps the fixture near a minute on two cores. The tests read back the gates,
the manifests' delegation, the runtime process's RSS, the pairs' rows, the claim row, the report and advise.
benchmarks/edge.py runs every workload digits-trained with every format: the figures the README quotes.

The tests that export or import torch use `frameworks` (the slow tier); the refusals before any work
starts (a tf -> ExecuTorch route, a missing executorch package) stay in the fast tier.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from frameduel.export.manifest import EXECUTORCH_FORMATS
from frameduel.export.pairs import PAIRS, fair_pairs
from frameduel.export.routes import ROUTES, Route, route
from frameduel.export.table import PAIR_COLUMNS, pair_rows
from frameduel.report.advise import edge_criteria
from frameduel.report.edge_claim import EDGE_CLAIM, NEEDS, check_edge_claim
from frameduel.workloads import get_workload
from tests.conftest import run_cli
from tests.test_report import stored_run
from tests.tools import require_module

LITERT_FORMATS = ("tflite", "tflite-int8", "tflite-int8-full")
# workload -> (size, formats); the slowest export first, so the two at a time finish together.
# cnn and transformer one ExecuTorch format each (what broke lowering them hit every format: the CNN's
# convolution backend guard and 0 stride, the transformer's split); mlp every format of both toolchains.
EXPORTS = {"transformer": ("tiny", ("executorch-int8",)),
           "mlp": ("digits", (*EXECUTORCH_FORMATS, *LITERT_FORMATS)),
           "cnn": ("tiny", ("executorch",))}
slow = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier


@pytest.fixture(scope="module")
def edge_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge")


@pytest.fixture(scope="module")
def exported(edge_root: Path) -> dict[str, dict[str, dict]]:
    """{workload: {format: result}}, each exported from torch, one thread, short benchmarks."""
    require_module("executorch", "edge")
    root = edge_root

    def export(workload: str) -> dict[str, dict]:
        size, formats = EXPORTS[workload]
        proc = run_cli("export", workload, "--framework", "torch", "--size", size, "--formats", ",".join(formats),
                       "--out", str(root / "models"), "--db", str(root / "results.sqlite"), "--epochs", "2",
                       "--threads", "1", "--bench-seconds", "0.2", "--json", timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return {r["format"]: r for r in json.loads(proc.stdout)["results"]}

    with ThreadPoolExecutor(max_workers=2) as pool:  # two exports at a time on the two cores, as test_export
        done = {workload: pool.submit(export, workload) for workload in EXPORTS}
    return {workload: future.result() for workload, future in done.items()}


@pytest.fixture(scope="module")
def edge_db(exported, edge_root: Path) -> Path:
    """The exports' database with a stored run of mlp beside them (no framework runs for it)."""
    stored_run(edge_root / "results.sqlite")
    return edge_root / "results.sqlite"


@slow
@pytest.mark.parametrize("workload", list(EXPORTS))
def test_every_edge_format_passes_its_gate(exported, workload):
    for fmt, result in exported[workload].items():
        assert result["status"] == "valid", (workload, fmt, result["reason"])
        metric = result["manifest"]["validation"]["metric"]
        assert 0 <= metric["agreement"] <= 1  # top-1 agreement with the float torch model, every artefact
        if EXPORTS[workload][0] == "digits":  # int8 judged on the held-out split: at most a point lost
            assert metric["accuracy_drop"] <= 0.01 and metric["agreement"] > 0.9
        bench = result["benchmark"]
        assert bench["latency_ms_p50"] > 0 and bench["throughput_batch"] == 32
        # The runtime process's memory: the harness, then the runtime imported, then its peak.
        assert 0 < bench["harness_rss_mb"] < bench["runtime_rss_mb"] <= bench["peak_rss_mb"]


@slow
def test_executorch_manifests_say_what_xnnpack_took(exported):
    for results in exported.values():
        for fmt in EXECUTORCH_FORMATS:
            if fmt not in results:
                continue
            manifest = results[fmt]["manifest"]
            assert manifest["artefact"] == "model.pte" and manifest["source"]["converter"] == "torch"
            assert manifest["delegation"]["delegate"] == "XNNPACK" and manifest["delegation"]["partitions"] >= 1
            assert (manifest["quantization"] != {}) == (fmt != "executorch")
    # The transformer's LayerNorms stay on ExecuTorch's portable kernels (mlp: every op is delegated).
    outside = exported["transformer"]["executorch-int8"]["manifest"]["delegation"]["outside"]
    assert any("layer_norm" in op for op in outside), outside
    assert exported["mlp"]["executorch"]["manifest"]["delegation"]["outside"] == {}


@slow
def test_litert_delegation_is_read_from_the_interpreter(exported):
    for fmt in LITERT_FORMATS:  # one XNNPACK partition holds the mlp's every op, dynamic-range int8's too
        delegation = exported["mlp"][fmt]["manifest"]["delegation"]
        assert (delegation["delegate"], delegation["partitions"], delegation["outside"]) == ("XNNPACK", 1, {})
        assert delegation["delegated_ops"] >= 3


@slow
def test_fair_pairs_rows_and_the_claim_row(exported):
    pairs = fair_pairs(list(exported["mlp"].values()))
    assert [p.precision for p in pairs] == [precision for precision, _, _ in PAIRS]
    rows = pair_rows(pairs)
    assert len(rows) == 6 and all(len(row) == len(PAIR_COLUMNS) for row in rows)
    assert [row[2] for row in rows[:2]] == ["ExecuTorch", "LiteRT"]
    # Every column filled: size, load, p50/p99, samples/s, agreement, test accuracy (digits), RSS, delegation.
    assert all(cell for row in rows for cell in row), rows
    # A side that produced no artefact still pairs, its reason in the valid? cell and no figures.
    reason = "ValueError: ExecuTorch cannot lower aten.foo.default: ..."
    failed = [{**r, "status": "failed", "reason": reason, "manifest": None, "benchmark": None}
              if r["format"] == "executorch" else r for r in exported["mlp"].values()]
    first = pair_rows(fair_pairs(failed))[0]
    assert first[3:5] == ["executorch", f"failed: {reason}"] and not any(first[5:]), first
    # The claim reads the transformer's int8 pairs: these real pairs, labelled as the transformer's.
    as_transformer = [{**result, "workload": "transformer"} for result in exported["mlp"].values()]
    status, evidence = check_edge_claim(as_transformer)
    assert status in ("supported", "not supported", "inconclusive")
    assert evidence[0].startswith("2 int8 pair(s) of the BERT-style transformer")
    assert len(evidence) == 3 and all("LiteRT vs ExecuTorch" in line for line in evidence[1:])
    assert check_edge_claim(list(exported["mlp"].values())) == ("inconclusive", [NEEDS])
    assert EDGE_CLAIM.startswith("TF Lite has a clear advantage")


def relabelled(result: dict, p50_ms: float, size_bytes: int) -> dict:
    """A copy of an export result, labelled as the transformer's, with this p50 and file size, and accuracy and
    the RSS the artefact added set alike for every artefact (so latency and size decide)."""
    validation = result["manifest"]["validation"]
    metric = {**validation["metric"], "artefact_accuracy": 0.9}
    manifest = {**result["manifest"], "size_bytes": size_bytes, "validation": {**validation, "metric": metric}}
    bench = {**result["benchmark"], "latency_ms_p50": p50_ms, "latency_noise": 0.0,
             "peak_rss_mb": result["benchmark"]["runtime_rss_mb"] + 5.0}
    return {**result, "workload": "transformer", "manifest": manifest, "benchmark": bench}


@slow
@pytest.mark.parametrize(("litert_scale", "verdict", "favoured"),
                         [(0.5, "supported", "favours LiteRT"), (2.0, "not supported", "favours ExecuTorch")])
def test_the_claim_row_follows_the_cells(exported, litert_scale, verdict, favoured):
    """LiteRT at half (twice) its partner's p50 and size in both int8 pairs supports (refutes) the claim."""
    results, mlp = [], exported["mlp"]
    for _, et_format, lite_format in PAIRS:
        et = mlp[et_format]
        p50, size = et["benchmark"]["latency_ms_p50"], et["manifest"]["size_bytes"]
        results += [relabelled(et, p50, size),
                    relabelled(mlp[lite_format], litert_scale * p50, int(litert_scale * size))]
    status, evidence = check_edge_claim(results)
    assert status == verdict and all(line.endswith(favoured) for line in evidence[1:]), evidence
    # A pair whose two sides were exported from different weights is no fair pair: it is left out.
    litert = next(r for r in results if r["format"] == "tflite-int8-full")
    other = {**litert["manifest"]["source"], "weights_sha256": "0" * 64}
    litert["manifest"] = {**litert["manifest"], "source": other}
    assert [p.precision for p in fair_pairs(results)] == ["float32", "dynamic int8"]


@slow
def test_edge_advice_weighs_toolchain_against_toolchain(exported):
    """advise --scenario edge: ExecuTorch's figures count for torch and LiteRT's for tf, pair by pair."""
    criteria = edge_criteria(list(exported["mlp"].values()))
    for name in ("edge latency", "edge size", "edge memory"):
        shares = criteria[name].shares
        assert set(shares) == {"torch", "tf"} and abs(sum(shares.values()) - 1) < 1e-9
        assert criteria[name].evidence.count("mlp-digits") == 3  # one figure pair per precision
    assert "(executorch-int8) vs tf" in criteria["edge size"].evidence


@slow
def test_the_report_and_advise_read_the_stored_pairs(edge_db, tmp_path):
    """frameduel report: the fair pairs' table and the edge claim row; advise --scenario edge: the toolchains."""
    out = tmp_path / "report"
    proc = run_cli("report", "r1", "--db", str(edge_db), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    markdown = (out / "report.md").read_text()
    assert "Fair edge pairs: ExecuTorch vs LiteRT" in markdown
    assert markdown.count("| mlp-digits |") == 6 + 6  # six artefacts in the export table, six pair rows
    assert EDGE_CLAIM in markdown and NEEDS in markdown  # an mlp run: no transformer pairs to judge
    proc = run_cli("advise", "r1", "--scenario", "edge", "--db", str(edge_db), "--json")
    assert proc.returncode == 0, proc.stderr
    criteria = {c["name"]: c for c in json.loads(proc.stdout)["criteria"]}
    assert {"edge latency", "edge size", "edge memory"} <= set(criteria)
    assert "(executorch-int8) vs tf" in criteria["edge size"]["evidence"]


def test_tf_to_executorch_is_unsupported_with_its_reason():
    for fmt in EXECUTORCH_FORMATS:
        assert isinstance(ROUTES["torch"][fmt], Route) and not isinstance(route("tf", fmt), Route)
        assert "--framework torch" in route("tf", fmt)


@slow
def test_a_model_that_cannot_run_names_the_op(tmp_path):
    """Every frameduel workload lowers (what XNNPACK does not take runs on portable kernels), but an op with no
    kernel in either, the median here, is refused at export, naming it, not written for the runtime to fail on."""
    require_module("executorch", "edge")
    torch = require_module("torch")
    from frameduel.frameworks.torch_export import export_artefact

    class Median(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.median(dim=1, keepdim=True).values

    sample = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    refusal = r"^ExecuTorch cannot run aten::median\.dim_values: its runtime has no kernel"
    with pytest.raises(ValueError, match=refusal) as refused:
        export_artefact("executorch", get_workload("mlp"), Median(), sample, sample, tmp_path, 32)
    assert "\n" not in str(refused.value) and not (tmp_path / "model.pte").exists()
    # exir's own lowering errors (several lines, the op inside) become one line naming the op.
    from frameduel.frameworks.torch_executorch import lowering_error

    error = RuntimeError("Missing out variants: {'aten::_fake_op.default'}\n  while lowering node %x")
    assert lowering_error(error) == ("ExecuTorch cannot lower aten::_fake_op.default: RuntimeError: Missing out "
                                     "variants: {'aten::_fake_op.default'}")


def test_a_missing_executorch_is_one_line_naming_the_extra(tmp_path):
    """The CLI with executorch hidden: Python reads a None entry in sys.modules as "not installed"."""
    args = ["frameduel", "export", "mlp", "--framework", "torch", "--formats", "onnx,executorch",
            "--out", str(tmp_path / "models"), "--db", str(tmp_path / "db.sqlite")]
    script = (f"import runpy, sys; sys.modules['executorch'] = None; sys.argv = {args!r}; "
              "runpy.run_module('frameduel.cli', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "format executorch needs the 'executorch' package" in proc.stderr and "pip install -e '.[edge]'" in \
        proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "models").exists()
