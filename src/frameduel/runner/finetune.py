"""`frameduel finetune`: LoRA fine-tuning in each framework from the same start, adapters saved in PEFT's format.

    python -m frameduel.runner.finetune RESULT_PATH < job.json     (the worker side)

The first framework's worker builds the LoRA model (the checkpoint's or the preset's base weights,
its own random A, B zero) and writes that start as canonical weights; every other worker loads it,
so all frameworks train the same model on the same batches and their loss curves are comparable
step by step. Each worker then trains, and saves its adapter with its framework's writer: PEFT's
save_pretrained on torch, checkpoints/adapters.py on TF (which PEFT loads; tests prove it).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frameduel import environment
from frameduel.checkpoints import model_config, resolve_workload
from frameduel.checkpoints.adapters import adapter_file_bytes
from frameduel.errors import FrameduelError
from frameduel.frameworks import load_backend
from frameduel.jobs.child import error_line, peak_rss_mb
from frameduel.jobs.envelope import Envelope
from frameduel.jobs.spawn import spawn_job
from frameduel.spec import FRAMEWORKS, MODES, SIZES, RunSpec, check_choice, one_mode_each, split_list
from frameduel.workloads import get_workload
from frameduel.workloads.weight_files import load_weights, save_weights

START_FILE = "start.npz"


@dataclass(frozen=True)
class FinetuneRequest:
    specs: tuple[RunSpec, ...]  # one per framework (and mode), task "finetune"
    steps: int
    out: Path  # adapters go to <out>/<framework>-<mode>/
    learning_rate: float = 1e-3
    timeout_s: float = 600.0


def finetune_request(workload: str | None, checkpoint: Path | None, size: str, frameworks: str, modes: str | None,
                     steps: int, batch_size: int, learning_rate: float, lora_rank: int, lora_alpha: float,
                     lora_targets: str | None, out: Path, threads: int | None, seed: int) -> FinetuneRequest:
    """`finetune`'s options: one spec per framework, each in one mode (spec.one_mode_each; default eager);
    a bad checkpoint, size, LoRA target or count is one line now. Workload None: the checkpoint's family, else
    llama; threads None: all cores."""
    workload, checkpoint_path = resolve_workload(workload, checkpoint, "llama")
    w = get_workload(workload)
    model_config(w, checkpoint_path, check_choice("size", size, SIZES))  # a bad checkpoint: refused now
    lora = w.lora_settings(lora_rank, lora_alpha, split_list(lora_targets))
    if steps < 2 or batch_size < 1 or threads is not None and threads < 1:
        raise FrameduelError("--steps must be >= 2, --batch-size and --threads >= 1")
    chosen = tuple(check_choice("framework", fw, FRAMEWORKS) for fw in split_list(frameworks) or ())
    plain = {fw: MODES[fw][0] for fw in FRAMEWORKS}  # each framework's first mode is its eager one
    mode_of = one_mode_each(chosen, split_list(modes), plain)
    specs = tuple(RunSpec(workload=workload, framework=fw, mode=mode_of[fw], task="finetune", batch_size=batch_size,
                          threads=threads or environment.default_threads(), size=size, seed=seed,
                          checkpoint=checkpoint_path, lora=lora)
                  for fw in chosen)
    return FinetuneRequest(specs, steps, out, learning_rate)


@dataclass
class FinetuneResult:
    spec: RunSpec
    status: str  # ok, failed, timeout
    error: str | None = None
    losses: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)  # every step after the first (which compiles)
    parameters: int = 0
    trainable_parameters: int = 0
    adapter_dir: str | None = None
    adapter_bytes: int = 0
    peak_rss_mb: float | None = None

    @property
    def step_ms(self) -> float | None:
        return float(np.median(self.step_s)) * 1e3 if self.step_s else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["spec"] = self.spec.to_dict()
        return {**data, "step_ms_median": self.step_ms}


def run_finetune(request: FinetuneRequest) -> list[FinetuneResult]:
    """One worker per framework and mode, one after another; the first one's start is everyone's."""
    results = []
    request.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="frameduel-finetune-") as tmp:
        start = Path(tmp) / START_FILE
        for spec in request.specs:
            payload = {"spec": spec.to_dict(), "steps": request.steps, "learning_rate": request.learning_rate,
                       "start": str(start), "write_start": not start.exists(),
                       "adapter_dir": str(request.out / f"{spec.framework}-{spec.mode}")}
            envelope = spawn_job("finetune", payload, request.timeout_s, Path(tmp), f"{spec.framework} worker")
            results.append(FinetuneResult(spec, envelope.status, envelope.error, **envelope.data))
    return results


def loss_agreement(results: list[FinetuneResult]) -> float | None:
    """The largest relative difference between any finished run's loss curve and the first's."""
    done = [r for r in results if r.status == "ok"]
    if len(done) < 2:
        return None
    first = np.asarray(done[0].losses)
    return max(float(np.max(np.abs(np.asarray(r.losses) - first) / np.abs(first))) for r in done[1:])


# -- The worker side: one framework, one mode. --


def finetune_in_worker(job: dict[str, Any]) -> Envelope:
    """The "finetune" job: LoRA steps from the shared start, the adapter saved in PEFT's format."""
    spec = RunSpec.from_dict(job["spec"])
    backend = load_backend(spec.framework)
    try:
        backend.configure(spec)
        workload = get_workload(spec.workload)
        model = backend.build_model(workload, spec)
        start = Path(job["start"])
        if job["write_start"]:
            save_weights(start, backend.export_weights(workload, model))
        else:
            backend.import_weights(workload, model, load_weights(start))
        optimizer = backend.make_optimizer(model, spec, dataclasses.replace(workload.optimizer,
                                                                              learning_rate=job["learning_rate"]))
        train = backend.make_train_fn(model, spec, optimizer)
        config = model_config(workload, spec.checkpoint, spec.size)
        losses, step_s = [], []
        for i in range(job["steps"]):
            inputs, targets = backend.to_tensors(workload, spec, workload.make_batch(config, spec.batch_size,
                                                                                     spec.seed + i))
            started = time.perf_counter()
            loss = float(backend.to_numpy(train(inputs, targets)))  # reading the loss waits for the step
            if i:
                step_s.append(time.perf_counter() - started)
            losses.append(loss)
        saved = backend.save_adapter(workload, model, spec, Path(job["adapter_dir"]))
        total, trainable = backend.parameter_counts(workload, model)
    except Exception as exc:  # noqa: BLE001 - reported as this framework's failure
        return Envelope("failed", error_line(exc), {"peak_rss_mb": peak_rss_mb()})
    return Envelope("ok", data={"losses": losses, "step_s": step_s, "parameters": total,
                                "trainable_parameters": trainable, "adapter_dir": str(saved),
                                "adapter_bytes": adapter_file_bytes(saved), "peak_rss_mb": peak_rss_mb()})
