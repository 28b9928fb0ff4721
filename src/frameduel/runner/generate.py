"""`frameduel generate`: greedy decoding of given prompt tokens in every framework and mode, each in a
process of its own, returning the token ids and the timings of prefill and of each decode step.

    python -m frameduel.runner.generate RESULT_PATH < job.json     (the worker side)

The parent validates everything it can without a framework (the checkpoint, the prompt's token ids
against the vocabulary, the length against the model's positions), so a bad request fails before
any process starts. The token ids come from a generation run after the timed ones, so reading them
back to the host is never timed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frameduel import environment
from frameduel.checkpoints import model_config, resolve_workload
from frameduel.checkpoints.adapters import check_adapter_fits, read_adapter
from frameduel.errors import FrameduelError
from frameduel.frameworks import load_backend
from frameduel.jobs.child import error_line, peak_rss_mb
from frameduel.jobs.envelope import Envelope
from frameduel.jobs.spawn import spawn_job
from frameduel.runner.timing import measure_generation
from frameduel.spec import DEVICES, MeasureBudget, RunSpec, check_choice, check_modes, modes_for, split_list
from frameduel.stats import percentile
from frameduel.workloads import get_workload

# A handful of whole generations per mode: the per-token series has new_tokens samples per round.
GENERATE_BUDGET = MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=3, max_samples=20,
                                min_seconds=0.2, max_seconds=2.0, timeout_s=600)


@dataclass(frozen=True)
class GenerateRequest:
    specs: tuple[RunSpec, ...]  # one per framework and mode, task "generate"
    prompt: tuple[int, ...]
    new_tokens: int


def generate_request(workload: str | None, checkpoint: Path | None, adapter: Path | None, prompt: str,
                     new_tokens: int, size: str, frameworks: str, modes: str | None, precision: str, batch_size: int,
                     device: str | None, threads: int | None, seed: int) -> GenerateRequest:
    """`generate`'s options: one spec per framework and mode (--modes as compare's, spec.modes_for); the
    device, precision, threads and prompt ids checked now. Workload None: the checkpoint's family, else llama;
    device None: this machine's; threads None: all cores."""
    workload, checkpoint_path = resolve_workload(workload, checkpoint, "llama")
    device = check_choice("device", device or environment.default_device(), DEVICES)
    environment.check_device(device)
    environment.check_precision(precision, device)
    if threads is not None and threads < 1:
        raise FrameduelError(f"--threads must be >= 1, got {threads}")
    try:
        prompt_ids = tuple(int(token) for token in split_list(prompt) or ())
    except ValueError:
        raise FrameduelError(f"bad prompt '{prompt}'; give integer token ids, e.g. --prompt 1,2,3") from None
    chosen, requested = split_list(frameworks) or (), split_list(modes)
    check_modes(chosen, requested)
    specs = tuple(RunSpec(workload=workload, framework=fw, mode=mode, task="generate", precision=precision,
                          batch_size=batch_size, device=device, threads=threads or environment.default_threads(),
                          size=size, seed=seed, checkpoint=checkpoint_path,
                          adapter=str(adapter.resolve()) if adapter else None)
                  for fw in chosen for mode in modes_for(fw, requested))
    return GenerateRequest(specs, prompt_ids, new_tokens)


@dataclass
class GenerateResult:
    spec: RunSpec
    status: str  # ok, failed, timeout
    error: str | None = None
    ids: list[list[int]] = field(default_factory=list)  # (B, new_tokens), the prompt not repeated
    prefill_s: list[float] = field(default_factory=list)
    decode_token_s: list[float] = field(default_factory=list)
    first_round_s: float | None = None  # includes compilation
    peak_rss_mb: float | None = None

    @property
    def prefill_ms(self) -> float | None:
        return float(np.median(self.prefill_s)) * 1e3 if self.prefill_s else None

    def decode_ms(self, q: float) -> float | None:
        return percentile(self.decode_token_s, q) * 1e3 if self.decode_token_s else None

    @property
    def tokens_per_s(self) -> float | None:
        """Steady decode rate: sequences x 1 / per-token p50."""
        p50 = self.decode_ms(50)
        return len(self.ids) * 1e3 / p50 if p50 else None

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.spec.framework, "mode": self.spec.mode, "status": self.status, "error": self.error,
                "ids": self.ids, "prefill_ms": self.prefill_ms, "decode_ms_p50": self.decode_ms(50),
                "decode_ms_p90": self.decode_ms(90), "tokens_per_s": self.tokens_per_s,
                "first_round_s": self.first_round_s, "peak_rss_mb": self.peak_rss_mb}


