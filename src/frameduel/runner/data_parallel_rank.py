"""The "measure" part of a data-parallel group's worker (jobs/rank.py runs it on every rank): the cell's
train step, timed by runner/worker.measure_cell with the framework's data-parallel backend, then the
gradient all-reduce on its own (series "allreduce")."""

from __future__ import annotations

import json
from typing import Any

from frameduel.frameworks import load_backend
from frameduel.jobs.envelope import Envelope
from frameduel.runner.worker import measure_cell
from frameduel.spec import MeasureBudget, RunSpec

ALLREDUCE_REPEATS = 20


def measure_rank(job: dict[str, Any], spec: RunSpec) -> Envelope:
    backend = load_backend(spec.framework, data_parallel=True)
    measurement = measure_cell(spec, MeasureBudget.from_dict(job["budget"]), backend=backend)
    if measurement.status == "ok":
        measurement.series["allreduce"] = backend.allreduce_seconds(spec, ALLREDUCE_REPEATS)
    # Leave the group before exiting: gloo's threads, still running at interpreter exit, abort the
    # process ("terminate called without an active exception") after its result is written.
    backend.close()
    return Envelope(measurement.status, measurement.error, {"measurement": json.loads(measurement.to_json())})
