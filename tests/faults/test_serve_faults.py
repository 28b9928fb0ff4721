"""Faults in served models: every request answered with its cause, the others keep serving, readiness tells the
truth, SIGTERM drains, a token guards all but health."""

from __future__ import annotations

import pytest

from tests.faults.serve_scenarios import auth_faults, load_failures, runtime_hangs, runtime_raises, sigterm_under_load

pytestmark = pytest.mark.slow


def test_a_runtime_raising_mid_batch_fails_that_batch_with_its_cause_and_the_next_is_served(tmp_path):
    row = runtime_raises(tmp_path)
    details = row.details
    assert details["statuses"] == [500] * 4  # every request of the batch, not only the one that caused it
    assert all("the runtime failed on this batch: RuntimeError: injected fault" in e and "\n" not in e
               for e in details["errors"])
    assert details["after"] == 200 and details["grpc_after"] == "OK"
    assert details["grpc"][0] == "INTERNAL" and "injected fault" in details["grpc"][1]
    assert details["batch_failures"] == 2 and details["request_failures"] == 5  # REST's batch, then gRPC's
    assert row.lost == 0


def test_a_hanging_runtime_gets_504_its_worker_replaced_and_the_loop_never_stalls(tmp_path):
    row = runtime_hangs(tmp_path)
    details = row.details
    assert details["statuses"] == [504] * 3 and all("did not answer within 1 s" in e for e in details["errors"])
    assert details["answered_in"] < 15  # the 1 s deadline and the 300 ms batch window, on a busy machine
    assert details["after"] == 200 and details["other_model"] == 200 and details["ready"] == 200
    assert details["grpc"][0] == "DEADLINE_EXCEEDED"
    assert details["replaced"] == 2
    assert details["live_max_s"] < 2.0  # the event loop blocked on the hung batch for 0.1 s at most, then awaited
    assert row.lost == 0


def test_models_that_fail_to_load_or_vanish_leave_the_others_serving_and_readiness_true_to_it(tmp_path):
    row = load_failures(tmp_path)
    details = row.details
    assert details["server_ready"] == 200 and details["not_ready"] == {"broken": 400, "crashy": 400}
    assert "ONNX Runtime cannot load" in details["reasons"]["broken"]
    assert details["reasons"]["crashy"] == "ValueError: injected fault: 1 cannot be loaded"
    assert details["reload"] == 400 and "cannot load broken version 1" in details["reload_error"]
    assert details["requests"] > 0 and not details["failed"]
    assert details["deleted_ready"] == 200 and "deleted from the repository" in details["deleted_entry"]["reason"]
    assert details["unload"] == 200 and details["gone"] == (404, 404) and details["affine_after"] == 200


def test_sigterm_under_load_answers_what_it_accepted_refuses_the_rest_with_503_and_loses_none(tmp_path):
    row = sigterm_under_load(tmp_path)
    details = row.details
    assert details["returncode"] == 0, details["log"]
    # The server counted what it had admitted when the signal came; every one of them was answered 200 after it.
    assert details["finished_after"] >= details["server_in_flight"] >= 1
    assert details["refused_503"] >= 1 and not details["lost"]
    assert row.recover_s < 30 and row.lost == 0


def test_with_a_token_only_health_is_open_and_every_refusal_is_401_and_counted(tmp_path):
    row = auth_faults(tmp_path)
    details = row.details
    assert details["open"] == ["/v2/health/live (200)", "/v2/health/ready (200)"]
    assert {rpc: code for rpc, code in details["grpc"].items()} == {
        "ServerLive": "OK", "ServerReady": "OK", "ServerMetadata": "UNAUTHENTICATED",
        "ModelReady": "UNAUTHENTICATED", "ModelInfer": "UNAUTHENTICATED"}
    assert details["right"] == 200
    assert details["counted"]["rest"] == details["refused"] and details["counted"]["grpc"] == 3
