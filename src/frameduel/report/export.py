"""`frameduel export`'s output: one line per format as it ends, then every artefact's gate and benchmark."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from frameduel.export.run import ArtefactResult, ExportRequest
from frameduel.export.table import print_export


def artefact_line(result: ArtefactResult) -> str:
    return f"{result.format}: {result.status}{' - ' + result.reason if result.reason else ''}"


def export_json(export_id: str, results: list[ArtefactResult]) -> dict[str, Any]:
    return {"export_id": export_id, "results": [result.to_dict() for result in results]}


def print_export_run(console: Console, export_id: str, results: list[ArtefactResult], request: ExportRequest) -> None:
    print_export(console, [result.to_dict() for result in results],
                 title=f"{export_id}: {request.workload} {request.model_label} from {request.framework}, "
                 f"{request.threads} threads -> {request.out}")
