"""Kubernetes Events on our objects: best-effort, since status carries the facts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

log = logging.getLogger(__name__)
MAX_MESSAGE = 1000


def post_event(body: kopf.Body | Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """`body`: the object's, or a dict with its apiVersion, kind, name, namespace, uid."""
    try:
        # kopf reads only apiVersion, kind and metadata of the body.
        kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message[:MAX_MESSAGE])
    except Exception:  # an Event is best-effort; status carries the facts
        log.debug("event %s not posted", reason, exc_info=True)
