"""Rich tables for the terminal: the side-by-side cell table and the speedup table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from frameduel.report.summary import Ratio, RunSummary
from frameduel.report.tables import CELL_COLUMNS, RATIO_COLUMNS, cell_rows, ms, ratio_rows

__all__ = ["cell_table", "ms", "print_summary", "ratio_table"]

VERDICT_STYLES = {"faster": "green", "slower": "red"}


def status_style(status: str) -> str:
    if status == "ok":
        return "green"
    return "yellow" if status.startswith(("noisy", "contended")) else "red"


def cell_table(summary: RunSummary, title: str) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in CELL_COLUMNS:
        table.add_column(column, overflow="fold")
    for index, row in enumerate(cell_rows(summary)):
        if row[0] and index:
            table.add_section()
        table.add_row(*row[:-1], Text(row[-1], style=status_style(row[-1])))
    return table


def ratio_table(ratios: list[Ratio]) -> Table:
    table = Table(title="Speedups (baseline step time / candidate step time; >1 = candidate faster)",
                  header_style="bold")
    for column in RATIO_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in ratio_rows(ratios):
        table.add_row(*row[:-1], Text(row[-1], style=VERDICT_STYLES.get(row[-1], "yellow")))
    return table


def print_summary(console: Console, summary: RunSummary, title: str) -> None:
    console.print(cell_table(summary, title))
    if summary.ratios:
        console.print(ratio_table(summary.ratios))
