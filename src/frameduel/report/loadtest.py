"""`frameduel loadtest`'s output: one row of throughput, latency percentiles, errors and stability."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = ("model", "mode", "conc.", "batch", "req/s", "samples/s", "p50 ms", "p90 ms", "p99 ms", "errors", "stable")


def print_loadtest(console: Console, result: dict[str, Any], mode: str, concurrency: int, batch: int) -> None:
    table = Table(header_style="bold")
    for column in COLUMNS:
        table.add_column(column)
    latency = result["latency_ms"]
    table.add_row(f"{result['model']}/{result['version']}", mode, str(concurrency), str(batch),
                  f"{result['throughput_rps']:.1f}", f"{result['throughput_sps']:.1f}",
                  *(f"{latency[p]:.2f}" for p in ("p50", "p90", "p99")),
                  ", ".join(f"{code}: {n}" for code, n in result["errors"].items()) or "0",
                  "yes" if result["stable"] else f"no (noise {result['window_noise']:.0%})")
    console.print(table)
