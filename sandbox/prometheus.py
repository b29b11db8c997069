"""A real Prometheus server on 127.0.0.1 that discovers the member clusters' pods through
kubernetes_sd_configs and scrapes those annotated prometheus.io/scrape=true."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from typing import Any

import yaml

from sandbox import daemons
from sandbox.config import (
    MEMBER_CLUSTERS,
    OPERATOR_METRICS_PORT,
    PROMETHEUS_HOST,
    PROMETHEUS_PORT,
    PROMETHEUS_SCRAPE_INTERVAL,
    sandbox_paths,
    tool,
)

NAME = "prometheus"


def base_url() -> str:
    return f"http://{PROMETHEUS_HOST}:{PROMETHEUS_PORT}"


def scrape_job(cluster: str) -> dict[str, Any]:
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "job_name": f"pods-{cluster}",
        "scrape_interval": PROMETHEUS_SCRAPE_INTERVAL,
        "scrape_timeout": "1s",
        "kubernetes_sd_configs": [
            {"role": "pod", "kubeconfig_file": str(sandbox_paths().cluster_kubeconfig(cluster))}
        ],
        "relabel_configs": [
            {"source_labels": [f"{annotation}scrape"], "regex": "true", "action": "keep"},
            {
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "Running",
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_ip", f"{annotation}port"],
                "regex": "(.+);(\\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            # The network rule, enforced where scraping happens: loopback only.
            {"source_labels": ["__address__"], "regex": "127\\.[0-9.]+:\\d+", "action": "keep"},
            {
                "source_labels": [f"{annotation}path"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
            },
            {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            {"target_label": "cluster", "replacement": cluster},
        ],
    }


def config() -> dict[str, Any]:
    return {
        "global": {"scrape_interval": PROMETHEUS_SCRAPE_INTERVAL, "evaluation_interval": "2s"},
        "scrape_configs": [
            *(scrape_job(cluster) for cluster in MEMBER_CLUSTERS),
            # The operator of `make operator-up` (a local process serving the hub).
            {
                "job_name": "modeldr-operator",
                # The operator's series carry their own `cluster` (the member cluster they are
                # about), as the chart's ServiceMonitor keeps it (honorLabels); `hub` labels
                # the others.
                "honor_labels": True,
                "scrape_interval": PROMETHEUS_SCRAPE_INTERVAL,
                "scrape_timeout": "1s",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{OPERATOR_METRICS_PORT}"],
                        "labels": {"cluster": "hub"},
                    }
                ],
            },
        ],
    }


def start() -> str:
    paths = sandbox_paths()
    paths.prometheus_dir.mkdir(parents=True, exist_ok=True)
    config_file = paths.prometheus_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(), sort_keys=False))
    daemons.start(
        NAME,
        [
            tool("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={paths.prometheus_dir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={PROMETHEUS_HOST}:{PROMETHEUS_PORT}",
            "--web.enable-lifecycle",
        ],
        marker="prometheus",
    )
    url = base_url()
    paths.prometheus_url_file.write_text(url + "\n")
    # Already running (sandbox-up is idempotent): pick up a changed configuration.
    with contextlib.suppress(Exception):
        urllib.request.urlopen(urllib.request.Request(url + "/-/reload", method="POST"), timeout=2)
    return url


def stop() -> None:
    daemons.stop(NAME, "prometheus")


def ready() -> bool:
    try:
        with urllib.request.urlopen(base_url() + "/-/ready", timeout=2) as response:
            return int(response.status) == 200
    except Exception:
        return False


def query(expr: str) -> list[dict[str, Any]]:
    """Instant query; the result vector (raises on an error answer)."""
    from urllib.parse import urlencode

    with urllib.request.urlopen(
        f"{base_url()}/api/v1/query?{urlencode({'query': expr})}", timeout=5
    ) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus query {expr!r} failed: {body}")
    return list(body["data"]["result"])
