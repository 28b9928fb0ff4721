"""Fuzz the model server from its own OpenAPI schema: whatever schemathesis sends, never a 5xx.

Requests go over real HTTP to a server on 127.0.0.1. Cases come from schemathesis' positive (valid
by the schema) and negative (violating it) generators, for random model names and for the served
model, so the infer path is reached; examples per operation are bounded to keep the test short.
"""

from __future__ import annotations

import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frameduel.serve.app import ServerConfig
from frameduel.serve.batcher import BatchingConfig
from tests.serve_support import running_server, write_affine_model

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    repo = tmp_path_factory.mktemp("fuzz-repo")
    write_affine_model(repo, "affine", 1)
    with running_server(ServerConfig(repo, batching=BatchingConfig(max_queue_delay_us=0))) as url:
        yield url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def case_strategy(operation) -> st.SearchStrategy:
    modes = list(schemathesis.GenerationMode)
    strategies = [operation.as_strategy(mode) for mode in modes]
    if "{model}" in operation.path:
        strategies += [operation.as_strategy(mode, path_parameters={"model": "affine"}) for mode in modes]
    return st.one_of(strategies)


def test_no_request_gets_a_server_error(server: tuple[str, schemathesis.BaseSchema]):
    url, schema = server
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path.endswith("/infer") for op in operations)

    for operation in operations:
        @given(case=case_strategy(operation))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def never_a_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=url, timeout=30)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

        never_a_server_error()
    # The fuzzing reached the model's input checks, not only the unknown-model 404.
    text = httpx.get(f"{url}/metrics").text
    assert re.search(r'frameduel_infer_requests_total\{code="4\d\d",model="affine"', text)
