"""The export results table and the fair edge pairs' table, as rows of display strings: the CLI and the report
share them."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from frameduel.export.pairs import FairPair, Side, fair_pairs

COLUMNS = ("workload", "framework", "format", "valid?", "max abs diff", "max rel diff", "metric", "size",
           "load", "p50 (b1)", "p99 (b1)", "throughput", "peak RSS", "reason")
PAIR_COLUMNS = ("model", "precision", "toolchain", "format", "valid?", "size", "load", "p50 (b1)", "p99 (b1)",
                "throughput", "agrees with float", "test accuracy", "peak RSS", "artefact RSS", "outside XNNPACK")
VALID_MARKS = {"valid": "yes", "invalid": "NO", "unsupported": "unsupported", "failed": "failed"}


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

    valid = VALID_MARKS[result["status"]]
    change = -100 * metric["accuracy_drop"] + 0.0 if "accuracy_drop" in metric else 0.0  # + 0.0: no "-0.0"
    accuracy = f"acc {100 * metric['artefact_accuracy']:.1f}% ({change:+.1f})" if "accuracy_drop" in metric else ""
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
        "peak RSS": megabytes(bench.get("peak_rss_mb")),
        "reason": result.get("reason") or "",
    }


def megabytes(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f} MB"


def outside_ops(outside: dict[str, int] | None) -> str:
    """'aten_native_layer_norm_default x5, aten_embedding_default'; 'none' when XNNPACK took every op."""
    if outside is None:
        return ""
    return ", ".join(f"{op} x{count}" if count > 1 else op for op, count in outside.items()) or "none"


def side_cells(side: Side, source_accuracy: float | None) -> list[str]:
    """A pair side's cells, from "format" on (PAIR_COLUMNS)."""
    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.3f} ms"

    accuracy = ""
    if side.test_accuracy is not None and source_accuracy is not None:
        accuracy = f"{100 * side.test_accuracy:.1f}% ({100 * (side.test_accuracy - source_accuracy) + 0.0:+.1f})"
    return [side.format, VALID_MARKS[side.status] + (f": {side.reason}" if side.reason else ""),
            human_bytes(side.size_bytes) if side.size_bytes else "",
            "" if side.load_s is None else f"{1e3 * side.load_s:.1f} ms", ms(side.p50_ms), ms(side.p99_ms),
            f"{side.samples_per_s:,.0f}/s @b{side.throughput_batch}" if side.samples_per_s else "",
            "" if side.agreement is None else f"{100 * side.agreement:.1f}%", accuracy,
            megabytes(side.peak_rss_mb), megabytes(side.artefact_rss_mb), outside_ops(side.outside)]


def pair_rows(pairs: list[FairPair]) -> list[list[str]]:
    """Two rows per pair, ExecuTorch first, in PAIR_COLUMNS order."""
    return [[pair.model, pair.precision, side.toolchain, *side_cells(side, pair.source_accuracy)]
            for pair in pairs for side in pair.sides]


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
    pairs = fair_pairs(results)
    if pairs:
        print_pairs(console, pairs)


def print_pairs(console: Console, pairs: list[FairPair]) -> None:
    table = Table(title="Fair edge pairs: ExecuTorch vs LiteRT, same weights (batch-1 p50/p99; peak RSS of the "
                        "runtime process, and what the artefact added once the runtime was imported)",
                  header_style="bold")
    for column in PAIR_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in pair_rows(pairs):
        table.add_row(*row, style="red" if row[4].startswith(("NO", "failed")) else None)
    console.print(table)
