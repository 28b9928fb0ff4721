"""The REST protocol's JSON is strict JSON: non-finite outputs spelled as strings, bare NaN refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frameduel.v2.protocol import (
    InferRequest,
    ServeError,
    decode_infer_response,
    encode_infer_response,
    parse_infer_request,
    parse_json,
)


def strict_loads(text: bytes) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_outputs_are_valid_json_and_read_back():
    logits = np.array([[1.5, np.nan, np.inf, -np.inf]], dtype=np.float32)
    request = InferRequest(id="r1", inputs={}, outputs=(), binary_outputs=frozenset(), binary_all=False)
    body, headers = encode_infer_response("cnn", 1, request, {"logits": logits})
    response = strict_loads(body)
    assert response["outputs"][0]["data"] == [1.5, "NaN", "Infinity", "-Infinity"]
    back = decode_infer_response(body, headers.get("Inference-Header-Content-Length"))["logits"]
    np.testing.assert_array_equal(back, logits)  # NaN compares equal here


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_request_with_bare_non_finite_numbers_is_refused_in_one_line(constant):
    tensor = '{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, ' + constant + "]}"
    body = ('{"inputs": [' + tensor + "]}").encode()
    with pytest.raises(ServeError, match=f"bare {constant}, which is not JSON") as error:
        parse_infer_request(body, None)
    assert "\n" not in str(error.value)


def test_the_fast_parser_reads_what_the_standard_parser_reads():
    """orjson parses requests (issue 17); it must read every number as the standard library does."""
    values = [0.1, -0.0, 5e-324, 1.7976931348623157e308, 3.4028234663852886e38, 1e-7, 123456789, -(2**63),
              2**64 - 1, 0, True, None, "é"]
    body = json.dumps({"id": "ü", "inputs": [{"data": values, "nested": [[1, 2.5], [{"k": []}]]}]}).encode()
    fast, standard = parse_json(body), json.loads(body)
    assert fast == standard
    assert [type(v) for v in fast["inputs"][0]["data"]] == [type(v) for v in standard["inputs"][0]["data"]]


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2,]", b"\xff\xfe", b"[" * 2000 + b"]" * 2000])
def test_what_neither_parser_reads_is_one_clear_error(body):
    with pytest.raises(ServeError, match="not valid JSON"):
        parse_json(body)
