"""Results stored outside a benchmark run that `advise` weighs too: parity, exported artefacts, load tests.

They are matched to a run by workload: parity of the run's workloads tells whether the comparison is
like for like; exported artefacts and served load tests of those workloads tell how each framework's
model fares once deployed. Only the newest result per key counts (``Store.results``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from frameduel.store import Store

EDGE_FORMATS = ("tflite", "tflite-int8", "tflite-int8-full")


@dataclass(frozen=True)
class Evidence:
    parity: list[dict[str, Any]] = field(default_factory=list)  # ParityReport.to_dict() per direction
    exports: list[dict[str, Any]] = field(default_factory=list)  # one per exported artefact
    loadtests: list[dict[str, Any]] = field(default_factory=list)  # one per load test of a frameduel artefact

    def parity_notes(self, workloads: Iterable[str]) -> list[str]:
        """One line per workload of the run: parity proven, failed, or never checked."""
        lines = []
        for workload in sorted(set(workloads) - {"gemm"}):
            reports = [report for report in self.parity if report["workload"] == workload]
            if not reports:
                lines.append(f"{workload}: parity not checked; run `frameduel parity {workload}` to prove both "
                             "implementations are the same model")
            elif all(report["passed"] for report in reports):
                worst = max(report["forward_rel"] for report in reports)
                lines.append(f"{workload}: parity proven ({', '.join(report_direction(r) for r in reports)}; "
                             f"forward diff {worst:.1e})")
            else:
                failed = [report_direction(r) for r in reports if not r["passed"]]
                lines.append(f"{workload}: parity FAILED ({', '.join(failed)}): the two models differ, so their "
                             "timings compare different work")
        return lines


def report_direction(report: dict[str, Any]) -> str:
    return f"{report['size']} {report['source']}->{report['target']}"


def load_evidence(store: Store, workloads: Iterable[str]) -> Evidence:
    wanted = set(workloads)
    return Evidence(
        parity=[r.data for r in store.results("parity") if r.data.get("workload") in wanted],
        exports=[r.data for r in store.results("export") if r.data.get("workload") in wanted],
        loadtests=[r.data for r in store.results("loadtest") if r.data.get("source", {}).get("workload") in wanted],
    )


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


# -- per-framework figures from stored export and load-test results --------------------------------
# Each returns {workload: {framework: Figure}}; the framework is the *source* framework the artefact
# was exported from, whatever runtime then ran it.


@dataclass(frozen=True)
class Figure:
    value: float
    source: str  # what it came from, e.g. the artefact's format
    noise: float  # IQR / median of the samples behind value: differences below it are not evidence


Figures = dict[str, dict[str, Figure]]


def best_artefact_latency(exports: list[dict[str, Any]], formats: tuple[str, ...] | None = None) -> Figures:
    """Lowest batch-1 p50 latency (ms) of any valid artefact (of the given formats) per source framework."""
    best: Figures = {}
    for result in exports:
        bench = result.get("benchmark")
        if result.get("status") != "valid" or not bench or (formats and result["format"] not in formats):
            continue
        current = best.setdefault(result["workload"], {}).get(result["framework"])
        if current is None or bench["latency_ms_p50"] < current.value:
            best[result["workload"]][result["framework"]] = Figure(bench["latency_ms_p50"], result["format"],
                                                                   bench.get("latency_noise", 0.0))
    return best


def export_success(exports: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """framework -> (valid artefacts, attempted). Unsupported pairs (a SavedModel from torch) don't count."""
    counts: dict[str, tuple[int, int]] = {}
    for result in exports:
        if result.get("status") == "unsupported":
            continue
        valid, attempted = counts.get(result["framework"], (0, 0))
        counts[result["framework"]] = (valid + (result["status"] == "valid"), attempted + 1)
    return counts


def best_served_throughput(loadtests: list[dict[str, Any]]) -> Figures:
    """Highest error-free served samples/s per workload and source framework."""
    best: Figures = {}
    for result in loadtests:
        source = result.get("source") or {}
        if not source.get("framework") or result.get("errors") or not result.get("requests"):
            continue
        label = f"{source.get('format')} c{result['config']['concurrency']} b{result['config']['batch']}"
        current = best.setdefault(source["workload"], {}).get(source["framework"])
        if current is None or result["throughput_sps"] > current.value:
            best[source["workload"]][source["framework"]] = Figure(result["throughput_sps"], label,
                                                                   result.get("window_noise", 0.0))
    return best
