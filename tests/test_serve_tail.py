"""Tail latency under load (issue 17): p99 stays within a few p50s at concurrency 32, one-sample requests.

The tail came from full garbage collections walking the start-up heap (50-550 ms pauses, each stalling
every request in flight) and from tiny batches waiting on GIL hand-offs to the compute thread. The
server runs in a process of its own, as in production: a server in the test's thread would share the
load generator's interpreter lock and measure the two together. Margins are generous (CI has 2 noisy
cores): before the fix p99 was 5-8x p50 on a tiny model, after it 1.5-2x.
"""

from __future__ import annotations

from pathlib import Path

from frameduel.loadgen.loadtest import LoadTestConfig, run_loadtest
from tests.serve_support import serving_process, write_affine_model

MAX_TAIL_RATIO = 5.0  # p99 / p50


def test_p99_stays_within_five_p50s_at_concurrency_32(tmp_path: Path):
    write_affine_model(tmp_path, "affine", 1)
    with serving_process(tmp_path, "--threads", "1") as server:
        result = run_loadtest(LoadTestConfig(f"{server.http}/v2/models/affine", concurrency=32, duration_s=4,
                                             warmup_s=1, binary=False))
    latency = result["latency_ms"]
    assert not result["errors"] and result["requests"] > 0
    assert latency["p99"] <= MAX_TAIL_RATIO * latency["p50"], latency
