"""Errors that become HTTP answers: a status, one precise message, maybe headers.

Handlers raise ApiError; the app turns it into ``{"error": message}`` (the Open
Inference Protocol's error shape). Anything else is logged server-side and
answered with a generic 500, so a stack trace never reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def too_large(message: str) -> ApiError:
    return ApiError(413, message)


def limit_hint(field: str) -> str:
    """How to raise a limit, named both ways it can be set."""
    return f"--{field.replace('_', '-')} / MODELDR_SERVE_{field.upper()}"
