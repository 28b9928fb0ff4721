"""Log a run to an MLflow tracking store: one MLflow run per frameduel run, where teams already look.

Metrics are the same scalars the TensorBoard export writes (step ms, throughput, compile s, peak MB,
GFLOP/s per cell; speedups per comparison group); params are the plan and environment facts a reader
filters by; the written report files become the run's artifacts. MLflow is an optional extra.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from frameduel.analysis.summary import RunSummary
from frameduel.errors import FrameduelError
from frameduel.report.tensorboard import run_scalars
from frameduel.store import RunRecord

EXPERIMENT = "frameduel"
MAX_BATCH_METRICS = 1000  # MLflow's log_batch limit
MAX_BATCH_PARAMS = 100


def mlflow_key(tag: str) -> str:
    """MLflow keys allow letters, digits, _ - . / and spaces; anything else (e.g. parentheses) becomes _."""
    return re.sub(r"[^\w\-. /]", "_", tag)


def run_params(run: RunRecord) -> dict[str, str]:
    env: dict[str, Any] = run.environment
    packages = env.get("packages", {})
    params = {
        "preset": run.plan.get("preset", ""),
        "cpu": env.get("cpu", {}).get("model", ""),
        "logical_cores": env.get("cpu", {}).get("logical_cores", ""),
        "gpus": ", ".join(gpu.get("name", "") for gpu in env.get("gpus", [])) or "none",
        **{f"version.{name}": version for name, version in packages.items() if version},
    }
    return {mlflow_key(key): str(value)[:500] for key, value in params.items()}


def tracking_uri_for(target: str) -> str:
    """A URI passes through; a plain folder means MLflow's file store, which MLflow 3 keeps behind an opt-in."""
    if "://" in target or target.startswith(("databricks", "sqlite:")):
        return target
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return Path(target).resolve().as_uri()


def log_to_mlflow(run: RunRecord, summary: RunSummary, target: str, artifacts: list[Path]) -> str:
    """Create the MLflow run, log params, metrics and artifacts; return the MLflow run id."""
    try:
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise FrameduelError("MLflow export needs MLflow: pip install 'frameduel[mlflow]'") from None
    try:
        client = MlflowClient(tracking_uri_for(target))
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
        mlflow_run = client.create_run(experiment_id, run_name=run.id,
                                       tags={"frameduel.run_id": run.id, "frameduel.status": run.status})
        run_id = mlflow_run.info.run_id
        now_ms = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(tag), float(value), now_ms, 0) for tag, value in run_scalars(summary).items()]
        params = [Param(key, value) for key, value in run_params(run).items()]
        for start in range(0, len(metrics), MAX_BATCH_METRICS):
            client.log_batch(run_id, metrics=metrics[start:start + MAX_BATCH_METRICS])
        for start in range(0, len(params), MAX_BATCH_PARAMS):
            client.log_batch(run_id, params=params[start:start + MAX_BATCH_PARAMS])
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
    except MlflowException as exc:
        message = str(exc).splitlines()[0]
        raise FrameduelError(f"MLflow rejected the export to {target}: {message}") from None
    return run_id
