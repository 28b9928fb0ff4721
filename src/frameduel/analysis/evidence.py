"""Results stored outside a benchmark run that `advise` weighs too: parity, exported artefacts, load tests.

They are matched to a run by workload: parity of the run's workloads tells whether the comparison is
like for like; exported artefacts and served load tests of those workloads tell how each framework's
model fares once deployed. Only the newest result per key counts (``Store.results``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from frameduel.export.manifest import BROWSER_FORMATS, EXECUTORCH_FORMATS
from frameduel.export.pairs import TOOLCHAIN_FRAMEWORK, Side, fair_pairs
from frameduel.loadgen.llm_load import RESULT_KIND as LLM_LOADTEST
from frameduel.parity.data_parallel import DATA_PARALLEL_PARITY
from frameduel.store import Store

# What runs on a device rather than a server: TFLite, ExecuTorch, and the browser formats (TF.js, ONNX Runtime Web).
EDGE_FORMATS = ("tflite", "tflite-int8", "tflite-int8-full", *EXECUTORCH_FORMATS, *BROWSER_FORMATS)


@dataclass(frozen=True)
class Evidence:
    parity: list[dict[str, Any]] = field(default_factory=list)  # ParityReport.to_dict() per direction
    modes: list[dict[str, Any]] = field(default_factory=list)  # ModesReport.to_dict() per workload and size
    exports: list[dict[str, Any]] = field(default_factory=list)  # one per exported artefact
    loadtests: list[dict[str, Any]] = field(default_factory=list)  # one per load test of a frameduel artefact
    data_parallel: list[dict[str, Any]] = field(default_factory=list)  # DataParallelParity.to_dict() per count
    # `loadtest --llm` results: frameduel's LLM servers of the run's workloads, and peers serving the same models
    llm_loadtests: list[dict[str, Any]] = field(default_factory=list)

    def data_parallel_status(self, workload: str, workers: int) -> tuple[str, bool]:
        """(what data-parallel parity proved for N workers of the workload, whether it passed)."""
        reports = [r for r in self.data_parallel if r["workload"] == workload and r["workers"] == workers]
        if not reports:
            return (f"{workload}, {workers} workers: not proven to train what one process trains; run "
                    f"`frameduel parity {workload} --workers {workers}`", False)
        report = reports[-1]
        # Under BatchNorm only torch N vs tf N binds (parity/data_parallel.DataParallelParity.binding).
        binding = {name: j for name, j in report["judgements"].items()
                   if not report["local_statistics"] or name.endswith(f"torch {workers}")}
        worst = {name: max((f["rel"] if f["rel"] is not None else float("inf") for f in j["figures"].values()),
                           default=0.0) for name, j in binding.items()}
        if not report["passed"]:
            why = "; ".join(f"{name}: worst diff {worst[name]:.1e}" for name, j in binding.items() if not j["passed"])
            return (f"{workload}, {workers} workers: data-parallel parity FAILED "
                    f"({why or report['failures'] or 'replicas drifted apart'})", False)
        by_design = ("; BatchNorm normalises each worker's shard, so N workers train another model than one "
                     "process by design (torch N and tf N agree)") if report["local_statistics"] else ""
        return (f"{workload}, {workers} workers: data-parallel parity proven ({report['size']}, float64, loss "
                f"curves and trained state, torch DDP vs tf.distribute; worst diff {max(worst.values()):.1e})"
                f"{by_design}", True)

    def parity_notes(self, workloads: Iterable[str]) -> list[str]:
        """One line per workload of the run: what parity proved, that it failed, or that it never ran."""
        return [self.parity_status(workload)[0] for workload in sorted(set(workloads) - {"gemm"})]

    def parity_caveats(self, workloads: Iterable[str]) -> list[str]:
        """The workloads whose comparison is not proven like for like, in every mode."""
        statuses = (self.parity_status(workload) for workload in sorted(set(workloads) - {"gemm"}))
        return [line for line, proven in statuses if not proven]

    def unproven_workloads(self, workloads: Iterable[str]) -> list[str]:
        """Workloads not proven the same model in both frameworks, in every mode."""
        return [w for w in sorted(set(workloads) - {"gemm"}) if not self.parity_status(w)[1]]

    def parity_status(self, workload: str) -> tuple[str, bool]:
        """(the workload's parity line, whether it proves everything: float64, state, every mode)."""
        reports = [report for report in self.parity if report["workload"] == workload]
        if not reports:
            return (f"{workload}: parity not checked; run `frameduel parity {workload}` to prove both "
                    "implementations are the same model", False)
        directions = ", ".join(report_direction(report) for report in reports)
        failed = [report for report in reports if not report["passed"]]
        if failed:
            why = "; ".join(f"{report_direction(r)}: {(r.get('first_divergence') or {}).get('line') or r.get('error')}"
                            for r in failed)
            return (f"{workload}: parity FAILED ({why}): the two models differ, so their timings compare "
                    "different work", False)
        if any("proven" not in report for report in reports):  # stored by a frameduel before the float64 proof
            worst = max(report.get("forward_rel", float("nan")) for report in reports)
            return (f"{workload}: parity passed an older, weaker check only (fp32 forward and loss curves within "
                    f"1e-4, forward diff {worst:.1e}; {directions}); rerun `frameduel parity {workload}` for the "
                    "float64 proof of outputs, layers and trained state", False)
        proven = list(reports[0]["proven"])
        modes = [m for m in self.modes if m["workload"] == workload]
        modes_line, modes_ok = modes_status(workload, modes)
        if modes_ok:
            proven.append("all modes")
        worst = max(worst_proof_diff(report) for report in reports)
        line = f"{workload}: parity proven ({', '.join(proven)}; {directions}; worst float64 diff {worst:.1e})"
        return (line + (f"; {modes_line}" if modes_line else ""), modes_ok)


def modes_status(workload: str, modes: list[dict[str, Any]]) -> tuple[str, bool]:
    if not modes:
        return f"compiled modes not checked (`frameduel parity {workload}` checks them)", False
    failures = [failure for m in modes for failure in m["failures"]]
    if failures:
        return f"but a compiled mode computes something else than eager: {failures[0]}", False
    return "", True


def worst_proof_diff(report: dict[str, Any]) -> float:
    """The largest float64 figure (the round trip is exact, not a relative diff)."""
    proof = report["judgements"][0]
    return max(figure["rel"] if figure["rel"] is not None else float("inf")
               for label, figure in proof["figures"].items() if "round trip" not in label)


def report_direction(report: dict[str, Any]) -> str:
    return f"{report['size']} {report['source']}->{report['target']}"


def load_evidence(store: Store, workloads: Iterable[str]) -> Evidence:
    wanted = set(workloads)
    return Evidence(
        parity=[r.data for r in store.results("parity") if r.data.get("workload") in wanted],
        modes=[r.data for r in store.results("parity-modes") if r.data.get("workload") in wanted],
        exports=[r.data for r in store.results("export") if r.data.get("workload") in wanted],
        loadtests=[r.data for r in store.results("loadtest") if r.data.get("source", {}).get("workload") in wanted],
        data_parallel=[r.data for r in store.results(DATA_PARALLEL_PARITY) if r.data.get("workload") in wanted],
        llm_loadtests=llm_loadtests_of(store, wanted),
    )


def llm_loadtests_of(store: Store, workloads: set[str]) -> list[dict[str, Any]]:
    """frameduel LLM servers' load tests of these workloads, and the peers' load tests of the same models."""
    results = [r.data for r in store.results(LLM_LOADTEST)]
    models = {r["model"] for r in results if (r.get("source") or {}).get("workload") in workloads}
    return [r for r in results if r["model"] in models]


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


def served_generation(llm_loadtests: list[dict[str, Any]]) -> Figures:
    """Output tok/s of frameduel's continuous-batching LLM servers per workload and framework, at the load of
    highest concurrency that both torch and tf were measured at without errors."""
    by_load: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for result in llm_loadtests:
        source, config = result.get("source") or {}, result["config"]
        batched = source.get("max_running") != 1
        if source.get("framework") and batched and result["requests"] and not result["errors"]:
            key = (source["workload"], result["model"], config["concurrency"], config["input_len"],
                   config["output_len"])
            by_load.setdefault(key, {})[source["framework"]] = result
    best: Figures = {}
    for key, found in sorted(by_load.items(), key=lambda item: item[0][2]):  # a higher concurrency wins
        if {"torch", "tf"} <= set(found):
            best[key[0]] = {fw: Figure(found[fw]["output_throughput"], f"{key[1]} c{key[2]}", 0.0)
                            for fw in ("torch", "tf")}
    return best


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


def pair_figures(exports: list[dict[str, Any]], figure: Callable[[Side], float | None], noise: float | None = None,
                 floor: float = 0.0) -> Figures:
    """One figure per toolchain of each fair edge pair (export/pairs.py), keyed "<model> <precision>": ExecuTorch's
    as torch's, LiteRT's as tf's. noise: the figures' spread (None: the sides' own latency noise); values below
    floor count as floor (a memory figure under a megabyte is no difference)."""
    found: Figures = {}
    for pair in fair_pairs(exports):
        values = {side.toolchain: figure(side) for side in pair.sides}
        if None in values.values():
            continue
        found[f"{pair.model} {pair.precision}"] = {
            TOOLCHAIN_FRAMEWORK[side.toolchain]: Figure(max(values[side.toolchain], floor), side.format,
                                                        side.latency_noise if noise is None else noise)
            for side in pair.sides}
    return found
