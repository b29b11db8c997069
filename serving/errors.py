"""Why the server refuses or cannot answer a request, in the server's own terms.

The protocol parsers, engine, batcher and runtime raise these; none of them knows
about HTTP. The HTTP layer (``app.py``, ``error_response``) maps each kind to a
status code in one table and answers ``{"error": message}`` (the Open Inference
Protocol's error shape), with ``Retry-After`` when the error says when to retry.
Any other exception is logged server-side and answered with a generic 500, so a
stack trace never reaches a client.
"""

from __future__ import annotations


class ServingError(Exception):
    """A refusal or failure the client is told about: one precise message."""

    #: Seconds after which a retry may succeed; None when retrying will not help.
    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request is malformed or does not match what the model takes."""


class InputTooLarge(ServingError):
    """The request exceeds a limit: body bytes, texts per request or tokens per text."""


class UnsupportedEncoding(ServingError):
    """The request body is compressed in a way the server cannot decode."""


class ModelNotFound(ServingError):
    """The request names a model or version that this server does not serve."""


class NotReady(ServingError):
    """The model is not loaded, not warmed up or not healthy yet."""

    retry_after_s = 1


class ShuttingDown(ServingError):
    """The server is stopping and accepts no new work."""

    retry_after_s = 1


class Overloaded(ServingError):
    """The request queue is full; a retry after the estimated drain time may succeed."""

    retry_after_s: int

    def __init__(self, queued: int, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"server overloaded: queue holds {queued} texts; the limit is {limit} "
            f"({limit_hint('max_queue')}); retry after {retry_after_s}s"
        )
        self.queued = queued
        self.limit = limit
        self.retry_after_s = retry_after_s


class InferenceFailed(ServingError):
    """The forward pass raised; the cause is in the server's log, not in the answer."""

    def __init__(self, message: str = "inference failed; the server logged the cause") -> None:
        super().__init__(message)


def limit_hint(field: str) -> str:
    """How to raise a limit, named both ways it can be set."""
    return f"--{field.replace('_', '-')} / MODELDR_SERVE_{field.upper()}"
