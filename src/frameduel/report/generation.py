"""`frameduel generate`'s output: the token ids, and prefill and per-token decode times per framework and mode."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frameduel.report.terminal import status_style
from frameduel.runner.generate import GenerateRequest, GenerateResult, first_difference


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def run_table(figures: tuple[str, ...]) -> Table:
    """One row per worker run: framework, mode and status, then its figures right-aligned."""
    table = Table(header_style="bold")
    for column in ("framework", "mode", "status"):
        table.add_column(column)
    for column in figures:
        table.add_column(column, justify="right")
    return table


def run_cells(r: Any) -> tuple[str, str, str]:
    """A run's framework, mode and coloured status (any result with .spec and .status)."""
    style = status_style(r.status)
    return r.spec.framework, r.spec.mode, f"[{style}]{r.status}[/{style}]"


def print_errors(console: Console, results: list[Any]) -> None:
    for r in results:
        if r.error:
            console.print(f"{r.spec.framework} {r.spec.mode}: {escape(r.error)}", highlight=False, soft_wrap=True)


def generation_table(results: list[GenerateResult]) -> Table:
    table = run_table(("prefill ms", "decode ms/token p50", "p90", "tokens/s", "first run s", "peak RSS MB"))
    for r in results:
        table.add_row(*run_cells(r), number(r.prefill_ms),
                      number(r.decode_ms(50)), number(r.decode_ms(90)), number(r.tokens_per_s, 1),
                      number(r.first_round_s), number(r.peak_rss_mb, 0))
    return table


def generation_json(request: GenerateRequest, results: list[GenerateResult]) -> dict[str, Any]:
    spec = request.specs[0]
    # Without a checkpoint each framework draws its own random weights, so their ids are not comparable.
    return {"workload": spec.workload, "model": spec.model_label, "prompt": list(request.prompt),
            "same_weights": spec.checkpoint is not None, "results": [r.to_dict() for r in results]}


def print_generation(console: Console, request: GenerateRequest, results: list[GenerateResult]) -> None:
    spec = request.specs[0]
    console.print(f"{spec.workload} {spec.model_label}, {spec.precision}, batch {spec.batch_size}: "
                  f"{len(request.prompt)} prompt tokens, {request.new_tokens} new", highlight=False, soft_wrap=True)
    console.print(generation_table(results))
    print_errors(console, results)
    done = [r for r in results if r.status == "ok"]
    if not done:
        return
    difference = first_difference(results)
    if done[0].spec.checkpoint is None:
        # Without a checkpoint each framework draws its own random weights: ids are not comparable.
        console.print("token ids (weights are each framework's own random init without --checkpoint, so the "
                      f"frameworks' ids differ by design); {done[0].spec.framework} {done[0].spec.mode}'s:",
                      highlight=False, soft_wrap=True)
    elif difference is None:
        console.print(f"token ids, identical in all {len(done)} runs:", highlight=False)
    else:
        a, b, index = difference
        console.print(f"[yellow]token ids differ[/yellow] between {a.spec.framework} {a.spec.mode} and "
                      f"{b.spec.framework} {b.spec.mode} from new token {index} on; {a.spec.framework} "
                      f"{a.spec.mode}'s:", highlight=False)
    for row in done[0].ids:
        console.print(",".join(map(str, row)), highlight=False, soft_wrap=True)
