"""The export results table, as rows of display strings: the CLI and the report share it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = ("workload", "framework", "format", "valid?", "max abs diff", "max rel diff", "metric", "size",
           "load", "p50 (b1)", "p99 (b1)", "throughput", "reason")


def human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def export_row(result: dict[str, Any]) -> dict[str, str]:
    """One stored export result (ArtefactResult.to_dict() or the store's data) -> display strings."""
    validation = (result.get("manifest") or {}).get("validation") or {}
    bench = result.get("benchmark") or {}
    metric = validation.get("metric") or {}

    def number(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    valid = {"valid": "yes", "invalid": "NO", "unsupported": "unsupported", "failed": "failed"}[result["status"]]
    change = -100 * metric["accuracy_drop"] + 0.0 if metric else 0.0  # + 0.0: no "-0.0"
    accuracy = f"acc {100 * metric['artefact_accuracy']:.1f}% ({change:+.1f})" if metric else ""
    return {
        "workload": f"{result['workload']}-{result['size']}", "framework": result["framework"],
        "format": result["format"], "valid?": valid,
        "max abs diff": number(validation.get("max_abs_diff"), ".1e"),
        "max rel diff": number(validation.get("max_rel_diff"), ".1e"),
        "metric": accuracy,
        "size": human_bytes(bench["size_bytes"]) if bench else "",
        "load": f"{1e3 * bench['load_s']:.0f} ms" if bench else "",
        "p50 (b1)": f"{bench['latency_ms_p50']:.3f} ms" if bench else "",
        "p99 (b1)": f"{bench['latency_ms_p99']:.3f} ms" if bench else "",
        "throughput": f"{bench['throughput_sps']:,.0f}/s @b{bench['throughput_batch']}" if bench else "",
        "reason": result.get("reason") or "",
    }


def export_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """A browser artefact gives one row per backend it was timed on ("tfjs wasm", "tfjs webgl (software)"),
    every other artefact its one row."""
    backends = (result.get("benchmark") or {}).get("backends")
    if not backends:
        return [export_row(result)]
    return [export_row({**result, "format": f"{result['format']} {label}", "benchmark": bench})
            for label, bench in backends.items()]


def print_export(console: Console, results: list[dict[str, Any]], title: str = "") -> None:
    """One export's table: workload and framework are in the title, so their columns are left out."""
    columns = COLUMNS[2:]
    table = Table(title=title or None, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in (row for result in results for row in export_rows(result)):
        style = {"NO": "red", "failed": "red", "unsupported": "dim"}.get(row["valid?"])
        table.add_row(*(row[column] for column in columns), style=style)
    console.print(table)
