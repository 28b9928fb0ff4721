"""`frameduel report`: a stored run's documents (HTML with its plots, Markdown, JSON) or a sweep's, written to
a folder; for a run, TensorBoard scalars and an MLflow run on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from frameduel.analysis.compare import summarize_stored_run
from frameduel.analysis.evidence import load_evidence
from frameduel.errors import FrameduelError
from frameduel.report.document import build_report
from frameduel.report.mlflow_export import log_to_mlflow
from frameduel.report.render import write_report
from frameduel.report.sweep_document import write_sweep_report
from frameduel.report.tensorboard import write_tensorboard
from frameduel.store import Store
from frameduel.sweep import stored_sweep


def write_stored_report(store: Store, run_id: str, out: Path, tensorboard: Path | None, mlflow: str | None,
                        say: Callable[[str], None]) -> None:
    """Write run_id's (or sweep run_id's) report into out; say() is told each file written, then the MLflow run."""
    if stored_sweep(store, run_id) is not None:
        if tensorboard is not None or mlflow is not None:
            raise FrameduelError("--tensorboard and --mlflow apply to compare runs, not sweeps; leave them out")
        for path in write_sweep_report(store, run_id, out):
            say(f"wrote {path}")
        return
    run, summary = summarize_stored_run(store, run_id)
    try:
        evidence = load_evidence(store, summary.workloads)
        written = write_report(build_report(run, summary, evidence=evidence), out)
        if tensorboard is not None:
            written.append(write_tensorboard(summary, run_id, tensorboard))
    except OSError as exc:
        raise FrameduelError(f"cannot write the report to {out}: {exc.strerror}; pass --out DIR") from None
    for path in written:
        say(f"wrote {path}")
    if mlflow is not None:
        mlflow_run = log_to_mlflow(run, summary, mlflow, [path for path in written if path.parent == out])
        say(f"logged MLflow run {mlflow_run} (experiment 'frameduel') to {mlflow}")
