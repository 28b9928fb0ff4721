"""The measurement loop: trace, first step, warm-up, then adaptive steady-state sampling.

Framework-free: it only sees a Step (run/sync/trace callables), so both frameworks are timed by the
very same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from frameduel.frameworks import Generation, Step
from frameduel.runner.contention import BackgroundLoad
from frameduel.spec import MeasureBudget
from frameduel.stats import ci_converged

clock = time.perf_counter


@dataclass
class Timings:
    step_seconds: list[float]  # steady state, seconds per step
    steps_per_sample: int
    trace_s: float | None
    first_step_s: float
    warmup_steps: int
    background_cores: float  # other processes' busy cores during steady-state sampling

    @property
    def compile_s(self) -> float:
        """Explicit trace plus what the first call cost beyond a steady step (lazy compilation)."""
        steady = sorted(self.step_seconds)[len(self.step_seconds) // 2]
        return (self.trace_s or 0.0) + max(0.0, self.first_step_s - steady)


def timed_call(step: Step) -> float:
    start = clock()
    step.run()
    step.sync()
    return clock() - start


def own_value(value: float) -> float:
    """One process decides alone (see Step.agree)."""
    return value


def warm_up(run_once: Callable[[], float], budget: MeasureBudget,
            agree: Callable[[float], float] = own_value) -> tuple[int, float]:
    """Run at least warmup_steps times and at least warmup_seconds.

    Returns (runs, typical seconds per run): the median of the last few runs, so one outlier does not
    decide how steady-state steps are grouped.
    """
    times: list[float] = []
    started = clock()
    while agree(float(len(times) < budget.warmup_steps or clock() - started < budget.warmup_seconds)):
        times.append(run_once())
    recent = sorted(times[-5:])
    return len(times), agree(recent[len(recent) // 2])


def steps_per_sample(step_estimate_s: float, per_call: bool, budget: MeasureBudget) -> int:
    """Latency cells time every call; throughput cells group short steps so timer cost vanishes."""
    if per_call or step_estimate_s <= 0:
        return 1
    return max(1, math.ceil(budget.min_sample_seconds / step_estimate_s))


def sample(step: Step, repeat: int) -> float:
    """Seconds per step over `repeat` back-to-back steps, with one device sync at the end."""
    start = clock()
    for _ in range(repeat):
        step.run()
    step.sync()
    return (clock() - start) / repeat


def adaptive_samples(take_sample: Callable[[], float], budget: MeasureBudget,
                     agree: Callable[[float], float] = own_value) -> list[float]:
    """Collect samples until the median's CI is within target, or the sample/time budget runs out.

    The CI is checked each time the sample count grows by half, so checking stays cheap.
    """
    samples: list[float] = []
    started = clock()
    next_check = budget.min_samples
    while len(samples) < budget.max_samples:
        samples.append(take_sample())
        elapsed = clock() - started
        out_of_time = elapsed >= budget.max_seconds and len(samples) >= 3
        due = len(samples) >= next_check and elapsed >= budget.min_seconds
        if agree(float(out_of_time or (due and ci_converged(samples, budget.target_ci_rel)))):
            break
        if due:
            next_check = math.ceil(len(samples) * 1.5)
    return samples


def measure(step: Step, budget: MeasureBudget, per_call: bool) -> Timings:
    trace_s = None
    if step.trace is not None:
        start = clock()
        step.trace()
        trace_s = clock() - start
    first_step_s = timed_call(step)
    agree = step.agree or own_value
    warmup_steps, last_warm_s = warm_up(lambda: timed_call(step), budget, agree)
    repeat = steps_per_sample(last_warm_s, per_call, budget)
    with BackgroundLoad(step.peer_pids) as background:
        samples = adaptive_samples(lambda: sample(step, repeat), budget, agree)
    return Timings(
        step_seconds=samples,
        steps_per_sample=repeat,
        trace_s=trace_s,
        first_step_s=first_step_s,
        warmup_steps=warmup_steps,
        background_cores=background.cores,
    )


@dataclass
class GenerationTimings:
    round_seconds: list[float]  # one full generation each: prefill + every decode step
    prefill_seconds: list[float]
    decode_token_seconds: list[float]  # one per generated token, every round
    first_round_s: float  # includes compilation of both phases
    warmup_rounds: int
    background_cores: float

    @property
    def compile_s(self) -> float:
        steady = sorted(self.round_seconds)[len(self.round_seconds) // 2]
        return max(0.0, self.first_round_s - steady)


def generation_round(generation: Generation) -> tuple[float, list[float]]:
    """(prefill seconds, per-token decode seconds) of one generation, each phase synced."""
    start = clock()
    state = generation.prefill()
    generation.sync()
    prefill_s = clock() - start
    tokens = []
    for index in range(generation.new_tokens):
        start = clock()
        state = generation.decode(state, index)
        generation.sync()
        tokens.append(clock() - start)
    return prefill_s, tokens


def measure_generation(generation: Generation, budget: MeasureBudget) -> GenerationTimings:
    """Like measure(), with one whole generation as the sample: compile, warm up, adaptive rounds."""
    first_prefill, first_tokens = generation_round(generation)
    warmup_rounds, _ = warm_up(lambda: sum(generation_round(generation)[1]), budget)
    prefills: list[float] = []
    tokens: list[float] = []

    def one_round() -> float:
        prefill_s, token_s = generation_round(generation)
        prefills.append(prefill_s)
        tokens.extend(token_s)
        return prefill_s + sum(token_s)

    with BackgroundLoad() as background:
        rounds = adaptive_samples(one_round, budget)
    return GenerationTimings(rounds, prefills, tokens, first_prefill + sum(first_tokens), warmup_rounds,
                             background.cores)
