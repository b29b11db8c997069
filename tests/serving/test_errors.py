"""The one mapping from the server's errors to HTTP answers (serving/app.py)."""

from __future__ import annotations

import json

import pytest
from starlette.responses import JSONResponse

from modeldr.serving import errors
from modeldr.serving.app import HTTP_STATUS, error_response, http_status
from modeldr.serving.errors import (
    InferenceFailed,
    InputTooLarge,
    InvalidInput,
    ModelNotFound,
    NotReady,
    Overloaded,
    ServingError,
    ShuttingDown,
    UnsupportedEncoding,
)

pytestmark = pytest.mark.serving


def subclasses(kind: type[ServingError]) -> set[type[ServingError]]:
    found: set[type[ServingError]] = set()
    for sub in kind.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def body(response: JSONResponse) -> dict[str, str]:
    decoded: dict[str, str] = json.loads(bytes(response.body))
    return decoded


def test_every_error_kind_has_a_status() -> None:
    kinds = {kind for kind in subclasses(ServingError) if kind.__module__ == errors.__name__}
    assert len(kinds) >= 8
    missing = sorted(kind.__name__ for kind in kinds - set(HTTP_STATUS))
    assert not missing, f"no HTTP status for {missing}"
    assert set(HTTP_STATUS) == kinds, "the table maps a kind that errors.py does not define"


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (InvalidInput("bad"), 400, None),
        (ModelNotFound("bad"), 404, None),
        (InputTooLarge("bad"), 413, None),
        (UnsupportedEncoding("bad"), 415, None),
        (Overloaded(12, 10, 3), 429, "3"),
        (InferenceFailed(), 500, None),
        (NotReady("bad"), 503, "1"),
        (ShuttingDown("bad"), 503, "1"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, ServingError) else str(value),
)
def test_status_message_and_retry_after(
    error: ServingError, status: int, retry_after: str | None
) -> None:
    assert http_status(error) == status
    response = error_response(error)
    assert response.status_code == status
    assert body(response) == {"error": error.message}
    assert response.headers.get("Retry-After") == retry_after


def test_messages_the_clients_see() -> None:
    assert Overloaded(12, 10, 3).message == (
        "server overloaded: queue holds 12 texts; the limit is 10 "
        "(--max-queue / MODELDR_SERVE_MAX_QUEUE); retry after 3s"
    )
    assert InferenceFailed().message == "inference failed; the server logged the cause"


def test_a_subclass_inherits_its_parents_status() -> None:
    class EmptyBatch(InvalidInput):
        pass

    assert http_status(EmptyBatch("none")) == 400


@pytest.mark.parametrize(
    "error", [RuntimeError("secret detail"), KeyError("k"), ServingError("unmapped")]
)
def test_anything_else_is_a_generic_500(error: Exception) -> None:
    assert http_status(error) == 500
    response = error_response(error)
    assert response.status_code == 500
    if isinstance(error, ServingError):
        assert body(response) == {"error": "unmapped"}
    else:
        assert body(response) == {"error": "internal server error"}
    assert "Retry-After" not in response.headers
