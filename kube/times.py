"""Timestamps as Kubernetes writes them."""

from __future__ import annotations

from datetime import datetime


def iso(moment: datetime | None, *, precise: bool = False) -> str | None:
    """RFC 3339; milliseconds for failover timings (seconds elsewhere, like Kubernetes)."""
    if moment is None:
        return None
    if precise:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
