"""Gate and benchmark a browser artefact (tfjs, onnx-web) in headless Chromium, once per JS backend.

The gate is the one every format has (gate.judge, on a Runtime whose infer runs in the page); the
benchmark is timed inside the page (performance.now(), cross-origin isolated: 5 us resolution), so
a call's time is the runtime's own, not a round trip between Python and the browser. Load time is
the artefact's (tf.loadGraphModel / InferenceSession.create); import time is loading the runtime's JS
and starting its backend. The artefact is valid only when every backend passes.

WebGL on a machine without a GPU runs on SwiftShader, a CPU rasteriser; the page reports the renderer
and the backend is labelled "webgl (software)" then, so its figures are never read as a GPU's.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.browser.page import BrowserSession, RuntimePage, browser_session
from frameduel.errors import FrameduelError
from frameduel.export.bench import BenchBudget, summarize_series
from frameduel.export.gate import judge
from frameduel.export.manifest import Manifest, Validation, read_manifest
from frameduel.export.reference import OUTPUT_NAME, REFERENCE_FILE, Reference, load_reference
from frameduel.jobs.child import error_line

# runtime -> the backends each artefact is gated and timed on, the first being its headline figure.
BROWSER_BACKENDS: dict[str, tuple[str, ...]] = {"tfjs": ("wasm", "webgl"), "onnxruntime-web": ("wasm",)}
SOFTWARE_RENDERERS = re.compile(r"swiftshader|llvmpipe|software", re.I)


class PageRuntime:
    """The Runtime protocol over a loaded page, so the gate runs unchanged."""

    def __init__(self, manifest: Manifest, page: RuntimePage) -> None:
        self.manifest = manifest
        self.page = page

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {OUTPUT_NAME: self.page.infer(inputs[self.manifest.inputs[0].name])}


class BrowserOnlyRuntime:
    """What load_runtime gives for a browser format outside the browser runner (e.g. `frameduel serve`)."""

    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        raise FrameduelError(f"{manifest.format} artefacts run in a browser (`frameduel export --formats "
                             f"{manifest.format}` gates and times them there); serve the onnx or savedmodel artefact")


def backend_label(backend: str, renderer: str) -> str:
    return f"{backend} (software)" if backend == "webgl" and SOFTWARE_RENDERERS.search(renderer) else backend


def page_benchmark(page: RuntimePage, reference: Reference, budget: BenchBudget, threads: int,
                   size_bytes: int) -> dict[str, Any]:
    """Batch-1 latency and max-batch throughput, every call timed in the page (as bench.benchmark does natively)."""
    one, full = reference.batches[1][0], reference.batches[max(reference.batches)][0]
    latency_s = page.time(one, budget.warmup_calls, budget.latency_calls, budget.max_seconds)
    batch_s = page.time(full, budget.warmup_calls, budget.throughput_calls, budget.max_seconds)
    bench = summarize_series(page.runtime, latency_s, batch_s, len(full), threads, size_bytes, page.facts["load_s"],
                             page.facts["import_s"])
    return {**bench.to_dict(), "backend": backend_label(page.backend, page.facts.get("renderer", "")),
            "renderer": page.facts.get("renderer", "")}


def run_backend(session: BrowserSession, manifest: Manifest, backend: str, reference: Reference,
                budget: BenchBudget | None, threads: int) -> tuple[Validation, dict[str, Any] | None]:
    try:
        page = session.open(manifest.runtime, backend)
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot load the artefact fails its gate
        return Validation(False, f"{backend}: cannot load: {error_line(exc)}"), None
    try:
        validation = judge(PageRuntime(manifest, page), reference)
        if not validation.valid:
            return dataclasses.replace(validation, reason=f"{backend}: {validation.reason}"), None
        bench = page_benchmark(page, reference, budget, threads, manifest.size_bytes) if budget else None
        return validation, bench
    except Exception as exc:  # noqa: BLE001 - so does one that cannot run the reference inputs
        return Validation(False, f"{backend}: cannot run: {error_line(exc)}"), None
    finally:
        page.close()


def validate_in_browser(directory: Path, threads: int, budget: BenchBudget | None) -> dict[str, Any]:
    """{"validation", "benchmark"} as validate_worker writes them: the first backend's figures, and
    benchmark["backends"] with every backend's, benchmark["requests"] with what the page and Chromium asked for."""
    manifest = read_manifest(directory)
    reference = load_reference(directory / REFERENCE_FILE)
    results: dict[str, tuple[Validation, dict[str, Any] | None]] = {}
    with browser_session(directory, manifest.artefact, threads) as session:
        for backend in BROWSER_BACKENDS[manifest.runtime]:
            results[backend] = run_backend(session, manifest, backend, reference, budget, threads)
        requests = {"page": list(session.page_requests), "refused": list(session.refused),
                    "chromium_outside": sorted(session.proxy.hosts)}
    validations = [validation for validation, _ in results.values()]
    failed = [v.reason for v in validations if not v.valid]
    first = validations[0]
    validation = dataclasses.replace(
        first, valid=not failed, reason="; ".join(failed),
        max_abs_diff=max((v.max_abs_diff for v in validations if v.max_abs_diff is not None), default=None),
        max_rel_diff=max((v.max_rel_diff for v in validations if v.max_rel_diff is not None), default=None))
    benchmark = None
    if not failed and budget is not None:
        backends = {bench["backend"]: bench for _, bench in results.values() if bench}
        benchmark = {**next(iter(backends.values())), "backends": backends, "requests": requests}
    return {"validation": dataclasses.asdict(validation), "benchmark": benchmark}