def check_request(request: GenerateRequest) -> None:
    """Token ids inside the vocabulary, a length inside the model's positions: one line otherwise."""
    spec = request.specs[0]
    workload = get_workload(spec.workload)
    if workload.generation is None:
        raise FrameduelError(f"workload '{spec.workload}' is not a language model; generate runs gpt or llama")
    config = model_config(workload, spec.checkpoint, spec.size)
    if not request.prompt:
        raise FrameduelError("empty prompt; give token ids, e.g. --prompt 1,2,3")
    bad = [token for token in request.prompt if not 0 <= token < config.vocab_size]
    if bad:
        raise FrameduelError(f"prompt token {bad[0]} is outside the vocabulary (0..{config.vocab_size - 1})")
    if request.new_tokens < 1:
        raise FrameduelError(f"--new-tokens must be >= 1, got {request.new_tokens}")
    if spec.adapter:  # a PEFT adapter of this model, else one line now rather than a silent misfit later
        settings, adapter = read_adapter(Path(spec.adapter))
        for target in settings.targets:
            check_choice(f"adapter target module of {spec.workload}", target, workload.lora_modules)
        check_adapter_fits(adapter, settings, spec.workload, config, Path(spec.adapter).name)
    limit = max_positions(config)
    if len(request.prompt) + request.new_tokens - 1 > limit:
        raise FrameduelError(f"prompt ({len(request.prompt)}) + new tokens ({request.new_tokens}) exceed the "
                             f"model's {limit} positions; shorten one")


def max_positions(config: Any) -> int:
    """Positions the model can hold: GPT's position table, Llama's trained context."""
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or config.block_size


def run_generate(request: GenerateRequest) -> list[GenerateResult]:
    """One worker process per framework and mode, one after another (they would contend for cores)."""
    check_request(request)
    results = []
    with tempfile.TemporaryDirectory(prefix="frameduel-generate-") as tmp:
        for spec in request.specs:
            payload = {"spec": spec.to_dict(), "prompt": list(request.prompt), "new_tokens": request.new_tokens,
                       "budget": GENERATE_BUDGET.to_dict()}
            envelope = spawn_job("generate", payload, GENERATE_BUDGET.timeout_s, Path(tmp), f"{spec.framework} worker")
            results.append(GenerateResult(spec, envelope.status, envelope.error, **envelope.data))
    return results


def first_difference(results: list[GenerateResult]) -> tuple[GenerateResult, GenerateResult, int] | None:
    """The first pair of finished runs whose ids differ, and the index of the first differing token."""
    done = [r for r in results if r.status == "ok"]
    for other in done[1:]:
        if other.ids != done[0].ids:
            a, b = np.asarray(done[0].ids), np.asarray(other.ids)
            return done[0], other, int(np.argmax((a != b).any(axis=0)))
    return None


# -- The worker side: one framework, one mode. --


def generate_in_worker(payload: dict[str, Any]) -> Envelope:
    """The "generate" job: the greedy ids, and the prefill and per-token decode times."""
    spec = RunSpec.from_dict(payload["spec"])
    backend = load_backend(spec.framework)
    try:
        backend.configure(spec)
        workload = get_workload(spec.workload)
        prompt_ids = np.tile(np.asarray(payload["prompt"], dtype=np.int64), (spec.batch_size, 1))  # (B, P)
        generation = backend.make_generation(workload, spec, None, prompt_ids, payload["new_tokens"])
        timings = measure_generation(generation, MeasureBudget.from_dict(payload["budget"]))
        state = generation.prefill()
        ids = [generation.token_ids(state)]
        for i in range(generation.new_tokens):
            state = generation.decode(state, i)
            ids.append(generation.token_ids(state))
    except Exception as exc:  # noqa: BLE001 - reported as this framework's failure
        return Envelope("failed", error_line(exc), {"peak_rss_mb": peak_rss_mb()})
    return Envelope("ok", data={"ids": np.stack(ids, axis=1).astype(int).tolist(), "prefill_s": timings.prefill_seconds,
                                "decode_token_s": timings.decode_token_seconds, "first_round_s": timings.first_round_s,
                                "peak_rss_mb": peak_rss_mb()})
