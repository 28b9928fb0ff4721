"""The measurement loop, driven by steps of known duration (busy-waits, no framework)."""

from __future__ import annotations

import time

from frameduel.frameworks import Step
from frameduel.runner.timing import measure
from frameduel.spec import MeasureBudget


def busy_wait(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def known_step(seconds: float, first_extra: float = 0.0, trace_s: float | None = None) -> Step:
    calls = {"n": 0}

    def run() -> None:
        calls["n"] += 1
        busy_wait(seconds + (first_extra if calls["n"] == 1 else 0.0))

    trace = (lambda: busy_wait(trace_s)) if trace_s else None
    return Step(run=run, sync=lambda: None, trace=trace)


def test_steady_state_median_matches_a_known_step_time():
    budget = MeasureBudget(warmup_steps=2, warmup_seconds=0.0, min_samples=10, min_seconds=0.05,
                           max_seconds=0.5)
    timings = measure(known_step(0.002), budget, per_call=True)
    median = sorted(timings.step_seconds)[len(timings.step_seconds) // 2]
    assert abs(median - 0.002) / 0.002 < 0.25  # generous: shared CI machines are noisy
    assert timings.steps_per_sample == 1
    assert timings.warmup_steps >= 2


def test_first_call_and_trace_are_reported_apart_from_steady_state():
    budget = MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=5, min_seconds=0.0,
                           max_seconds=0.2)
    timings = measure(known_step(0.001, first_extra=0.05, trace_s=0.03), budget, per_call=True)
    assert timings.first_step_s >= 0.05
    assert timings.trace_s >= 0.03
    assert 0.07 <= timings.compile_s <= 0.2  # trace + (first - steady)
    assert max(timings.step_seconds) < 0.05  # the slow first call is not a steady-state sample


def test_short_throughput_steps_are_grouped_and_reported_per_step():
    budget = MeasureBudget(warmup_steps=3, warmup_seconds=0.0, min_samples=5, min_seconds=0.0,
                           max_seconds=0.2, min_sample_seconds=0.005)
    timings = measure(known_step(0.0005), budget, per_call=False)
    assert timings.steps_per_sample >= 5
    median = sorted(timings.step_seconds)[len(timings.step_seconds) // 2]
    assert abs(median - 0.0005) / 0.0005 < 0.5  # generous: busy-waits stretch when descheduled


def test_time_budget_bounds_a_noisy_measurement():
    budget = MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=5, min_seconds=0.0,
                           max_seconds=0.15, target_ci_rel=1e-9)  # an unreachable CI target
    started = time.perf_counter()
    measure(known_step(0.001), budget, per_call=True)
    assert time.perf_counter() - started < 1.0


def test_background_load_sees_another_busy_process():
    import subprocess
    import sys

    from frameduel.runner.contention import BackgroundLoad

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it get going
        with BackgroundLoad() as load:
            time.sleep(0.5)  # we are idle; the hog is not
    finally:
        hog.kill()
        hog.wait()
    assert load.cores > 0.5


def test_our_own_cpu_time_is_what_gets_subtracted():
    from frameduel.runner.contention import own_cpu_seconds

    before, process_before = own_cpu_seconds(), time.process_time()
    sum(i * i for i in range(2_000_000))  # a fixed amount of CPU work, whatever else the machine does
    ours, per_python = own_cpu_seconds() - before, time.process_time() - process_before
    assert ours > 0.05 and abs(ours - per_python) < 0.05  # it is this process's CPU time, not wall time
