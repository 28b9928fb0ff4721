"""Report figures as self-contained PNG data URIs (matplotlib, Agg: no display, no network)."""

from __future__ import annotations

import base64
import io
from types import ModuleType
from typing import TYPE_CHECKING

from frameduel.analysis.summary import CellSummary, RunSummary
from frameduel.spec import FRAMEWORK_INFO

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FRAMEWORK_COLOURS = {name: info.colour for name, info in FRAMEWORK_INFO.items()}


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend, imported when a figure is drawn: every CLI command
    imports the report modules, and pyplot alone adds ~0.4 s to each one's start-up."""
    import matplotlib

    matplotlib.use("Agg")  # headless: reports are written by CI jobs and servers too
    import matplotlib.pyplot as plt

    return plt


def to_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cell_label(cell: CellSummary) -> str:
    return f"{cell.spec.framework} {cell.spec.mode}"


def throughput_bars(group: str, cells: list[CellSummary]) -> str:
    """Throughput per framework/mode with its 95% CI as whiskers."""
    figure, axis = pyplot().subplots(figsize=(6, 2.8))
    values = [cell.throughput for cell in cells]
    whiskers = [[v - c.throughput_ci.low for v, c in zip(values, cells, strict=True)],
                [c.throughput_ci.high - v for v, c in zip(values, cells, strict=True)]]
    axis.bar([cell_label(c) for c in cells], values, yerr=whiskers, capsize=4,
             color=[FRAMEWORK_COLOURS[c.spec.framework] for c in cells])
    unit = "tokens/s" if cells[0].spec.task == "generate" else "samples/s"
    axis.set_ylabel(unit)
    axis.set_title(f"{group}: throughput (95% CI)", fontsize=9)
    axis.tick_params(axis="x", labelsize=8)
    return to_data_uri(figure)


def latency_distribution(group: str, cells: list[CellSummary]) -> str:
    """Per-request latency distributions of batch-1 inference cells (every call timed)."""
    figure, axis = pyplot().subplots(figsize=(6, 2.8))
    data = [[s * 1e3 for round_samples in c.samples for s in round_samples] for c in cells]
    axis.boxplot(data, tick_labels=[cell_label(c) for c in cells], showfliers=False)
    axis.set_title(f"{group}: request latency (box: IQR, whiskers: 1.5 IQR)", fontsize=9)
    axis.set_ylabel("ms")
    axis.set_yscale("log")
    axis.tick_params(axis="x", labelsize=8)
    return to_data_uri(figure)


def memory_bars(summary: RunSummary) -> str:
    """Peak RSS per cell, each measured in its own worker process."""
    cells = [c for c in summary.cells if c.peak_rss_mb]
    figure, axis = pyplot().subplots(figsize=(7, 0.25 * len(cells) + 1))
    axis.barh([f"{c.spec.workload} {c.spec.task} b{c.spec.batch_size} {cell_label(c)}" for c in cells],
              [c.peak_rss_mb for c in cells], color=[FRAMEWORK_COLOURS[c.spec.framework] for c in cells])
    axis.invert_yaxis()
    axis.set_xlabel("peak RSS, MB (whole worker process, framework import included)")
    axis.tick_params(axis="y", labelsize=7)
    return to_data_uri(figure)
