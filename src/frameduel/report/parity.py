"""Terminal rendering of a parity report: verdict lines, then the layer-by-layer divergence table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from frameduel.parity.check import ParityReport


def mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]FAIL[/red]"


def print_parity(console: Console, report: ParityReport) -> None:
    tol = report.tolerances
    title = f"{report.workload}/{report.size}: {report.source} -> {report.target}"
    if report.error:
        console.print(f"[red]parity {title} could not run:[/red] {report.error}")
        return
    verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
    console.print(f"[bold]parity {title}[/bold]: {verdict}")
    console.print(f"  weights round trip  max abs {report.weights_max_abs:.2e} (tol {tol.weights:g})  "
                  f"{mark(report.weights_ok)}")
    console.print(f"  forward output      rel {report.forward_rel:.2e} (tol {tol.forward:g})  "
                  f"{mark(report.forward_ok)}")
    for optimizer, rel in report.loss_rel.items():
        curve = report.loss_source[optimizer]
        console.print(f"  loss curve {optimizer:<8} max rel {rel:.2e} over {len(curve)} steps (tol {tol.loss:g}), "
                      f"loss {curve[0]:.4f} -> {curve[-1]:.4f}  {mark(rel <= tol.loss)}")
    first = report.first_divergent_layer
    console.print(f"  first divergent layer: {first.name if first else 'none'}")
    table = Table(title=f"layer-by-layer divergence ({report.source} is the reference)", header_style="bold")
    for column in ("layer (torch name)", "shape", "max abs diff", "rel diff", ""):
        table.add_column(column)
    for layer in report.layers:
        table.add_row(layer.name, "x".join(map(str, layer.shape)), f"{layer.max_abs:.2e}", f"{layer.rel:.2e}",
                      mark(layer.ok) + ("  <- first divergence" if layer is first else ""))
    console.print(table)
