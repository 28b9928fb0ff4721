"""Rich tables for the terminal: the side-by-side cell table and the speedup table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from frameduel.report.summary import CellSummary, Ratio, RunSummary
from frameduel.runner.stats import Interval


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def interval_ms(ci: Interval | None) -> str:
    return "" if ci is None else f" [{ms(ci.low)}, {ms(ci.high)}]"


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def status_text(cell: CellSummary) -> str:
    if cell.status != "ok":
        return f"[red]{cell.status}[/red]: {cell.error or ''}"
    warnings = []
    if cell.noisy:
        warnings.append(f"noisy (IQR/median {cell.step.noise:.0%})")
    if cell.contended:
        warnings.append(f"contended ({cell.background_cores:.1f} cores busy elsewhere)")
    return f"[yellow]{'; '.join(warnings)}[/yellow]" if warnings else "[green]ok[/green]"


def cell_table(summary: RunSummary, title: str) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in ("workload / task", "fw", "mode", "step ms [95% CI]", "samples/s (tokens/s)",
                   "latency ms p50/p90/p99", "compile s", "1st step s", "peak MB", "status"):
        table.add_column(column, overflow="fold")
    group = None
    for cell in summary.cells:
        spec = cell.spec
        if spec.comparison_group != group:
            if group is not None:
                table.add_section()
            group = spec.comparison_group
            label = f"{spec.workload}/{spec.size} {spec.task} b{spec.batch_size} {spec.precision}"
        else:
            label = ""
        step = cell.step
        latency = latency_text(cell)
        table.add_row(
            label, spec.framework, spec.mode,
            f"{ms(step.median)}{interval_ms(cell.step_ci)}" if step else "-",
            number(cell.throughput, 4), latency, number(cell.compile_s), number(cell.first_step_s),
            number(cell.peak_rss_mb, 4), status_text(cell),
        )
    return table


def latency_text(cell: CellSummary) -> str:
    """Per-request latency for batch-1 inference; prefill and per-token decode for generation."""
    step, phases = cell.step, cell.phases
    if "decode_token" in phases:
        token = phases["decode_token"]
        return f"prefill {ms(phases['prefill'].p50)}; token {ms(token.p50)}/{ms(token.p90)}/{ms(token.p99)}"
    if step and cell.latency:
        return f"{ms(step.p50)}/{ms(step.p90)}/{ms(step.p99)}"
    return "-"


def verdict_text(ratio: Ratio) -> str:
    colour = {"faster": "green", "slower": "red"}.get(ratio.verdict, "yellow")
    return f"[{colour}]{ratio.verdict}[/{colour}]"


def ratio_table(ratios: list[Ratio]) -> Table:
    table = Table(title="Speedups (baseline step time / candidate step time; >1 = candidate faster)",
                  header_style="bold")
    for column in ("group", "candidate vs baseline", "speedup x [95% CI]", "verdict"):
        table.add_column(column, overflow="fold")
    for ratio in ratios:
        table.add_row(ratio.group, ratio.label,
                      f"{ratio.value:.3g} [{ratio.ci.low:.3g}, {ratio.ci.high:.3g}]", verdict_text(ratio))
    return table


def print_summary(console: Console, summary: RunSummary, title: str) -> None:
    console.print(cell_table(summary, title))
    if summary.ratios:
        console.print(ratio_table(summary.ratios))
