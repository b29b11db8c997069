"""The sandbox's real Prometheus parses and evaluates every expression of the chart's
Grafana dashboard (Grafana's variables expanded as Grafana would) and of its PrometheusRule
alerts: a typo, a misplaced `by` or a wrong function arity is refused here with Prometheus's
own error. (That every series they name is exported: tests/unit/test_observability.py.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest

from sandbox import prometheus
from sandbox.api import Sandbox
from tests.observability import (
    DASHBOARDS,
    dashboard,
    dashboard_queries,
    expand_grafana,
    rendered_rules,
    variable_queries,
)
from tests.tooling import require_tool

pytestmark = pytest.mark.integration


def prometheus_verdict(expr: str) -> str | None:
    """None when Prometheus evaluates `expr`; its error otherwise."""
    url = f"{prometheus.base_url()}/api/v1/query?{urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    if body.get("status") == "success":
        return None
    return f"{body.get('errorType')}: {body.get('error')}"


def test_prometheus_refuses_a_bad_expression(sandbox: Sandbox) -> None:
    # The check can fail: Prometheus says what is wrong.
    verdict = prometheus_verdict("sum by (cluster (rate(modeldr_serve_requests_total[1m]))")
    assert verdict is not None and verdict.startswith("bad_data"), verdict
    assert prometheus_verdict("sum(rate(modeldr_serve_requests_total[1m]))") is None


def test_every_dashboard_and_alert_expression_is_valid_promql(sandbox: Sandbox) -> None:
    expressions = [
        (f"{path.name} {where}", expand_grafana(expr))
        for path in DASHBOARDS
        for where, expr in dashboard_queries(dashboard(path)) + variable_queries(dashboard(path))
    ]
    expressions += [
        (f"alert {rule['alert']}", rule["expr"]) for rule in rendered_rules(require_tool("helm"))
    ]
    assert len(expressions) > 20
    refused = {where: v for where, expr in expressions if (v := prometheus_verdict(expr))}
    assert not refused, json.dumps(refused, indent=1)
