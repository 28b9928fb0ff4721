"""The fair edge pairs, measured in one run: ExecuTorch against LiteRT, one set of weights per pair, one thread.

1. Per workload (mlp, cnn, transformer; size "digits": trained on scikit-learn's load_digits, the
   transformer reading each image as 64 pixel-intensity tokens), one export from torch with ExecuTorch's
   three formats and LiteRT's three (the Keras twin of the same weights), one export at a time, every
   runtime at 1 thread, the default benchmark budget. Prints the fair pairs' table (export/table.py),
   the claim row (report/edge_claim.py) and what the edge advice's toolchain criteria make of them.

2. Per-call overhead of each Python runtime: a trivial artefact (y = 2x on one float, still run by
   XNNPACK in both) written by the same exporters and gated and timed by the same validation job as the
   pairs. Its batch-1 p50 is what a call costs before any model work: the Python binding, copying the
   input and output, and frameduel's checked call (gate.infer_one), which every figure here includes.

No native benchmark runner of either runtime installs here (the executorch wheel has no executor_runner;
ai-edge-litert's litert-benchmark is a Python script; README, "On device: ExecuTorch against LiteRT"), so
the binding's overhead is measured this way rather than subtracted from a native figure.

    .venv/bin/python benchmarks/edge.py              # ~6 minutes on 2 busy cores
    .venv/bin/python benchmarks/edge.py --json benchmarks/results/edge-DATE.json   # keep every result
    .venv/bin/python benchmarks/edge.py --quick      # smoke run: short budgets, fewer epochs
    .venv/bin/python benchmarks/edge.py --db PATH    # also store the exports (kind "export") for `frameduel report`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console

from frameduel import environment
from frameduel.export.bench import BenchBudget
from frameduel.export.manifest import EXECUTORCH_FORMATS, Manifest, TensorSpec, write_manifest
from frameduel.export.pairs import fair_pairs
from frameduel.export.reference import REFERENCE_FILE, Reference, gate_batch_sizes, save_reference
from frameduel.export.run import ExportRequest, run_export, save_results, validate_artefact
from frameduel.export.table import print_pairs
from frameduel.report.advise import edge_criteria
from frameduel.report.edge_claim import EDGE_CLAIM, check_edge_claim
from frameduel.store import Store

FORMATS = (*EXECUTORCH_FORMATS, "tflite", "tflite-int8", "tflite-int8-full")
EPOCHS = {"mlp": 5, "cnn": 5, "transformer": 15}  # the transformer: ~90% after 5, ~91% after 15
MAX_BATCH = 32
PROBE_FORMATS = {"torch": "executorch", "tf": "tflite"}


def export_pairs(quick: bool, out: Path) -> list[dict]:
    budget = BenchBudget(max_seconds=0.5) if quick else BenchBudget()
    results = []
    for workload, epochs in EPOCHS.items():
        request = ExportRequest(workload=workload, framework="torch", formats=FORMATS, out=out, size="digits",
                                epochs=2 if quick else epochs, max_batch=MAX_BATCH, threads=1, budget=budget)
        export_id, done = run_export(request, on_result=lambda r: print(f"  {r.key}: {r.status} {r.reason}",
                                                                        file=sys.stderr))
        results.append((export_id, request, done))
    return results


def write_probe(framework: str, directory: Path) -> None:
    """(inner process) The trivial artefact y = 2x, x (B, 1), through the framework's own exporter."""
    from frameduel.frameworks import load_exporter
    from frameduel.workloads import get_workload

    if framework == "torch":
        import torch

        class Double(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return 2 * x

        model = Double()
    else:
        from frameduel.frameworks.tf_backend import keras

        model = keras.Sequential([keras.Input((1,)), keras.layers.Rescaling(2.0)])
    sample = np.ones((2, 1), np.float32)
    fmt = PROBE_FORMATS[framework]
    (directory / fmt).mkdir(parents=True)
    # mlp stands in for the workload: it only says "float inputs, logits out" to the exporters.
    facts = load_exporter(framework).export_artefact(fmt, get_workload("mlp"), model, sample, sample,
                                                     directory / fmt, MAX_BATCH)
    batches = {b: (x := np.full((b, 1), 0.5, np.float32), 2 * x) for b in gate_batch_sizes(MAX_BATCH)}
    save_reference(directory / fmt / REFERENCE_FILE, Reference(batches=batches, digits=None))
    spec = (TensorSpec("x", (None, 1), "float32"),)
    write_manifest(directory / fmt, Manifest(
        workload="probe", size="trivial", framework=framework, format=fmt, artefact=facts["artefact"], inputs=spec,
        outputs=(TensorSpec("logits", (None, 1), "float32"),), batch_sizes=None, max_batch=MAX_BATCH,
        size_bytes=(directory / fmt / facts["artefact"]).stat().st_size, delegation=facts.get("delegation") or {}))


def call_overhead(quick: bool, tmp: Path) -> dict[str, dict]:
    """Per runtime: the trivial artefact's gate and benchmark, in the validation job every artefact gets."""
    budget = BenchBudget(max_seconds=0.5) if quick else BenchBudget(latency_calls=2000, max_seconds=3.0)
    found = {}
    for framework, fmt in PROBE_FORMATS.items():
        subprocess.run([sys.executable, __file__, "--inner", framework, str(tmp)], check=True)
        validation, bench, _ = validate_artefact(tmp / fmt, threads=1, budget=budget)
        if not validation.valid or bench is None:
            raise SystemExit(f"the {fmt} probe failed its gate: {validation.reason}")
        found[fmt] = bench
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short budgets and fewer epochs (a smoke run)")
    parser.add_argument("--db", type=Path, help="store the exports in this results database")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("--inner", nargs=2, metavar=("FRAMEWORK", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        write_probe(args.inner[0], Path(args.inner[1]))
        return
    console = Console(width=240)
    with tempfile.TemporaryDirectory(prefix="frameduel-edge-") as tmp:
        exports = export_pairs(args.quick, Path(tmp) / "models")
        overhead = call_overhead(args.quick, Path(tmp) / "probe")
    results = [result.to_dict() for _, _, done in exports for result in done]
    if args.db:
        store = Store(args.db)
        for export_id, request, done in exports:
            save_results(store, export_id, request, done, environment.fingerprint())
    print_pairs(console, fair_pairs(results))
    status, evidence = check_edge_claim(results)
    console.print(f"\n[bold]{EDGE_CLAIM}: {status}[/bold]")
    for line in evidence:
        console.print(f"  - {line}", highlight=False)
    console.print("\n[bold]advise --scenario edge, toolchain criteria[/bold] (torch = ExecuTorch, tf = LiteRT)")
    for name, criterion in edge_criteria(results).items():
        if criterion is not None:
            console.print(f"  {name}: torch share {criterion.torch_share:.2f}; {criterion.evidence}", highlight=False)
    console.print("\n[bold]Per-call overhead[/bold] (trivial artefact y = 2x, batch 1, 1 thread, the same job)")
    for fmt, bench in overhead.items():
        console.print(f"  {fmt}: p50 {1e3 * bench['latency_ms_p50']:.1f} us, p99 {1e3 * bench['latency_ms_p99']:.1f} "
                      f"us over {bench['latency_calls']} calls; import {bench['import_s']:.2f} s; RSS harness "
                      f"{bench['harness_rss_mb']:.0f} MB, runtime imported {bench['runtime_rss_mb']:.0f} MB, peak "
                      f"{bench['peak_rss_mb']:.0f} MB", highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "overhead": overhead,
                                         "claim": {"status": status, "evidence": evidence},
                                         "budget": asdict(BenchBudget())}, indent=2))


if __name__ == "__main__":
    main()
