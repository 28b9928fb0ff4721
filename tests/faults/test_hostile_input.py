"""Hostile input to a model server: every input a 4xx with a reason, memory bounded, the next request served,
nothing outside the repository opened."""

from __future__ import annotations

import pytest

from tests.faults.hostile_scenarios import HEADER_TIMEOUT_S, MAX_CONNECTIONS, hostile_inputs

pytestmark = pytest.mark.slow
# What bounds the server's memory: the bodies it holds at once (max_buffered_bytes, 256 MB) plus the one JSON body
# being parsed (parsing is on the event loop, one at a time; JSON is limited to 16 MB), which takes ~15x its size
# while its numbers are Python floats, over the server at rest (~110 MB).
PEAK_BOUND_MB = 1024


def test_hostile_inputs_get_a_4xx_with_a_reason_bounded_memory_and_no_read_outside(tmp_path):
    rows = hostile_inputs(tmp_path)
    for row in rows[:-1]:
        details = row.details
        status = details["status"]
        assert status in ("INVALID_ARGUMENT", "NOT_FOUND") or 400 <= int(status) < 500, (row.fault, details)
        assert details["reason"].strip() and "\n" not in details["reason"], row.fault
        assert details["peak_rss_mb"] < PEAK_BOUND_MB, (row.fault, details["peak_rss_mb"])
        assert details["after"] == 200 and not details["opened_outside"], (row.fault, details)
    slowloris = rows[-1].details
    assert set(slowloris["statuses"]) == {408, 429}, slowloris
    assert slowloris["statuses"][429] >= 50 - 5 and slowloris["statuses"][408] >= MAX_CONNECTIONS - 5
    assert slowloris["recover_s"] < HEADER_TIMEOUT_S + 30
    assert slowloris["peak_rss_mb"] < PEAK_BOUND_MB
