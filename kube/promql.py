"""The one Prometheus query client: an instant query (blocking; callers run it in a worker
thread), its answer read into one of three outcomes, values, unavailable (evidence missing)
or rejected (the query is wrong), and the two readings of it: the drills' gates and abort
conditions (drills.gates), and the optional PromQL part of a ModelDeployment's health check
(spec.failover.healthQuery, `health`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
from dataclasses import dataclass
from typing import Any

from modeldr.kube.httpclient import AnswerTooLarge, opener, read_bounded

TIMEOUT_S = 2.0  # the health check's; gates set their own
# An instant query's answer for a gate or a health check is a few KiB; a Prometheus URL is
# the user's, so what it answers is read up to this and no further.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class QueryValues:
    """Prometheus answered: the sample values of an instant vector (or the one of a scalar).
    May be empty and may hold NaN or ±Inf."""

    values: tuple[float, ...]


@dataclass(frozen=True)
class QueryUnavailable:
    """No usable answer: connection refused, timeout, a 5xx, a body that is not Prometheus's.
    Evidence missing: Inconclusive."""

    message: str


@dataclass(frozen=True)
class QueryRejected:
    """Prometheus refused the query itself (400 bad_data, 422 execution, a range vector where
    an instant one is needed): the gate is wrong, Error."""

    message: str


QueryOutcome = QueryValues | QueryUnavailable | QueryRejected

# Prometheus errorType values that say the query is wrong; the others (timeout, canceled,
# internal, unavailable) say Prometheus could not answer now.
_REJECTING_ERROR_TYPES = frozenset({"bad_data", "execution", "not_found"})


def parse_prometheus_response(status_code: int, body: str | bytes) -> QueryOutcome:
    """The outcome of GET /api/v1/query from its HTTP status and body. Transport failures
    (no response at all) are the caller's QueryUnavailable."""
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict) or "status" not in payload:
        # Not Prometheus's JSON (a proxy's error page, a wrong URL): Prometheus was not heard.
        return QueryUnavailable(f"HTTP {status_code}, not a Prometheus API answer")
    if payload["status"] != "success":
        error_type = str(payload.get("errorType") or "")
        error = " ".join(str(payload.get("error") or "no error message").split())[:300]
        detail = f"{error_type}: {error}" if error_type else error
        says_wrong = error_type in _REJECTING_ERROR_TYPES or (
            not error_type and 400 <= status_code < 500
        )
        if says_wrong and status_code < 500:
            return QueryRejected(f"Prometheus rejected the query (HTTP {status_code}, {detail})")
        return QueryUnavailable(f"Prometheus could not answer (HTTP {status_code}, {detail})")
    data = payload.get("data")
    if status_code >= 300 or not isinstance(data, dict):
        return QueryUnavailable(f"HTTP {status_code} from Prometheus without a usable result")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector":
            return QueryValues(tuple(_sample(item["value"][1]) for item in result or ()))
        if kind == "scalar":
            return QueryValues((_sample(result[1]),) if result else ())
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return QueryUnavailable(f"Prometheus answered a malformed {kind}: {exc!r}"[:300])
    return QueryRejected(f"the query gives a {kind}; a gate needs an instant vector or a scalar")


def _sample(value: object) -> float:
    # Prometheus encodes samples as strings: "1.5", "NaN", "+Inf", "-Inf"; float() reads all.
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"sample value {value!r}")
    return float(value)


def query(base_url: str, expression: str, timeout_s: float) -> QueryOutcome:
    """GET /api/v1/query: no answer at all is QueryUnavailable (evidence missing)."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    try:
        with opener(url).open(url, timeout=timeout_s) as response:
            return parse_prometheus_response(
                response.status, read_bounded(response, MAX_ANSWER_BYTES)
            )
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return redirected(base_url, exc)
        try:
            body = read_bounded(exc, MAX_ANSWER_BYTES) if exc.fp is not None else b""
        except AnswerTooLarge as too_large:
            return QueryUnavailable(f"Prometheus at {base_url}: {too_large}; not read")
        return parse_prometheus_response(exc.code, body)
    except AnswerTooLarge as exc:
        return QueryUnavailable(f"Prometheus at {base_url}: {exc}; not read")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return QueryUnavailable(f"Prometheus at {base_url} did not answer: {reason}")


def redirected(base_url: str, exc: urllib.error.HTTPError) -> QueryUnavailable:
    location = exc.headers.get("Location") if exc.headers else None
    where = f" to {location}" if location else ""
    return QueryUnavailable(
        f"Prometheus at {base_url} answered HTTP {exc.code}, a redirect{where}: modeldr "
        "follows none; configure the final URL"
    )


# --- the health check's reading -------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    # True: passed; False: failed (empty result or a zero sample); None: could not evaluate.
    passed: bool | None
    message: str


def render_query(expression: str, cluster: str, namespace: str) -> str:
    return expression.replace("$cluster", cluster).replace("$namespace", namespace)


def health(outcome: QueryOutcome) -> QueryResult:
    """Pass iff the result has at least one sample and none of them is 0; a query that could
    not be evaluated passes nothing (None)."""
    if not isinstance(outcome, QueryValues):
        return QueryResult(None, f"health query not evaluated: {outcome.message}")
    samples = outcome.values
    if not samples:
        return QueryResult(False, "health query returned no samples")
    zeros = sum(1 for value in samples if value == 0.0)
    if zeros:
        return QueryResult(False, f"health query: {zeros} of {len(samples)} samples are 0")
    return QueryResult(True, f"health query: {len(samples)} samples, none 0")


def evaluate(base_url: str, expression: str) -> QueryResult:
    return health(query(base_url, expression, TIMEOUT_S))
