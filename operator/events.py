"""Kubernetes Events on our objects: best-effort, since status carries the facts."""

from __future__ import annotations

import logging

import kopf

log = logging.getLogger(__name__)
MAX_MESSAGE = 1000


def post_event(body: kopf.Body, type_: str, reason: str, message: str) -> None:
    try:
        kopf.event(body, type=type_, reason=reason, message=message[:MAX_MESSAGE])
    except Exception:  # an Event is best-effort; status carries the facts
        log.debug("event %s not posted", reason, exc_info=True)
