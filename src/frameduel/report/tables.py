"""The report's tables as plain rows of text: one definition shared by terminal, Markdown and HTML."""

from __future__ import annotations

from typing import Any

from frameduel.analysis.summary import CellSummary, Ratio, RunSummary, group_label
from frameduel.report.document import BreakEven
from frameduel.report.finetuning import LoraComparison
from frameduel.stats import Interval

CELL_COLUMNS = ("workload / task", "fw", "mode", "step ms [95% CI]", "process medians ms", "samples/s (tokens/s)",
                "latency ms p50/p90/p99", "GFLOP/s (% of GEMM)", "compile s", "1st step s", "peak MB", "status")
RATIO_COLUMNS = ("group", "candidate vs baseline", "speedup x [95% CI]", "verdict")
BREAK_EVEN_COLUMNS = ("group", "framework", "mode", "compile s", "eager step ms", "compiled step ms",
                      "steps to repay compile")


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def interval_ms(ci: Interval | None) -> str:
    return "" if ci is None else f" [{ms(ci.low)}, {ms(ci.high)}]"


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def latency_text(cell: CellSummary) -> str:
    """Per-request latency for batch-1 inference; prefill and per-token decode for generation."""
    step, phases = cell.step, cell.phases
    if "decode_token" in phases:
        token = phases["decode_token"]
        return f"prefill {ms(phases['prefill'].p50)}; token {ms(token.p50)}/{ms(token.p90)}/{ms(token.p99)}"
    if step and cell.latency:
        return f"{ms(step.p50)}/{ms(step.p90)}/{ms(step.p99)}"
    return "-"


def flops_text(cell: CellSummary) -> str:
    if cell.gflops is None:
        return "-"
    share = f" ({cell.peak_fraction:.0%})" if cell.peak_fraction is not None else ""
    return f"{cell.gflops:.3g}{share}"


def status_text(cell: CellSummary) -> str:
    """'ok', the failure status with its error line, or the measurement's warnings."""
    if cell.status != "ok":
        return f"{cell.status}: {cell.error or ''}"
    warnings = []
    if cell.noisy:
        warnings.append(f"noisy (IQR/median {cell.step.noise:.0%})")
    if cell.contended:
        warnings.append(f"contended ({cell.background_cores:.1f} cores busy elsewhere)")
    if cell.unstable:
        warnings.append(f"unstable across processes ({cell.process_range})")
    if cell.shared_machine:
        warnings.append(f"parallel (ran beside {cell.concurrent - 1} other timing cell(s))")
    return "; ".join(warnings) or "ok"


def process_medians_text(cell: CellSummary) -> str:
    """The kept processes' medians, then those left out of the estimate with why: '2.98 3.02; left out:
    80.6 (outlier (26.7x slower than the median process))'."""
    kept = " ".join(ms(median) for median in cell.process_medians) or "-"
    if not cell.excluded:
        return kept
    return f"{kept}; left out: " + ", ".join(f"{ms(p.median)} ({p.reason})" for p in cell.excluded)


def cell_rows(summary: RunSummary) -> list[list[str]]:
    """One row per cell; the first column names the comparison group on its first row only."""
    rows, group = [], None
    for cell in summary.cells:
        step = cell.step
        first = cell.spec.comparison_group != group
        group = cell.spec.comparison_group
        rows.append([
            group_label(cell) if first else "", cell.spec.framework, cell.spec.mode,
            f"{ms(step.median)}{interval_ms(cell.step_ci)}" if step else "-",
            process_medians_text(cell),
            number(cell.throughput, 4), latency_text(cell), flops_text(cell), number(cell.compile_s),
            number(cell.first_step_s),
            number(cell.peak_rss_mb, 4), status_text(cell),
        ])
    return rows


# The default terminal table: what fits 100 columns. Flags are one letter each, explained once below it.
COMPACT_COLUMNS = ("group", "fw", "mode", "step ms [95% CI]", "spread", "samples/s", "peak MB", "flags")
FLAGS = {
    "U": "unstable across processes (their medians over 10% apart)",
    "N": "noisy (IQR/median >= 10%)",
    "C": "contended (other processes kept cores busy while it sampled)",
    "E": "partly eager (torch.compile fell back for some or all of the model)",
    "P": "parallel (ran beside other timing cells: --parallel; they shared memory bandwidth and caches)",
    "x": "failed (reason below)",
}


