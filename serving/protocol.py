"""KServe Open Inference Protocol (V2) REST: request parsing and response encoding.

Supports JSON tensors and Triton's binary tensor data extension, because
NVIDIA's tritonclient sends BYTES inputs and asks for outputs in binary form by
default: the JSON header is followed by raw tensor bytes, its length given in
the ``Inference-Header-Content-Length`` header, each tensor's byte count in its
``binary_data_size`` parameter, and BYTES elements as a 4-byte little-endian
length followed by the bytes. Every validation failure names the input, the
expectation and what was received, and raises InvalidInput.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from modeldr.serving.errors import InvalidInput, ModelNotFound

INPUT_NAME = "text"
HEADER_LENGTH = "inference-header-content-length"


class TensorInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    # Top-level extras are ignored: the KServe SDK adds "model_name" to its requests.
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[TensorInput]
    outputs: list[RequestedOutput] | None = None


class PredictRequest(BaseModel):
    """The plain JSON endpoint: ``{"texts": ["...", ...]}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    texts: list[str]


@dataclass(frozen=True)
class ParsedInfer:
    request_id: str | None
    texts: list[str]
    # Output name -> wants binary; None: every output, binary per binary_data_output.
    outputs: dict[str, bool] | None
    binary_default: bool


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str  # "BYTES" or "FP32"
    shape: list[int]
    values: npt.NDArray[Any] | list[str]


def describe_validation(error: ValidationError) -> str:
    """One line per problem: 'inputs.0.shape: Field required'."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise InvalidInput("request body is not valid UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def parse_predict(body: bytes) -> list[str]:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise InvalidInput('request body must be a JSON object like {"texts": ["..."]}')
    try:
        return PredictRequest.model_validate(document).texts
    except ValidationError as exc:
        raise InvalidInput(f"invalid request: {describe_validation(exc)}") from None


def _bool_param(parameters: dict[str, Any] | None, key: str, where: str) -> bool | None:
    if not parameters or key not in parameters:
        return None
    value = parameters[key]
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} parameter {key!r} must be a boolean, got {value!r}")
    return value


def split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Separate the JSON header from the binary tensor section."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidInput(
            f"Inference-Header-Content-Length must be an integer, got {header_length!r}"
        ) from None
    if length < 0 or length > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes"
        )
    return body[:length], body[length:]


def decode_bytes_tensor(raw: bytes, count: int, name: str) -> list[str]:
    """BYTES elements in binary form: <uint32 little-endian length><bytes>, repeated."""
    texts: list[str] = []
    offset = 0
    for index in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(
                f"input {name!r}: binary data ends after {index} of {count} BYTES elements"
            )
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(
                f"input {name!r}: element {index} declares {size} bytes, "
                f"only {len(raw) - offset} remain"
            )
        try:
            texts.append(raw[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"input {name!r}: element {index} is not valid UTF-8") from None
        offset += size
    if offset != len(raw):
        raise InvalidInput(
            f"input {name!r}: {len(raw) - offset} bytes left over after {count} BYTES elements"
        )
    return texts


def _flatten(data: list[Any]) -> list[Any]:
    """V2 JSON allows row-major nested lists or a flat list."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _parse_infer_request(header: bytes) -> InferRequest:
    """The JSON header as an InferRequest, its schema errors named field by field."""
    document = parse_json(header)
    if not isinstance(document, dict):
        raise InvalidInput("inference request must be a JSON object with an 'inputs' list")
    try:
        return InferRequest.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(f"invalid inference request: {describe_validation(exc)}") from None


def _text_input(request: InferRequest) -> TensorInput:
    """The request's one input, checked to be the model's BYTES input of shape [N] or [N, 1]."""
    if len(request.inputs) != 1:
        raise InvalidInput(
            f"expected exactly 1 input ({INPUT_NAME!r}, BYTES, shape [N]), "
            f"got {len(request.inputs)}"
        )
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise InvalidInput(
            f"unexpected input {tensor.name!r}: the model takes one BYTES input named "
            f"{INPUT_NAME!r}"
        )
    if tensor.datatype != "BYTES":
        raise InvalidInput(
            f"input {INPUT_NAME!r} has datatype {tensor.datatype}; expected BYTES (UTF-8 texts)"
        )
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
        raise InvalidInput(
            f"input {INPUT_NAME!r} has shape {shape}; expected [N] or [N, 1] with N >= 1"
        )
    return tensor


