"""The chart's Grafana dashboard and PrometheusRule alerts: the dashboard parses, every query
in it and in the alerts names only series the operator or the model server exports
(collected from their registries), the dashboard covers what its users need, and the
ConfigMap for the Grafana sidecar ships it byte for byte only when asked. That Prometheus
itself parses every expression: tests/integration/test_observability.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.observability import (
    DASHBOARDS,
    PROMETHEUS_SERIES,
    dashboard,
    dashboard_queries,
    exported_metric_names,
    metric_names,
    panels,
    rendered_rules,
    variable_queries,
)
from tests.tooling import require_tool
from tests.unit.test_chart import CHART, render

EXPORTED = exported_metric_names() | PROMETHEUS_SERIES


def test_the_names_come_from_the_registries() -> None:
    # The collection is real: the operator's, the drills' and the server's series are there.
    for name in (
        "modeldr_failovers_total",
        "modeldr_modeldeployment_active_cluster",
        "modeldr_drill_runs_total",
        "modeldr_drill_probe_request_duration_seconds_bucket",
        "modeldr_serve_requests_total",
        "modeldr_serve_request_duration_seconds_bucket",
    ):
        assert name in EXPORTED, name
    assert "modeldr_drill_runs" not in EXPORTED  # a counter's series carry _total


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (cluster, le) (rate(a_bucket{x=~"y|z", route="/predict"}[$__rate_interval]))',
            {"a_bucket"},
        ),
        ("max by (ns) (b) == 1 and on (ns) (c unless ignoring (le) d offset 5m)", {"b", "c", "d"}),
        ("histogram_quantile(0.99, sum by (le) (rate(e[5m]))) > bool 0.5", {"e"}),
        ("time() - f > 300", {"f"}),
        ('absent(up{job="a-metrics"} == 1)', {"up"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_names_an_exported_metric(path: Any) -> None:
    board = dashboard(path)
    queries = dashboard_queries(board) + variable_queries(board)
    assert queries, f"{path.name} holds no query"
    unknown = {
        where: sorted(metric_names(expr) - EXPORTED)
        for where, expr in queries
        if metric_names(expr) - EXPORTED
    }
    assert not unknown, f"{path.name} queries series nobody exports: {unknown}"
    assert all(metric_names(expr) for _, expr in queries), "a query that selects no series"


def test_the_dashboard_shows_what_its_users_need() -> None:
    [path] = DASHBOARDS
    board = dashboard(path)
    used = set().union(*(metric_names(e) for _, e in dashboard_queries(board)))
    needs = {
        "serving traffic per cluster": "modeldr_serve_requests_total",
        "serving latency per cluster": "modeldr_serve_request_duration_seconds_bucket",
        "the active cluster": "modeldr_modeldeployment_active_cluster",
        "failovers": "modeldr_failovers_total",
        "drill phases": "modeldr_drill_run_phase",
        "drill verdicts": "modeldr_drill_runs_total",
        "probe RTO": "modeldr_drill_rto_seconds",
        "what the probe saw": "modeldr_drill_probe_requests_total",
        "missed schedules": "modeldr_drill_scheduled_missed_total",
    }
    missing = {need: name for need, name in needs.items() if name not in used}
    assert not missing, missing
    # Per-cluster panels group by the scrape's cluster label.
    serving = [e for _, e in dashboard_queries(board) if "modeldr_serve_" in e]
    assert serving and all("by (cluster" in e for e in serving), serving
    # Grafana's own expectations: unique panel ids, a uid, a Prometheus datasource variable.
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    assert board["uid"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_alert_names_an_exported_metric_and_the_required_alerts_exist() -> None:
    rules = rendered_rules(require_tool("helm"))
    alerts = {rule["alert"]: rule for rule in rules}
    for required in (
        "ModelDRScheduledDrillFailed",
        "ModelDRScheduledDrillMissed",
        "ModelDRStandbyCouldNotAbsorbFailover",
    ):
        assert required in alerts, sorted(alerts)
    unknown = {
        name: sorted(metric_names(rule["expr"]) - EXPORTED)
        for name, rule in alerts.items()
        if metric_names(rule["expr"]) - EXPORTED
    }
    assert not unknown, f"alerts on series nobody exports: {unknown}"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
    # The annotations name labels the series have (from_cluster, not from).
    failover = alerts["ModelDRFailover"]["annotations"]
    assert "$labels.to_cluster" in failover["summary"] and "$labels.from }" not in str(failover)


def test_the_overdue_threshold_is_a_value() -> None:
    docs = render("prometheusRule.enabled=true", "prometheusRule.scheduledDrillOverdueSeconds=900")
    [missed] = [
        r["expr"]
        for d in docs
        if d["kind"] == "PrometheusRule"
        for g in d["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "ModelDRScheduledDrillMissed"
    ]
    assert "> 900" in missed


def test_the_dashboard_configmap_ships_the_json_for_the_sidecar() -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap"], "rendered by default"
    [cm] = [d for d in render("grafanaDashboard.enabled=true") if d["kind"] == "ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {k: v for k, v in cm["data"].items()} == {
        p.name: p.read_text().rstrip("\n") for p in DASHBOARDS
    }
    [other] = [
        d
        for d in render(
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.label=dashboards",
            "grafanaDashboard.labelValue=modeldr",
            "grafanaDashboard.namespace=monitoring",
        )
        if d["kind"] == "ConfigMap"
    ]
    assert other["metadata"]["labels"]["dashboards"] == "modeldr"
    assert other["metadata"]["namespace"] == "monitoring"


def test_the_chart_values_document_the_toggles() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["grafanaDashboard"]["enabled"] is False
    assert values["prometheusRule"]["enabled"] is False
    readme = (CHART / "README.md").read_text()
    assert "grafanaDashboard.enabled" in readme and "ModelDRScheduledDrillMissed" in readme
