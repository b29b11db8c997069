"""V2 request parsing and response encoding, including Triton's binary extension.

Encoded responses are decoded with tritonclient's own parser, so wire
compatibility is checked against the real client code, not our reading of it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

from modeldr.serving.app import http_status
from modeldr.serving.errors import InvalidInput
from modeldr.serving.protocol import (
    OutputTensor,
    encode_infer_response,
    parse_infer,
    parse_predict,
)

pytestmark = pytest.mark.serving

OUTPUTS = ["label", "probabilities"]


def v2(inputs: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def text_input(data: Any, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    count = len(data) if isinstance(data, list) else 1
    return {"name": "text", "datatype": "BYTES", "shape": shape or [count], "data": data, **extra}


def test_json_request() -> None:
    parsed = parse_infer(v2([text_input(["a", "b"])], id="r1"), None, OUTPUTS)
    assert parsed.texts == ["a", "b"]
    assert parsed.request_id == "r1"
    assert parsed.outputs is None and not parsed.binary_default


def test_nested_data_with_n_by_1_shape() -> None:
    parsed = parse_infer(v2([text_input([["a"], ["b"]], shape=[2, 1])]), None, OUTPUTS)
    assert parsed.texts == ["a", "b"]


def test_tritonclient_binary_request() -> None:
    tensor = InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(["héllo".encode(), b"world"], dtype=object))
    body, header_length = _get_inference_request(
        inputs=[tensor],
        request_id="",
        outputs=[InferRequestedOutput("probabilities", binary_data=True)],
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    assert header_length is not None
    parsed = parse_infer(body, str(header_length), OUTPUTS)
    assert parsed.texts == ["héllo", "world"]
    assert parsed.outputs == {"probabilities": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON at line 1 column 2"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"inputs": "x"}', "inputs: Input should be a valid list"),
        (v2([]), "expected exactly 1 input"),
        (v2([text_input(["a"]), text_input(["b"])]), "expected exactly 1 input"),
        (v2([{**text_input(["a"]), "name": "words"}]), "unexpected input 'words'"),
        (v2([{**text_input([1.5]), "datatype": "FP32"}]), "has datatype FP32; expected BYTES"),
        (v2([text_input(["a", "b"], shape=[1, 2])]), "has shape [1, 2]; expected [N] or [N, 1]"),
        (v2([text_input(["a", "b"], shape=[3])]), "shape [3] (3 elements) but data holds 2"),
        (v2([text_input(["a", 7])]), "element 1 is int; BYTES elements must be strings"),
        (v2([{k: v for k, v in text_input(["a"]).items() if k != "data"}]), "has no 'data'"),
        (v2([text_input(["a"])], outputs=[{"name": "logits"}]), "unknown output 'logits'"),
        (
            v2([text_input(["a"])], parameters={"binary_data_output": "yes"}),
            "parameter 'binary_data_output' must be a boolean",
        ),
        (v2([{**text_input(["a"]), "shape": ["x"]}]), "inputs.0.shape.0: Input should be"),
    ],
)
def test_bad_requests(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_infer(body, None, OUTPUTS)
    assert http_status(info.value) == 400
    assert message in info.value.message


def test_binary_errors() -> None:
    header = v2(
        [{"name": "text", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}}]
    )
    good = struct.pack("<I", 1) + b"a" + struct.pack("<I", 0)
    assert len(good) == 9
    assert parse_infer(header + good, str(len(header)), OUTPUTS).texts == ["a", ""]
    with pytest.raises(InvalidInput, match="binary data ends after 1 of 2"):
        short = v2(
            [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": 5},
                }
            ]
        )
        parse_infer(short + good[:5], str(len(short)), OUTPUTS)
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length is 9999"):
        parse_infer(header + good, "9999", OUTPUTS)
    with pytest.raises(InvalidInput, match="must be an integer"):
        parse_infer(header + good, "ten", OUTPUTS)
    bad_utf8 = struct.pack("<I", 2) + b"\xff\xfe" + struct.pack("<I", 0)
    header10 = header.replace(b'"binary_data_size": 9', b'"binary_data_size": 10')
    with pytest.raises(InvalidInput, match="element 0 is not valid UTF-8"):
        parse_infer(header10 + bad_utf8, str(len(header10)), OUTPUTS)


def test_predict_validation() -> None:
    assert parse_predict(b'{"texts": ["x", "y"]}') == ["x", "y"]
    for body, message in [
        (b'{"text": ["x"]}', "texts: Field required"),
        (b'{"texts": "x"}', "texts: Input should be a valid list"),
        (b'{"texts": ["x", 3]}', "texts.1: Input should be a valid string"),
        (b"nope", "malformed JSON"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_predict(body)


def _tensors() -> list[OutputTensor]:
    probabilities = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    return [
        OutputTensor("label", "BYTES", [2], ["positive", "négatif"]),
        OutputTensor("probabilities", "FP32", [2, 2], probabilities),
    ]


@pytest.mark.parametrize("binary", [False, True])
def test_response_decodes_with_tritonclient(binary: bool) -> None:
    request = v2([text_input(["a", "b"])], parameters={"binary_data_output": binary})
    parsed = parse_infer(request, None, OUTPUTS)
    body, header_length = encode_infer_response("m", "1", "id-7", _tensors(), parsed)
    assert (header_length is not None) == binary
    result = InferResult.from_response_body(body, header_length=header_length)
    assert result.get_response()["id"] == "id-7"
    np.testing.assert_allclose(result.as_numpy("probabilities"), [[0.25, 0.75], [0.5, 0.5]])
    labels = result.as_numpy("label")
    assert labels is not None
    decoded = [x.decode() if isinstance(x, bytes) else x for x in labels.tolist()]
    assert decoded == ["positive", "négatif"]


def test_only_requested_outputs_returned() -> None:
    request = v2([text_input(["a", "b"])], outputs=[{"name": "label"}])
    parsed = parse_infer(request, None, OUTPUTS)
    body, header_length = encode_infer_response("m", "1", None, _tensors(), parsed)
    assert header_length is None
    document = json.loads(body)
    assert [o["name"] for o in document["outputs"]] == ["label"]
    assert "id" not in document
