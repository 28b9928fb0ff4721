"""The claim check's browser row: "TF.js makes TensorFlow the standard choice for the browser".

Judged from the run's own browser exports (kind "export", formats tfjs and onnx-web), once both
frameworks' models have run on both runtimes (else *inconclusive*): the claim needs TF.js to be what
makes TensorFlow the browser's choice, so it is *supported* only when TF.js is faster (batch-1 p50 on
its best backend) than ONNX Runtime Web for most of those models, and *not supported* otherwise: a
torch model reaches the browser as well through ONNX Runtime Web, so then the browser does not favour
TensorFlow. TF.js counts as faster only by more than the noise
threshold (its p50 under ONNX Runtime Web's by more than NOISE_THRESHOLD of it): a p50 within the
noise of the other names no winner, as everywhere in the report.
"""

from __future__ import annotations

from typing import Any

from frameduel.stats import NOISE_THRESHOLD

BROWSER_CLAIM = "TF.js makes TensorFlow the standard choice for the browser"
RUNTIME_OF = {"tfjs": "TF.js", "onnx-web": "ONNX Runtime Web"}


def browser_latencies(exports: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """(workload, framework, format) -> best batch-1 p50 (ms) over the valid artefact's backends."""
    found: dict[tuple[str, str, str], float] = {}
    for result in exports:
        bench = result.get("benchmark") or {}
        if result.get("format") in RUNTIME_OF and result.get("status") == "valid" and bench.get("backends"):
            found[result["workload"], result["framework"], result["format"]] = min(
                b["latency_ms_p50"] for b in bench["backends"].values())
    return found


def check_browser_claim(exports: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(status, evidence lines) for BROWSER_CLAIM."""
    latencies = browser_latencies(exports)
    pairs = sorted({(w, fw) for w, fw, _ in latencies})
    both_runtimes = [(w, fw) for w, fw in pairs if (w, fw, "tfjs") in latencies and (w, fw, "onnx-web") in latencies]
    frameworks = {fw for _, fw in both_runtimes}
    if frameworks != {"torch", "tf"}:
        return "inconclusive", ["needs tfjs and onnx-web artefacts from both frameworks (frameduel export "
                                "--formats tfjs,onnx-web)"]
    lines, tfjs_faster = [], 0
    for workload, framework in both_runtimes:
        tfjs, ort = latencies[workload, framework, "tfjs"], latencies[workload, framework, "onnx-web"]
        tfjs_faster += tfjs < (1 - NOISE_THRESHOLD) * ort
        lines.append(f"{workload} from {framework}: TF.js {tfjs:.3f} ms, ONNX Runtime Web {ort:.3f} ms (p50, batch 1)")
    headline = (f"both frameworks' models run on both runtimes; TF.js is faster (beyond the {NOISE_THRESHOLD:.0%} "
                f"noise threshold) in {tfjs_faster} of {len(both_runtimes)}")
    status = "supported" if tfjs_faster > len(both_runtimes) / 2 else "not supported"
    return status, [headline, *lines]
