"""Logging for `modeldr operator`: one JSON object per line (or plain text)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# kopf's per-object loggers attach the object's reference here.
_K8S_FIELDS = ("k8s_ref",)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _K8S_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, dict):
                entry["object"] = {
                    k: value[k] for k in ("namespace", "name", "kind") if value.get(k)
                }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class DropNudges(logging.Filter):
    """kopf logs every run of the wake-up handler; it carries no information."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'_nudge'" not in record.getMessage()


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(DropNudges())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # The Kubernetes client logs every retry at WARNING; our messages say what matters.
    logging.getLogger("kubernetes").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
