"""One helper for Kubernetes API calls: the caller says what an absent object (404) or a
conflict (409: exists already, or changed since it was read) means for this call, instead
of catching ApiException and comparing status codes at every call site.

    existing = k8s.call(read, name, namespace, absent=None)   # None when absent
    k8s.call(create, namespace, body, conflict=k8s.DONE)      # created meanwhile: fine
    if k8s.call(replace, ..., conflict=k8s.LOST) is k8s.LOST: ...   # lost the race

Every other error is raised as it came (the caller words it for the user).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, Final, TypeVar

from kubernetes import client

T = TypeVar("T")
U = TypeVar("U")


class _Raise(Enum):
    RAISE = "raise"


class Outcome(Enum):
    """What a 404 or 409 meant, when the caller needs no value: the wanted state holds
    (DONE) or another writer won (LOST)."""

    DONE = "done"
    LOST = "lost"


RAISE: Final = _Raise.RAISE
DONE: Final = Outcome.DONE
LOST: Final = Outcome.LOST

NOT_FOUND = 404
CONFLICT = 409
FORBIDDEN = 403


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error (None for anything else: a connection error)."""
    return exc.status if isinstance(exc, client.ApiException) else None


def is_absent(exc: BaseException) -> bool:
    return status_of(exc) == NOT_FOUND


def is_conflict(exc: BaseException) -> bool:
    return status_of(exc) == CONFLICT


def call(
    fn: Callable[..., T],
    *args: Any,
    absent: U | _Raise = RAISE,
    conflict: U | _Raise = RAISE,
    **kwargs: Any,
) -> T | U:
    """`fn(*args, **kwargs)`; a 404 returns `absent` and a 409 returns `conflict` unless
    they are RAISE (the default), in which case the ApiException propagates."""
    try:
        return fn(*args, **kwargs)
    except client.ApiException as exc:
        if exc.status == NOT_FOUND and absent is not RAISE:
            return absent
        if exc.status == CONFLICT and conflict is not RAISE:
            return conflict
        raise
