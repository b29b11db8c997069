"""Autoscaling on the sandbox (spec.autoscaling): the operator renders an HPA per member on
the model server's own load (modeldr_inflight_requests, served by the members' custom
metrics API from the sandbox's Prometheus), kube-controller-manager's real HPA controller
scales the Deployment, and a cluster taking over a failed peer is scaled at once to the
replicas the peer ran, then back in once the peer serves again and the window passed.

Load enters through the sandbox's HAProxy (the haproxy provider in activeStandby mode), so
it follows the active cluster through the failover."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from modeldr.drills.probe import TrafficProbe, url_resolver
from modeldr.kube.haproxy import HAProxySettings
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.haproxy import settings_env
from tests.integration.modeldeployments import (
    NAME,
    create,
    manifest,
    wait_status,
)

pytestmark = pytest.mark.integration

PORT = 19312
ENTRY = HAProxySettings.from_env(settings_env()).entry_url(PORT)
TEXTS = ["a wonderful film", "a dull and tiresome film", "the plot was thin but fun"]
WINDOW_S = 15


def autoscaled(hub_ns: str, primary: dict[str, int], standby: dict[str, int]) -> dict[str, Any]:
    md = manifest(
        hub_ns,
        traffic={"provider": "haproxy", "haproxy": {"frontendPort": PORT}},
        autoscaling={
            "targetInflightPerPod": 0.05,
            "primary": primary,
            "standby": standby,
            "scaleDownStabilizationSeconds": WINDOW_S,
        },
    )
    # A warm standby keeps fewer replicas than spec.replicas (CEL); with autoscaling,
    # spec.replicas sizes nothing else.
    md["spec"]["replicas"] = 2
    md["spec"]["clusters"]["standby"].update({"mode": "warm", "replicas": 1})
    return md


def deployment_replicas(cluster: str, namespace: str) -> int:
    apps = client.AppsV1Api(kube.api_client(cluster))
    return int(apps.read_namespaced_deployment(NAME, namespace).spec.replicas or 0)


def hpa(cluster: str, namespace: str) -> Any:
    scalers = client.AutoscalingV2Api(kube.api_client(cluster))
    return scalers.read_namespaced_horizontal_pod_autoscaler(NAME, namespace)


def wait_replicas(cluster: str, namespace: str, want: Any, what: str, timeout: float) -> float:
    """Seconds until the Deployment's replicas satisfy `want`."""
    started = time.monotonic()
    last = -1
    while time.monotonic() - started < timeout:
        try:
            last = deployment_replicas(cluster, namespace)
            if want(last):
                return time.monotonic() - started
        except client.ApiException:
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; replicas {last}")


def test_the_hpa_scales_the_primary_out_under_load_and_back_in_after(hub_ns: str) -> None:
    create(hub_ns, autoscaled(hub_ns, {"minReplicas": 1, "maxReplicas": 3}, {"maxReplicas": 3}))
    wait_status(hub_ns, lambda s: s.get("phase") == "Ready", "the model Ready")
    scaler = hpa("primary", hub_ns)
    assert (scaler.spec.min_replicas, scaler.spec.max_replicas) == (1, 3)
    assert scaler.spec.metrics[0].pods.metric.name == "modeldr_inflight_requests"
    assert deployment_replicas("primary", hub_ns) == 1
    probe = TrafficProbe(
        url_resolver(ENTRY), rate_per_second=25, timeout_s=3.0, inputs=TEXTS, max_seconds=120
    ).start()
    try:
        out_s = wait_replicas("primary", hub_ns, lambda n: n >= 2, "a scale-out under load", 90)
    finally:
        probe.stop(wait_s=5)
    samples = probe.samples()
    failed = [x for x in samples if not x.ok]
    # The HPA read the server's load through the aggregated custom metrics API.
    current = hpa("primary", hub_ns).status.current_metrics[0].pods.current.average_value
    print(
        f"\nautoscaler: scaled out {out_s:.1f} s after load began at 25/s "
        f"(in flight per pod then {current}); {len(failed)} of {len(samples)} requests failed"
    )
    assert not failed, failed[:3]
    # No load: back to 1 after the stabilization window.
    in_s = wait_replicas("primary", hub_ns, lambda n: n == 1, "a scale-in without load", 90)
    print(f"autoscaler: back to 1 replica {in_s:.1f} s after the load stopped")
    assert in_s >= WINDOW_S - 5


def test_the_standby_takes_the_primarys_replicas_at_once_and_gives_them_back_after(
    hub_ns: str, sandbox: Sandbox
) -> None:
    md = autoscaled(hub_ns, {"minReplicas": 3, "maxReplicas": 3}, {"maxReplicas": 4})
    md["spec"]["failover"] = {"failback": {"mode": "automatic", "holdDownSeconds": 30}}
    create(hub_ns, md)
    wait_status(
        hub_ns,
        lambda s: (s.get("primary") or {}).get("readyReplicas") == 3 and s.get("phase") == "Ready",
        "3 primary replicas Ready",
        180,
    )
    assert deployment_replicas("standby", hub_ns) == 1  # warm: its own size while idle
    outage_at = time.monotonic()
    sandbox.outage("primary")
    try:
        wait_status(
            hub_ns,
            lambda s: s.get("activeCluster") == "standby",
            "the failover to the standby",
            60,
        )
        switched_s = time.monotonic() - outage_at
        scaled_s = wait_replicas(
            "standby", hub_ns, lambda n: n == 3, "the standby at the primary's 3 replicas", 30
        )
        assert hpa("standby", hub_ns).spec.min_replicas == 3
        ready = wait_status(
            hub_ns,
            lambda s: (s.get("standby") or {}).get("readyReplicas") == 3,
            "3 standby replicas Ready",
            120,
        )
        assert ready["activeCluster"] == "standby"
        ready_s = time.monotonic() - outage_at
    finally:
        sandbox.restore("primary")
    print(
        f"\nfailover with autoscaling: switched {switched_s:.1f} s after the outage, the "
        f"standby at 3 replicas {scaled_s:.1f} s later, all Ready {ready_s:.1f} s after it"
    )
    # The primary serves again (automatic failback): the standby goes back to its warm size
    # once the window after the primary's last failed check has passed.
    wait_status(hub_ns, lambda s: s.get("activeCluster") == "primary", "the failback", 180)
    wait_replicas("standby", hub_ns, lambda n: n == 1, "the standby back at 1", 120)
    assert hpa("standby", hub_ns).spec.min_replicas == 1
