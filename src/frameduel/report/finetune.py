"""`frameduel finetune`'s output: per framework the loss curve's ends, step time, trainable share, adapter."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from frameduel.report.generation import number, print_errors, run_cells, run_table
from frameduel.runner.finetune import FinetuneRequest, FinetuneResult, loss_agreement


def finetune_table(results: list[FinetuneResult]) -> Table:
    table = run_table(("first loss", "last loss", "ms/step", "trainable", "trainable %", "adapter KiB",
                       "peak RSS MB"))
    for r in results:
        share = 100 * r.trainable_parameters / r.parameters if r.parameters else None
        table.add_row(*run_cells(r), number(r.losses[0] if r.losses else None, 4),
                      number(r.losses[-1] if r.losses else None, 4), number(r.step_ms),
                      f"{r.trainable_parameters:,}" if r.parameters else "-", number(share),
                      number(r.adapter_bytes / 1024 if r.adapter_bytes else None, 1), number(r.peak_rss_mb, 0))
    return table


def finetune_json(request: FinetuneRequest, results: list[FinetuneResult]) -> dict[str, Any]:
    spec = request.specs[0]
    return {"workload": spec.workload, "model": spec.model_label, "lora": spec.task_label,
            "loss_max_rel_diff": loss_agreement(results), "results": [r.to_dict() for r in results]}


def print_finetune(console: Console, request: FinetuneRequest, results: list[FinetuneResult]) -> None:
    spec = request.specs[0]
    console.print(f"{spec.workload} {spec.model_label}, {spec.task_label}: {request.steps} Adam steps, batch "
                  f"{spec.batch_size}, same start in every framework", highlight=False, soft_wrap=True)
    console.print(finetune_table(results))
    print_errors(console, results)
    for r in results:
        if r.adapter_dir and not r.error:
            console.print(f"{r.spec.framework} {r.spec.mode} adapter (PEFT format): {r.adapter_dir}",
                          highlight=False, soft_wrap=True)
    agreement = loss_agreement(results)
    if agreement is not None:
        console.print(f"loss curves agree to {agreement:.1e} (largest relative difference from "
                      f"{results[0].spec.framework}'s, any step; fp32)", highlight=False)