def compact_number(value: float | None) -> str:
    """3 significant figures with k/M: 1234 -> '1.23k', 345678 -> '346k'."""
    if value is None:
        return "-"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def spread_text(cell: CellSummary) -> str:
    """How far apart the worker processes' medians are (max / min - 1); '-' for a single process."""
    return f"{cell.spread:.0%}" if len(cell.process_medians) > 1 else "-"


def cell_flags(cell: CellSummary) -> str:
    if cell.status != "ok":
        return "x"
    present = {"U": cell.unstable, "N": cell.noisy, "C": cell.contended, "E": cell.partly_eager,
               "P": cell.shared_machine}
    return "".join(flag for flag, on in present.items() if on)


def compact_cell_rows(summary: RunSummary) -> list[list[str]]:
    """One row per cell, the group named on its first row only (without the size where all share one)."""
    rows, group = [], None
    with_size = len({cell.spec.size for cell in summary.cells}) > 1
    for cell in summary.cells:
        first = cell.spec.comparison_group != group
        group = cell.spec.comparison_group
        step = f"{ms(cell.step.median)}{interval_ms(cell.step_ci)}" if cell.step else "-"
        rows.append([group_label(cell, with_size) if first else "", cell.spec.framework, cell.spec.mode, step,
                     spread_text(cell), compact_number(cell.throughput), number(cell.peak_rss_mb), cell_flags(cell)])
    return rows


def ratio_rows(ratios: list[Ratio]) -> list[list[str]]:
    return [[r.group, r.label, f"{r.value:.3g} [{r.ci.low:.3g}, {r.ci.high:.3g}]", r.verdict] for r in ratios]


def break_even_rows(items: list[BreakEven]) -> list[list[str]]:
    return [[b.group, b.framework, b.mode, number(b.compile_s), ms(b.eager_step_s), ms(b.compiled_step_s),
             "never (not faster)" if b.steps is None else f"{b.steps:,.0f}"] for b in items]


LOADTEST_COLUMNS = ("model", "exported from", "load", "requests", "samples/s", "latency ms p50/p90/p99", "errors",
                    "stable")


def loadtest_rows(loadtests: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for result in loadtests:
        config, source, latency = result["config"], result.get("source") or {}, result["latency_ms"]
        load = f"{config['mode']} c{config['concurrency']} b{config['batch']}"
        if config.get("rate"):
            load += f" {config['rate']:g}/s"
        origin = f"{source.get('framework', '?')} {source.get('format', '')}"
        rows.append([f"{result['model']}/{result['version']}", origin, load, str(result["requests"]),
                     f"{result['throughput_sps']:,.0f}",
                     f"{latency['p50']:.3g}/{latency['p90']:.3g}/{latency['p99']:.3g}",
                     ", ".join(f"{code}: {n}" for code, n in result["errors"].items()) or "none",
                     "yes" if result.get("stable") else "no"])
    return rows


FINETUNE_COLUMNS = ("model", "fw", "mode", "full ms", "LoRA ms", "x", "full tok/s", "LoRA tok/s", "full MB",
                    "LoRA MB", "train%", "KiB")


def finetune_rows(items: list[LoraComparison]) -> list[list[str]]:
    """Full fine-tune vs LoRA per framework and mode: step ms, LoRA's speedup, tokens/s, peak RSS, the
    trainable share and the adapter's safetensors size (the adapters themselves: finetune_adapters)."""
    return [[c.model, c.framework, c.mode, ms(c.full_step_s),
             ms(c.lora_step_s) if c.lora_status == "ok" else c.lora_status, number(c.speedup),
             compact_number(c.full_tokens_s), compact_number(c.lora_tokens_s), number(c.full_peak_mb),
             number(c.lora_peak_mb), "-" if c.trainable_share is None else f"{100 * c.trainable_share:.2g}",
             "-" if c.adapter_bytes is None else f"{c.adapter_bytes / 1024:.3g}"] for c in items]


def finetune_adapters(items: list[LoraComparison]) -> str:
    """'llama/small: LoRA r8a16-q_proj+v_proj' for each model, the line above the table."""
    adapters = dict.fromkeys(f"{c.model}: LoRA {c.lora}" for c in items)
    return "; ".join(adapters)
