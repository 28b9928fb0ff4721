"""Gate and benchmark one artefact, in a process of its own.

    python -m frameduel.export.validate_worker RESULT_PATH < job.json   ({"directory", "threads", "budget"})

Loads the artefact with the runtime its manifest names (timed, after importing that runtime: that
is its load time; the import is timed on its own), runs the
validation gate on the ``reference.npz`` beside it, and, only if it passed, benchmarks it. Writes
{"validation": ..., "benchmark": ... | null, "delegation": {...}}. A load or run failure is a failed
gate with its reason; a crash (a corrupt flatbuffer can take the interpreter down) is recorded by the
parent instead.

Memory, in the benchmark: this process's RSS once the reference data is read and before the runtime
is imported (the harness: Python, numpy, frameduel), after the import (the runtime's libraries), and
its peak once the gate has run (the artefact loaded and run at every gate batch size; the benchmark's
statistics, which allocate for their bootstrap, come after and are left out). The process loads
nothing else, so that peak is the runtime process's, and peak - after-import what the artefact added.
Runtimes whose delegate is applied at load (LiteRT's XNNPACK) say which ops it left out (delegation).
Browser formats (tfjs, onnx-web) are gated and timed in headless Chromium instead (browser_validate.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path
from typing import Any

from frameduel.export.bench import BenchBudget, benchmark
from frameduel.export.browser_validate import BROWSER_BACKENDS, validate_in_browser
from frameduel.export.gate import judge
from frameduel.export.manifest import Validation, read_manifest
from frameduel.export.reference import REFERENCE_FILE, load_reference
from frameduel.export.runtimes import RUNTIME_FACTORIES, load_runtime
from frameduel.jobs.child import error_line, peak_rss_mb, rss_mb
from frameduel.jobs.envelope import Envelope


def import_runtime(directory: Path) -> float:
    """Import the artefact's runtime module (TensorFlow, torch, ...) and return the seconds it took,
    so that load time is the artefact's own and the import is reported beside it."""
    started = time.perf_counter()
    module_name = RUNTIME_FACTORIES[read_manifest(directory).runtime].split(":")[0]
    importlib.import_module(module_name)
    return time.perf_counter() - started


def validate(directory: Path, threads: int, budget: BenchBudget | None) -> dict[str, Any]:
    if read_manifest(directory).runtime in BROWSER_BACKENDS:
        return validate_in_browser(directory, threads, budget)
    reference = load_reference(directory / REFERENCE_FILE)
    harness_mb = rss_mb()
    try:
        import_s = import_runtime(directory)
        runtime_mb = rss_mb()
        started = time.perf_counter()
        runtime = load_runtime(directory, threads=threads)
    except Exception as exc:  # noqa: BLE001 - an artefact that cannot load fails its gate
        return {"validation": dataclasses.asdict(Validation(False, f"cannot load: {error_line(exc)}")),
                "benchmark": None}
    load_s = time.perf_counter() - started
    try:
        validation = judge(runtime, reference)
    except Exception as exc:  # noqa: BLE001 - so does one that cannot run the reference inputs
        validation = Validation(False, f"cannot run: {error_line(exc)}")
    peak_mb = peak_rss_mb()
    delegation = runtime.delegation() if hasattr(runtime, "delegation") else {}
    result: dict[str, Any] = {"validation": dataclasses.asdict(validation), "benchmark": None,
                              "delegation": delegation}
    if validation.valid and budget is not None:
        largest = max(reference.batches)
        manifest = runtime.manifest
        timed = benchmark(runtime, reference.batches[1][0], reference.batches[largest][0], budget, threads,
                          manifest.size_bytes, load_s, import_s)
        result["benchmark"] = dataclasses.replace(timed, harness_rss_mb=harness_mb, runtime_rss_mb=runtime_mb,
                                                  peak_rss_mb=peak_mb).to_dict()
    return result


def validate_in_worker(payload: dict[str, Any]) -> Envelope:
    """The "validate" job: the artefact's gate and (if it passes) benchmark, in the envelope's data."""
    budget = BenchBudget.from_dict(payload["budget"]) if payload.get("budget") else None
    return Envelope("ok", data=validate(Path(payload["directory"]), payload["threads"], budget))
