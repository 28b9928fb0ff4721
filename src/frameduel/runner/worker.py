"""The "measure" job (jobs/kinds.py): measure exactly one cell, in a process of its own.

    payload: {"spec": RunSpec, "budget": MeasureBudget, "cpus": [core, ...] or null}
    envelope: the cell's status and error; data: the Measurement

One process per cell means no shared thread pools or allocators between frameworks, and a peak-RSS
figure that belongs to this cell alone. The worker always tries to return a Measurement; when it
cannot (killed, segfault), the scheduler records the death instead (jobs/spawn.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from frameduel.checkpoints import model_config
from frameduel.checkpoints.adapters import adapter_file_bytes
from frameduel.errors import Unsupported
from frameduel.frameworks import load_backend
from frameduel.jobs.child import error_line, peak_rss_mb, rss_mb
from frameduel.jobs.envelope import Envelope
from frameduel.runner import data_parallel
from frameduel.runner.timing import GenerationTimings, Timings, measure, measure_generation
from frameduel.spec import MeasureBudget, Measurement, RunSpec
from frameduel.workloads import Workload, get_workload


def is_latency_cell(spec: RunSpec) -> bool:
    """Batch-1 inference is about per-request latency, so every call is timed on its own."""
    return spec.task == "infer" and spec.batch_size == 1


def measure_cell(spec: RunSpec, budget: MeasureBudget, backend: ModuleType | None = None) -> Measurement:
    """Measure spec in this process; a data-parallel cell starts its group of workers instead, and each
    of them measures through here with its framework's data-parallel backend."""
    if spec.workers > 1 and backend is None:
        return data_parallel.measure(spec, budget)
    started = time.perf_counter()
    # Where a worker's start-up goes: a spawned one starts its interpreter and imports the framework
    # here; one forked from a zygote inherits both and starts at once.
    process = {"pid": os.getpid(), "parent_pid": os.getppid(),
               "startup_s": max(0.0, time.time() - psutil.Process().create_time())}
    backend = backend or load_backend(spec.framework)
    process["import_s"] = time.perf_counter() - started
    try:
        runtime = backend.configure(spec)
        baseline = rss_mb()
        workload = get_workload(spec.workload)
        batch = workload.make_batch(model_config(workload, spec.checkpoint, spec.size), spec.batch_size, spec.seed)
        setup_started = time.perf_counter()
        if spec.task == "generate":
            generation = backend.make_generation(workload, spec, batch)
            process["setup_s"] = time.perf_counter() - setup_started  # model build (and the rest of the setup)
            measurement = generation_measurement(spec, measure_generation(generation, budget))
        else:
            step = backend.make_step(workload, spec, batch)
            process["setup_s"] = time.perf_counter() - setup_started
            measurement = step_measurement(spec, measure(step, budget, per_call=is_latency_cell(spec)))
            measurement.model_facts = model_facts(backend, workload, spec, step.model)
    except Unsupported as exc:  # the framework cannot run the cell: a reason, not a failure
        return Measurement(spec=spec, status="unsupported", error=str(exc), wall_s=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - any failure becomes this cell's status
        status = "oom" if backend.is_out_of_memory(exc) else "failed"
        return Measurement(spec=spec, status=status, error=error_line(exc), peak_rss_mb=peak_rss_mb(),
                           wall_s=time.perf_counter() - started)
    measurement.peak_rss_mb = peak_rss_mb()
    measurement.baseline_rss_mb = baseline
    measurement.peak_device_mb = backend.peak_device_memory_mb(spec)
    measurement.wall_s = time.perf_counter() - started
    measurement.runtime = {**runtime, **backend.compile_facts(spec), "process": process}
    return measurement


def model_facts(backend: ModuleType, workload: Workload, spec: RunSpec, model: object) -> dict[str, int]:
    """Parameter counts and, for a LoRA cell, the size on disk of its adapter in PEFT's format (what a
    fine-tune ships instead of the whole model). After the timing: none of it is measured time."""
    total, trainable = backend.parameter_counts(workload, model)
    facts = {"parameters": total, "trainable_parameters": trainable}
    if spec.lora:
        with tempfile.TemporaryDirectory(prefix="frameduel-adapter-") as tmp:
            saved = backend.save_adapter(workload, model, spec, Path(tmp))
            facts["adapter_bytes"] = adapter_file_bytes(saved)
    return facts


def step_measurement(spec: RunSpec, timings: Timings) -> Measurement:
    return Measurement(spec=spec, status="ok", step_seconds=timings.step_seconds,
                       steps_per_sample=timings.steps_per_sample, trace_s=timings.trace_s,
                       first_step_s=timings.first_step_s, compile_s=timings.compile_s,
                       warmup_steps=timings.warmup_steps, background_cores=timings.background_cores)


def generation_measurement(spec: RunSpec, timings: GenerationTimings) -> Measurement:
    """A generation's "step" is the whole fixed-length generation; its phases are kept as series."""
    return Measurement(spec=spec, status="ok", step_seconds=timings.round_seconds,
                       series={"prefill": timings.prefill_seconds, "decode_token": timings.decode_token_seconds},
                       first_step_s=timings.first_round_s, compile_s=timings.compile_s,
                       warmup_steps=timings.warmup_rounds, background_cores=timings.background_cores)


def measure_in_worker(payload: dict[str, Any]) -> Envelope:
    if payload.get("cpus"):  # a cell run beside others: before the framework starts its thread pools
        os.sched_setaffinity(0, payload["cpus"])
    measurement = measure_cell(RunSpec.from_dict(payload["spec"]), MeasureBudget.from_dict(payload["budget"]))
    return Envelope(measurement.status, measurement.error, json.loads(measurement.to_json()))
