"""The claim check's edge row: "TF Lite has a clear advantage for a quantized BERT-based classifier on edge".

Judged from the stored fair edge pairs (export/pairs.py) of the BERT-style `transformer` workload at int8:
ExecuTorch's dynamic int8 against LiteRT's dynamic-range int8, and static int8 against full int8, each
pair one set of weights converted by both toolchains. Each pair is compared on four cells, LiteRT's
figure against ExecuTorch's:

    accuracy   digits test accuracy after quantization (size "digits"), else top-1 agreement with the
               float model; better by more than ACCURACY_MARGIN (1 point)
    latency    batch-1 p50 at the export's threads; lower by more than NOISE_THRESHOLD (10%) and more
               than either side's own spread (IQR / median)
    size       the artefact's bytes; smaller by more than NOISE_THRESHOLD
    memory     what the artefact added to its runtime process's RSS (peak minus the RSS once the runtime
               was imported: ExecuTorch's Python binding imports torch, which a device build does not
               carry); lower by more than NOISE_THRESHOLD and more than MEMORY_MARGIN_MB

A cell either side lacks (an artefact that failed its gate is not timed) is left out. A pair favours the
toolchain that is better in more of its cells (else it is even). The claim needs LiteRT to be the clear
choice, so it is *supported* when LiteRT is favoured in more than half of the pairs, *not supported* when
it is not (ExecuTorch favoured, or even) in more than half, and *inconclusive* otherwise or without pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from frameduel.export.pairs import INT8_PRECISIONS, FairPair, Side, fair_pairs
from frameduel.report.claims import majority
from frameduel.stats import NOISE_THRESHOLD

EDGE_CLAIM = "TF Lite has a clear advantage for a quantized BERT-based classifier on edge"
BERT_WORKLOAD = "transformer"
ACCURACY_MARGIN = 0.01  # one point of accuracy, the int8 gates' bound
MEMORY_MARGIN_MB = 1.0  # RSS moves by allocator pages: below a megabyte is no difference
NEEDS = ("needs int8 pairs of the transformer: frameduel export transformer --framework torch --formats "
         "executorch-int8-dynamic,executorch-int8,tflite-int8,tflite-int8-full")


def accuracy_of(side: Side) -> float | None:
    return side.test_accuracy if side.test_accuracy is not None else side.agreement


def higher_wins(margin: float) -> Callable[[float, float, Side, Side], int]:
    return lambda lite, et, *_: (lite > et + margin) - (et > lite + margin)


def lower_wins(relative: float, absolute: float = 0.0, noisy: bool = False) -> Callable[..., int]:
    """+1 when LiteRT's figure is lower by the margin, -1 when ExecuTorch's is, else 0."""
    def compare(lite: float, et: float, lite_side: Side, et_side: Side) -> int:
        spread = max(relative, lite_side.latency_noise, et_side.latency_noise) if noisy else relative
        if lite < et * (1 - spread) and et - lite > absolute:
            return 1
        if et < lite * (1 - spread) and lite - et > absolute:
            return -1
        return 0
    return compare


# cell -> (the figure, how LiteRT's compares with ExecuTorch's: +1 better, -1 worse, 0 even, its text)
CELLS: dict[str, tuple[Callable[[Side], float | None], Callable[..., int], Callable[[float], str]]] = {
    "accuracy": (accuracy_of, higher_wins(ACCURACY_MARGIN), lambda v: f"{100 * v:.1f}%"),
    "latency": (lambda s: s.p50_ms, lower_wins(NOISE_THRESHOLD, noisy=True), lambda v: f"{v:.3f} ms"),
    "size": (lambda s: s.size_bytes, lower_wins(NOISE_THRESHOLD), lambda v: f"{v / 1024:,.0f} KiB"),
    "memory": (lambda s: s.artefact_rss_mb, lower_wins(NOISE_THRESHOLD, MEMORY_MARGIN_MB),
               lambda v: f"+{v:.1f} MB"),
}


def judge_pair(pair: FairPair) -> tuple[str, str]:
    """("LiteRT" | "ExecuTorch" | "even", the evidence line)."""
    lite_wins, et_wins, parts = [], [], []
    for name, (figure, compare, text) in CELLS.items():
        lite, et = figure(pair.litert), figure(pair.executorch)
        if lite is None or et is None:
            parts.append(f"{name} n/a")
            continue
        outcome = compare(lite, et, pair.litert, pair.executorch)
        (lite_wins if outcome > 0 else et_wins if outcome < 0 else []).append(name)
        parts.append(f"{name} {text(lite)} vs {text(et)}")
    if len(lite_wins) == len(et_wins):
        favoured = "even"
    else:
        favoured = "LiteRT" if len(lite_wins) > len(et_wins) else "ExecuTorch"
    line = (f"{pair.model} {pair.precision} ({pair.litert.format} vs {pair.executorch.format}), LiteRT vs "
            f"ExecuTorch: {'; '.join(parts)}. LiteRT better on {', '.join(lite_wins) or 'none'}, ExecuTorch on "
            f"{', '.join(et_wins) or 'none'}: {'even' if favoured == 'even' else 'favours ' + favoured}")
    return favoured, line


def check_edge_claim(exports: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(status, evidence lines) for EDGE_CLAIM."""
    pairs = [p for p in fair_pairs(exports) if p.workload == BERT_WORKLOAD and p.precision in INT8_PRECISIONS]
    if not pairs:
        return "inconclusive", [NEEDS]
    judged = [judge_pair(pair) for pair in pairs]
    favoured = [outcome for outcome, _ in judged]
    lite = favoured.count("LiteRT")
    headline = (f"{len(pairs)} int8 pair(s) of the BERT-style transformer, same weights in both toolchains: LiteRT "
                f"favoured in {lite}, ExecuTorch in {favoured.count('ExecuTorch')}, even in {favoured.count('even')}")
    return majority(lite, len(pairs) - lite, len(pairs)), [headline, *(line for _, line in judged)]
