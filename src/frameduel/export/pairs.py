"""Fair edge pairs: PyTorch's on-device toolchain (ExecuTorch) against TensorFlow's (LiteRT), artefact by artefact.

One torch export with both toolchains' formats gives artefacts of the very same weights: ExecuTorch's
lowered from the torch model, LiteRT's converted by TFLiteConverter from the model's Keras twin, which
loads the torch weights through the weight map `frameduel parity` proves exact (routes.py). Both are
gated against the torch model's outputs, and on size "digits" both quantize the same trained model.
A pair matches like with like:

    precision       PyTorch: ExecuTorch        TensorFlow: LiteRT     (XNNPACK kernels in both)
    float32         executorch                 tflite
    dynamic int8    executorch-int8-dynamic    tflite-int8            int8 weights, activations quantized per call
    static int8     executorch-int8            tflite-int8-full       int8 activations, calibrated ranges

Pairs are built from stored export results (ArtefactResult dicts) of one workload and size exported
from torch, and only where both artefacts carry the same weights digest (a side without a manifest,
failed or unsupported, still pairs, so its reason shows). Framework-free: the CLI, the report, the
claim and `advise` read the same figures (Side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (precision, ExecuTorch format, LiteRT format)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("float32", "executorch", "tflite"),
    ("dynamic int8", "executorch-int8-dynamic", "tflite-int8"),
    ("static int8", "executorch-int8", "tflite-int8-full"),
)
INT8_PRECISIONS: tuple[str, ...] = ("dynamic int8", "static int8")
# Each toolchain belongs to one framework: what `advise` credits a pair's figures to.
TOOLCHAIN_FRAMEWORK = {"ExecuTorch": "torch", "LiteRT": "tf"}


@dataclass(frozen=True)
class Side:
    """One artefact of a pair, as figures (None where the artefact has none: failed, or not benchmarked)."""

    toolchain: str  # "ExecuTorch" or "LiteRT"
    format: str
    status: str  # the export status: valid, invalid, unsupported, failed
    reason: str
    size_bytes: int | None
    load_s: float | None
    p50_ms: float | None  # batch 1
    p99_ms: float | None
    samples_per_s: float | None  # at throughput_batch
    throughput_batch: int | None
    agreement: float | None  # top-1 agreement with the float source model
    test_accuracy: float | None  # digits test split (size "digits" only)
    accuracy_drop: float | None  # source accuracy - test_accuracy
    peak_rss_mb: float | None  # the runtime process's peak
    artefact_rss_mb: float | None  # peak minus the RSS once the runtime was imported: what the artefact added
    latency_noise: float  # IQR / median of the batch-1 calls
    outside: dict[str, int] | None  # ops left outside the XNNPACK delegate; None: not reported

    @classmethod
    def of(cls, toolchain: str, result: dict[str, Any]) -> Side:
        manifest = result.get("manifest") or {}
        metric = (manifest.get("validation") or {}).get("metric") or {}
        bench = result.get("benchmark") or {}
        peak, runtime = bench.get("peak_rss_mb"), bench.get("runtime_rss_mb")
        return cls(
            toolchain=toolchain, format=result["format"], status=result["status"], reason=result.get("reason") or "",
            size_bytes=manifest.get("size_bytes"), load_s=bench.get("load_s"), p50_ms=bench.get("latency_ms_p50"),
            p99_ms=bench.get("latency_ms_p99"), samples_per_s=bench.get("throughput_sps"),
            throughput_batch=bench.get("throughput_batch"), agreement=metric.get("agreement"),
            test_accuracy=metric.get("artefact_accuracy"), accuracy_drop=metric.get("accuracy_drop"),
            peak_rss_mb=peak, artefact_rss_mb=peak - runtime if peak is not None and runtime is not None else None,
            latency_noise=bench.get("latency_noise") or 0.0,
            outside=(manifest.get("delegation") or {}).get("outside") if manifest.get("delegation") else None,
        )


@dataclass(frozen=True)
class FairPair:
    workload: str
    size: str
    precision: str  # one of PAIRS' precisions
    executorch: Side
    litert: Side
    source_accuracy: float | None  # the float torch model's digits test accuracy (size "digits")

    @property
    def model(self) -> str:
        return f"{self.workload}-{self.size}"

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.executorch, self.litert


def weights_digest(result: dict[str, Any]) -> str | None:
    return ((result.get("manifest") or {}).get("source") or {}).get("weights_sha256")


def fair_pairs(exports: list[dict[str, Any]]) -> list[FairPair]:
    """Every pair the stored torch exports make (module docstring), by model, then in PAIRS' order."""
    found = {(r["workload"], r.get("size", ""), r["format"]): r for r in exports if r.get("framework") == "torch"}
    pairs = []
    for workload, size in sorted({(workload, size) for workload, size, _ in found}):
        for precision, et_format, lite_format in PAIRS:
            et, lite = found.get((workload, size, et_format)), found.get((workload, size, lite_format))
            if et is None or lite is None:
                continue
            digests = {weights_digest(et), weights_digest(lite)} - {None}
            if len(digests) > 1:  # exported from different weights: not a fair comparison
                continue
            pairs.append(FairPair(workload, size, precision, Side.of("ExecuTorch", et), Side.of("LiteRT", lite),
                                  source_accuracy(et) or source_accuracy(lite)))
    return pairs


def source_accuracy(result: dict[str, Any]) -> float | None:
    metric = (((result.get("manifest") or {}).get("validation") or {}).get("metric")) or {}
    return metric.get("source_accuracy")
