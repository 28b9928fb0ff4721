"""The terminal view of a run: the verdict first, then a cell table that fits 100 columns (every column
with --wide), then the pairwise speedups on request."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from frameduel.analysis.evidence import Evidence
from frameduel.analysis.summary import Ratio, RunSummary
from frameduel.analysis.verdict import verdicts
from frameduel.report.finetuning import lora_comparisons
from frameduel.report.scaling import SCALING_COLUMNS, SCALING_NOTE, scaling_rows, scaling_table_rows
from frameduel.report.tables import (
    CELL_COLUMNS,
    COMPACT_COLUMNS,
    FINETUNE_COLUMNS,
    FLAGS,
    RATIO_COLUMNS,
    cell_rows,
    compact_cell_rows,
    finetune_adapters,
    finetune_rows,
    ms,
    ratio_rows,
)

__all__ = ["cell_table", "ms", "print_summary", "ratio_table"]

VERDICT_STYLES = {"faster": "green", "slower": "red"}


def status_style(status: str) -> str:
    if status == "ok":
        return "green"
    return "yellow" if status.startswith(("noisy", "contended", "unstable")) else "red"


def cell_table(summary: RunSummary, title: str, wide: bool = False) -> Table:
    """Every column (wide), or the columns that fit 100 characters with one-letter flags."""
    columns, rows = (CELL_COLUMNS, cell_rows(summary)) if wide else (COMPACT_COLUMNS, compact_cell_rows(summary))
    table = Table(title=title, header_style="bold", box=None if not wide else box.HEAVY_HEAD, padding=(0, 1),
                  title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("spread", "samples/s", "peak MB") else "left")
    for index, row in enumerate(rows):
        if row[0] and index:
            table.add_section()
        table.add_row(*row[:-1], Text(row[-1], style=status_style(row[-1]) if wide else "yellow"))
    return table


def rows_table(columns: tuple[str, ...], rows: list[list[str]]) -> Table:
    table = Table(header_style="bold", box=None, padding=(0, 1, 0, 0))  # one space between columns: 100 fit
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def ratio_table(ratios: list[Ratio]) -> Table:
    table = Table(title="Speedups (baseline step time / candidate step time; >1 = candidate faster)",
                  header_style="bold")
    for column in RATIO_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in ratio_rows(ratios):
        table.add_row(*row[:-1], Text(row[-1], style=VERDICT_STYLES.get(row[-1], "yellow")))
    return table


def print_verdict(console: Console, summary: RunSummary, evidence: Evidence | None) -> None:
    lines = verdicts(summary, evidence)
    if not lines:
        return
    console.print("[bold]Verdict[/bold] (each framework at its best mode; a winner only where the 95% CI clears "
                  "±2%):", highlight=False)
    for verdict in lines:
        style = "green" if verdict.winner else "yellow"
        console.print(f"  [{style}]{escape(verdict.line())}[/{style}]", highlight=False)


def print_summary(console: Console, summary: RunSummary, title: str, evidence: Evidence | None = None,
                  wide: bool = False, speedups: bool = False) -> None:
    print_verdict(console, summary, evidence)
    console.print(f"[bold]{escape(title)}[/bold]", highlight=False)
    console.print(cell_table(summary, "", wide))
    if not wide:
        shown = {flag for row in compact_cell_rows(summary) for flag in row[-1]}
        legend = "; ".join(f"{flag} {text}" for flag, text in FLAGS.items() if flag in shown)
        if legend:
            console.print(f"flags: {legend}", highlight=False)
        for cell in summary.cells:
            if cell.status != "ok":
                console.print(f"[red]x {cell.spec.key}: {cell.status}[/red] {escape(cell.error or '')}",
                              highlight=False)
    for line in summary.incomparable:
        console.print(f"[yellow]! {escape(line)}[/yellow]", highlight=False, soft_wrap=True)
    scaling = scaling_rows(summary)
    if scaling:
        console.print(f"[bold]Data-parallel scaling[/bold] ({SCALING_NOTE})", highlight=False, soft_wrap=True)
        console.print(rows_table(SCALING_COLUMNS, scaling_table_rows(scaling)))
    finetuning = lora_comparisons(summary)
    if finetuning:
        console.print(f"[bold]Full fine-tune vs LoRA[/bold] ({escape(finetune_adapters(finetuning))}; x = LoRA's "
                      "speedup, tok/s = sequences/s x context, KiB = adapter on disk)", highlight=False, soft_wrap=True)
        console.print(rows_table(FINETUNE_COLUMNS, finetune_rows(finetuning)))
    if speedups and summary.ratios:
        console.print(ratio_table(summary.ratios))
    elif summary.ratios:
        console.print(f"({len(summary.ratios)} pairwise speedups: --speedups; every column: --wide)", highlight=False)
