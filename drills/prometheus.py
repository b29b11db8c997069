"""Instant PromQL queries for gates and abort conditions (blocking; the engine calls them in
worker threads). What the answer means is decided by `gates.parse_prometheus_response`;
here only the transport: no answer at all is QueryUnavailable (evidence missing)."""

from __future__ import annotations

import urllib.error
import urllib.parse

from modeldr.drills.gates import QueryOutcome, QueryUnavailable, parse_prometheus_response
from modeldr.kube.httpclient import opener


def query(base_url: str, expression: str, timeout_s: float) -> QueryOutcome:
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    try:
        with opener(url).open(url, timeout=timeout_s) as response:
            return parse_prometheus_response(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return parse_prometheus_response(exc.code, exc.read())
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return QueryUnavailable(f"Prometheus at {base_url} did not answer: {reason}")
