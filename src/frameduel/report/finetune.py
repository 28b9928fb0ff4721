"""`frameduel finetune`'s output: per framework the loss curve's ends, step time, trainable share, adapter."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frameduel.report.generation import number
from frameduel.report.terminal import status_style
from frameduel.runner.finetune import FinetuneResult, loss_agreement


def finetune_table(results: list[FinetuneResult]) -> Table:
    table = Table(header_style="bold")
    for column in ("framework", "mode", "status", "first loss", "last loss", "ms/step", "trainable",
                   "trainable %", "adapter KiB", "peak RSS MB"):
        table.add_column(column, justify="left" if column in ("framework", "mode", "status") else "right")
    for r in results:
        style = status_style(r.status)
        share = 100 * r.trainable_parameters / r.parameters if r.parameters else None
        table.add_row(r.spec.framework, r.spec.mode, f"[{style}]{r.status}[/{style}]",
                      number(r.losses[0] if r.losses else None, 4), number(r.losses[-1] if r.losses else None, 4),
                      number(r.step_ms), f"{r.trainable_parameters:,}" if r.parameters else "-", number(share),
                      number(r.adapter_bytes / 1024 if r.adapter_bytes else None, 1), number(r.peak_rss_mb, 0))
    return table


def print_finetune(console: Console, results: list[FinetuneResult], title: str) -> None:
    console.print(title, highlight=False, soft_wrap=True)
    console.print(finetune_table(results))
    for r in results:
        if r.error:
            console.print(f"{r.spec.framework} {r.spec.mode}: {escape(r.error)}", highlight=False, soft_wrap=True)
        elif r.adapter_dir:
            console.print(f"{r.spec.framework} {r.spec.mode} adapter (PEFT format): {r.adapter_dir}",
                          highlight=False, soft_wrap=True)
    agreement = loss_agreement(results)
    if agreement is not None:
        console.print(f"loss curves agree to {agreement:.1e} (largest relative difference from "
                      f"{results[0].spec.framework}'s, any step; fp32)", highlight=False)
