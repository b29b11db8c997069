"""The PromQL part of a health check: how a query result is judged (pure)."""

from __future__ import annotations

import json

from modeldr.kube.promql import QueryResult, health, parse_prometheus_response, render_query


def judge(payload: dict[str, object]) -> QueryResult:
    """The health reading of Prometheus's answer `payload` (HTTP 200)."""
    return health(parse_prometheus_response(200, json.dumps(payload)))


def vector(*values: str) -> dict[str, object]:
    result = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_empty_result_fails() -> None:
    assert judge(vector()).passed is False


def test_a_zero_sample_fails() -> None:
    result = judge(vector("1", "0"))
    assert result.passed is False and "1 of 2 samples are 0" in result.message


def test_non_zero_samples_pass() -> None:
    assert judge(vector("1", "0.2")).passed is True
    assert judge({"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}}).passed


def test_errors_are_inconclusive_not_passing() -> None:
    assert judge({"status": "error", "error": "parse error"}).passed is None
    assert (
        judge({"status": "success", "data": {"resultType": "matrix", "result": []}}).passed is None
    )


def test_placeholders() -> None:
    assert render_query('up{cluster="$cluster",namespace="$namespace"}', "primary", "ns") == (
        'up{cluster="primary",namespace="ns"}'
    )
