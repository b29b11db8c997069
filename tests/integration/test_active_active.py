"""Active-active serving through a real HAProxy (the sandbox's, Debian's package) on the
sandbox: both clusters answer by their weights, the balance mode changes by reload, and a
primary outage costs at most the requests of the health check's window (HAProxy's own
checks and redispatch catch most), the primary's weight withdrawn and given back after the
hold-down. Every request is attributed to a cluster by the `Modeldr-Cluster` header HAProxy
sets from the answering server's slot."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldr.drills.probe import TrafficProbe, post_predict, url_resolver
from modeldr.kube.constants import GROUP, VERSION
from modeldr.kube.haproxy import HAProxySettings
from sandbox.api import Sandbox
from sandbox.haproxy import settings_env
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    create,
    custom,
    manifest,
    serving_everywhere,
    wait_status,
)
from tests.integration.test_drills import apply_plan, explain, finished, plan

pytestmark = pytest.mark.integration

EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "examples/sandbox/drillplan-active-active.yaml"
PORT = 19311
ENTRY = HAProxySettings.from_env(settings_env()).entry_url(PORT)
TEXTS = ["a wonderful film", "a dull and tiresome film"]


def active_active(**traffic: Any) -> dict[str, Any]:
    return {
        "provider": "haproxy",
        "mode": "activeActive",
        "haproxy": {"frontendPort": PORT},
    } | traffic


def traffic_of(s: dict[str, Any]) -> dict[str, tuple[int, str, int]]:
    """role -> (weight, state, servers) from status.traffic."""
    return {
        c["role"]: (c["weight"], c["state"], c["servers"])
        for c in (s.get("traffic") or {}).get("clusters") or []
    }


def split(requests: int) -> collections.Counter[str]:
    """`requests` predictions in turn through the frontend, counted by the cluster that
    answered (or the error)."""
    endpoints = url_resolver(ENTRY)()
    counts: collections.Counter[str] = collections.Counter()
    for i in range(requests):
        try:
            _, cluster = post_predict(endpoints, endpoints.addresses[0], [TEXTS[i % 2]], 3.0)
            counts[cluster or "unnamed"] += 1
        except Exception as exc:  # counted, not raised: the split is what is asserted
            counts[f"error {type(exc).__name__}"] += 1
    return counts


def patch_traffic(hub_ns: str, traffic: dict[str, Any]) -> None:
    patch = {"spec": {"traffic": traffic}}
    custom().patch_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME, patch)


def test_both_clusters_serve_by_their_weights_in_each_balance_mode(hub_ns: str) -> None:
    create(hub_ns, manifest(hub_ns, traffic=active_active()))
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    s = wait_status(
        hub_ns,
        lambda s: traffic_of(s) == {"primary": (50, "Serving", 1), "standby": (50, "Serving", 1)},
        "both clusters Serving at 50 in status.traffic",
        60,
    )
    assert s["traffic"]["mode"] == "activeActive" and s["traffic"]["provider"] == "haproxy"
    # HAProxy's first health checks (inter 1 s, rise 2) pass before both are used.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(split(4)) < 2:
        time.sleep(0.5)
    even = split(100)
    print(f"\nroundrobin 50/50: {dict(even)}")
    assert even == {"primary": 50, "standby": 50}, even

    patch_traffic(hub_ns, {"weights": {"primary": 80, "standby": 20}})
    wait_status(hub_ns, lambda s: traffic_of(s).get("primary", (0,))[0] == 80, "weights 80/20", 30)
    weighted = split(100)
    print(f"roundrobin 80/20: {dict(weighted)}")
    assert weighted == {"primary": 80, "standby": 20}, weighted

    # leastconn: the backend is reloaded with the new balance; requests in turn (one
    # connection at a time) follow the weights too.
    patch_traffic(hub_ns, {"balance": "leastconn", "weights": {"primary": 50, "standby": 50}})
    wait_status(hub_ns, lambda s: traffic_of(s).get("primary", (0,))[0] == 50, "weights 50/50", 30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(split(4)) < 2:
        time.sleep(0.5)
    least = split(100)
    print(f"leastconn 50/50: {dict(least)}")
    assert set(least) == {"primary", "standby"} and min(least.values()) >= 35, least

    # All the weight on the standby: the primary drains, nothing reaches it.
    patch_traffic(hub_ns, {"weights": {"primary": 0, "standby": 100}})
    s = wait_status(hub_ns, lambda s: traffic_of(s).get("primary", (1,))[0] == 0, "primary 0", 30)
    assert traffic_of(s)["primary"][1] == "NoWeight", s["traffic"]
    assert split(40) == {"standby": 40}


def test_a_primary_outage_costs_at_most_the_check_window_and_the_weight_comes_back(
    hub_ns: str, sandbox: Sandbox
) -> None:
    md = manifest(hub_ns, traffic=active_active())
    md["spec"]["failover"] = {"failback": {"holdDownSeconds": 10}}
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    wait_status(
        hub_ns,
        lambda s: traffic_of(s) == {"primary": (50, "Serving", 1), "standby": (50, "Serving", 1)},
        "both clusters Serving",
        60,
    )
    probe = TrafficProbe(
        url_resolver(ENTRY), rate_per_second=20, timeout_s=2.0, inputs=TEXTS, max_seconds=120
    ).start()
    try:
        time.sleep(3)
        outage_at = time.monotonic()
        sandbox.outage("primary")
        try:
            wait_status(
                hub_ns,
                lambda s: traffic_of(s).get("primary", (1, ""))[:2] == (0, "Unhealthy"),
                "the primary's weight withdrawn",
                60,
            )
            withdrawn_s = time.monotonic() - outage_at
            time.sleep(3)
            during = probe.samples(since=outage_at)
        finally:
            sandbox.restore("primary")
        wait_status(
            hub_ns,
            lambda s: traffic_of(s).get("primary", (0, ""))[:2] == (50, "Serving"),
            "the primary's weight back after the hold-down",
            180,
        )
        back = time.monotonic()
        time.sleep(2)
        after = probe.samples(since=back)
    finally:
        probe.stop(wait_s=5)
    failed = [x for x in during if not x.ok]
    ratio = len(failed) / max(1, len(during))
    print(
        f"\nactive-active primary outage: weight withdrawn after {withdrawn_s:.1f} s; "
        f"{len(failed)} of {len(during)} requests failed ({ratio:.1%}); "
        f"{collections.Counter(x.cluster for x in during if x.ok)}"
    )
    # HAProxy's redispatch retries refused connections on the standby; what may fail are
    # requests in flight when the primary's server died (at most the check window's).
    assert ratio <= 0.1, failed[:5]
    assert {x.cluster for x in during[-20:] if x.ok} == {"standby"}
    assert {x.cluster for x in after if x.ok} == {"primary", "standby"}, after[-10:]


def test_a_drill_of_a_primary_outage_sees_one_cluster_then_both(
    hub_ns: str, sandbox: Sandbox
) -> None:
    """examples/sandbox/drillplan-active-active.yaml's steps, shorter: the probe enters at the
    HAProxy frontend (no traffic.url), the outage step ends with the standby alone answering
    and its replicas ready, the Wait step with both clusters answering again."""
    md = manifest(hub_ns, traffic=active_active())
    md["spec"]["failover"] = {"failback": {"holdDownSeconds": 10}}
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    example = yaml.safe_load(EXAMPLE_PLAN.read_text())["spec"]
    outage, back, load = example["steps"]
    outage["durationSeconds"], back["durationSeconds"], load["durationSeconds"] = 15, 30, 10
    outage["expect"]["minReplicas"] = {"standby": 1}
    load["action"]["rampSeconds"] = 4
    body = plan(
        "aa-outage",
        [outage, back, load],
        traffic=example["traffic"],
        blastRadius={"maxPodsPercent": 50},
    )
    s = finished(hub_ns, apply_plan(hub_ns, body), timeout=240)
    assert s["phase"] == "Passed", explain(s)
    during, after, loaded = s["steps"]
    assert during["answeringClusters"] == ["standby"], during
    assert during["readyReplicas"]["standby"] == 1, during
    assert after["answeringClusters"] == ["primary", "standby"], after
    # 20 -> 60/s over 4 s (160 requests), then 6 s at 60/s (360): about 520 in the Load
    # step's window (it lasts a little longer than the step: the assessment, the next start).
    assert 480 <= loaded["requests"] <= 600, loaded
    assert loaded["answeringClusters"] == ["primary", "standby"], loaded
    steady = s["steadyState"]["after"]
    assert steady["requests"] <= 20 * 2 * 1.5, steady  # back at the plan's 20/s after it
    print(
        f"\nactive-active outage drill: error ratio {during['errorRatio']} "
        f"({during.get('failedRequests')} of {during.get('requests')} failed), RTO "
        f"{during.get('rtoSeconds')} s, p99 {during.get('p99LatencyMs')} ms; at 60/s: p99 "
        f"{loaded.get('p99LatencyMs')} ms, {loaded['requests']} requests"
    )
