"""The optional PromQL part of a health check (spec.failover.healthQuery)."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from modeldr.kube.httpclient import opener

TIMEOUT_S = 2.0


@dataclass(frozen=True)
class QueryResult:
    # True: passed; False: failed (empty result or a zero sample); None: could not evaluate.
    passed: bool | None
    message: str


def render_query(expression: str, cluster: str, namespace: str) -> str:
    return expression.replace("$cluster", cluster).replace("$namespace", namespace)


def judge(payload: dict[str, Any]) -> QueryResult:
    """Pass iff the result has at least one sample and none of them is 0."""
    if payload.get("status") != "success":
        return QueryResult(None, f"query error: {payload.get('error', 'unknown')}")
    data = payload.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        samples = [result[1]] if result else []
    elif kind == "vector":
        samples = [item["value"][1] for item in result or []]
    else:
        return QueryResult(None, f"query returned a {kind}, not an instant vector or scalar")
    if not samples:
        return QueryResult(False, "health query returned no samples")
    zeros = sum(1 for value in samples if float(value) == 0.0)
    if zeros:
        return QueryResult(False, f"health query: {zeros} of {len(samples)} samples are 0")
    return QueryResult(True, f"health query: {len(samples)} samples, none 0")


def evaluate(base_url: str, expression: str) -> QueryResult:
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        with opener(url).open(url, timeout=TIMEOUT_S) as response:
            payload = json.load(response)
    except Exception as exc:
        body = ""
        if hasattr(exc, "read"):
            try:
                body = json.loads(exc.read()).get("error", "")
            except Exception:
                body = ""
        return QueryResult(None, f"Prometheus not queried: {body or type(exc).__name__}")
    return judge(payload)