def _binary_texts(binary_size: Any, tensor: TensorInput, binary: bytes, count: int) -> list[str]:
    """The texts of an input sent in binary form: binary_data_size bytes after the header."""
    if tensor.data is not None:
        raise InvalidInput(f"input {INPUT_NAME!r} has both 'data' and binary_data_size")
    if not isinstance(binary_size, int) or binary_size < 0 or binary_size > len(binary):
        raise InvalidInput(
            f"input {INPUT_NAME!r}: binary_data_size {binary_size!r} does not match the "
            f"{len(binary)} bytes after the JSON header"
        )
    texts = decode_bytes_tensor(binary[:binary_size], count, INPUT_NAME)
    if binary_size != len(binary):
        raise InvalidInput(f"{len(binary) - binary_size} unexpected bytes after the tensors")
    return texts


def _json_texts(tensor: TensorInput, binary: bytes, count: int) -> list[str]:
    """The texts of an input sent as JSON 'data': count strings, nested or flat."""
    if tensor.data is None:
        raise InvalidInput(f"input {INPUT_NAME!r} has no 'data' (and no binary_data_size)")
    if binary:
        raise InvalidInput("binary data present but no input declares binary_data_size")
    flat = _flatten(tensor.data)
    if len(flat) != count:
        raise InvalidInput(
            f"input {INPUT_NAME!r} has shape {tensor.shape} ({count} elements) but data holds "
            f"{len(flat)}"
        )
    for index, item in enumerate(flat):
        if not isinstance(item, str):
            raise InvalidInput(
                f"input {INPUT_NAME!r} element {index} is {type(item).__name__}; BYTES "
                "elements must be strings in JSON"
            )
    return flat


def _requested_outputs(
    request: InferRequest, output_names: list[str], binary_default: bool
) -> dict[str, bool] | None:
    """Each requested output's binary choice (its own, else the request's); None: all."""
    if request.outputs is None:
        return None
    outputs: dict[str, bool] = {}
    for wanted in request.outputs:
        if wanted.name not in output_names:
            raise InvalidInput(
                f"unknown output {wanted.name!r}; this model's outputs are "
                f"{', '.join(output_names)}"
            )
        as_binary = _bool_param(wanted.parameters, "binary_data", f"output {wanted.name!r}")
        outputs[wanted.name] = binary_default if as_binary is None else as_binary
    return outputs


def parse_infer(body: bytes, header_length: str | None, output_names: list[str]) -> ParsedInfer:
    header, binary = split_binary(body, header_length)
    request = _parse_infer_request(header)
    tensor = _text_input(request)
    count = math.prod(tensor.shape)
    binary_size = tensor.parameters.get("binary_data_size") if tensor.parameters else None
    if binary_size is not None:
        texts = _binary_texts(binary_size, tensor, binary, count)
    else:
        texts = _json_texts(tensor, binary, count)
    binary_default = bool(_bool_param(request.parameters, "binary_data_output", "request"))
    outputs = _requested_outputs(request, output_names, binary_default)
    return ParsedInfer(request.id, texts, outputs, binary_default)


def _tensor_bytes(tensor: OutputTensor) -> bytes:
    if tensor.datatype == "BYTES":
        chunks = []
        for text in tensor.values:
            encoded = str(text).encode("utf-8")
            chunks.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(chunks)
    return np.ascontiguousarray(tensor.values, dtype="<f4").tobytes()


def _tensor_json(tensor: OutputTensor) -> list[Any]:
    if tensor.datatype == "BYTES":
        return [str(text) for text in tensor.values]
    array = np.asarray(tensor.values, dtype=np.float32).reshape(-1)
    return [float(x) for x in array.tolist()]


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    tensors: list[OutputTensor],
    parsed: ParsedInfer,
) -> tuple[bytes, int | None]:
    """JSON body, or JSON header + binary section; second item: header length if binary."""
    selected = (
        [(t, parsed.outputs[t.name]) for t in tensors if t.name in parsed.outputs]
        if parsed.outputs is not None
        else [(t, parsed.binary_default) for t in tensors]
    )
    outputs: list[dict[str, Any]] = []
    binary_parts: list[bytes] = []
    for tensor, as_binary in selected:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if as_binary:
            raw = _tensor_bytes(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            entry["data"] = _tensor_json(tensor)
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": outputs,
    }
    if request_id is not None:
        document["id"] = request_id
    header = json.dumps(document, separators=(",", ":")).encode("utf-8")
    if not binary_parts:
        return header, None
    return header + b"".join(binary_parts), len(header)


def require_model(name: str, served: str, version: str | None, served_version: str) -> None:
    if name != served:
        raise ModelNotFound(f"unknown model {name!r}; this server serves {served!r}")
    if version is not None and version != served_version:
        raise ModelNotFound(
            f"model {served!r} has no version {version!r}; it serves {served_version!r}"
        )
