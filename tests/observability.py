"""What the chart's dashboard and alerts query, and what the product exports: shared by the
unit test (names) and the integration test (the real Prometheus parses every expression).

Metric names are collected from the code's own registries (the operator's and the drills'
module-level metrics in prometheus_client's default registry, the model server's
per-server registry), never from a hand list.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "modeldr"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))

# Series Prometheus makes itself for every target (not exported by anyone).
PROMETHEUS_SERIES = frozenset({"up"})
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
# Grafana's variables, as a query inspector would expand them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$modeldeployment": ".*",
}
KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)


def registry_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def exported_metric_names() -> set[str]:
    """Every series name the operator (its modules and the drills') and the model server
    can export."""
    for package in ("modeldr.operator", "modeldr.drills"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(info.name)
    from modeldr.serving.metrics import ServeMetrics

    return registry_names(REGISTRY) | registry_names(ServeMetrics().registry)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names, functions, keywords,
    durations and literals left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping labels
    # Numbers and durations (0.99, 300, 5m, 1h30m, 1e3), not parts of names.
    text = re.sub(r"(?<![A-Za-z0-9_:])\d[\d.]*(?:e[+-]?\d+)?(?:\d*(?:ms|[smhdwy]))*", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if word.lower() in KEYWORDS or following.startswith("("):
            continue
        names.add(word)
    return names


def expand_grafana(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def dashboard(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold theirs


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [
        (f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, series selector) of the template variables' label_values(...) queries."""
    out = []
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
        found = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
        assert found, f"variable {variable['name']}: not label_values(selector, label): {query}"
        out.append((f"variable {variable['name']}", found.group(1)))
    return out


def rendered_rules(helm: str) -> list[dict[str, Any]]:
    """The PrometheusRule's rules as `helm template` renders them with the alerts on."""
    out = subprocess.run(
        [
            helm,
            "template",
            "rel",
            str(CHART),
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    [rule_object] = [d for d in yaml.safe_load_all(out) if d]
    return [rule for group in rule_object["spec"]["groups"] for rule in group["rules"]]
