"""failover.probe on the sandbox: the primary's pods made unreachable to clients while their
readiness probes (which come from the node's address, as a kubelet's do) still pass. With
the probe switched off (`enabled: false`) the operator keeps the traffic there (the API says
all is well); with it on, the primary fails its checks and the operator fails over to the
standby.

The partition is a test-side nftables table dropping TCP to the primary pods' IP:port from
every source but the node's address (127.x only); it is removed whatever happens. The time
from switching the probe on to the failover is printed (a measurement, not an assertion).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldr.kube.constants import GROUP, SWITCH_ANNOTATION, VERSION
from sandbox import kube
from sandbox.config import CLUSTERS
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    condition,
    create,
    custom,
    get,
    manifest,
    serving_everywhere,
    status,
    wait_status,
)
from tests.integration.test_crds import kubectl

pytestmark = pytest.mark.integration

TABLE = "modeldr_test_clientprobe"
PORT = 8080
# Long enough for several periodic checks (healthIntervalSeconds 1, threshold 3).
UNDETECTED_HOLD_S = 8.0


def primary_pod_ips(ns: str) -> list[str]:
    pods = kube.core("primary").list_namespaced_pod(ns, label_selector=f"modeldr.io/name={NAME}")
    ips = [str(p.status.pod_ip) for p in pods.items if p.status.pod_ip]
    assert ips and all(ip.startswith("127.1.") for ip in ips), ips  # loopback only
    return ips


def nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)


@contextlib.contextmanager
def unreachable_to_clients(ips: list[str], node_ip: str) -> Iterator[None]:
    """Drop TCP to the pods' port from anyone but the node (its kubelet's probes pass)."""
    assert node_ip.startswith("127."), node_ip
    rules = "\n".join(
        f"    ip daddr {ip} tcp dport {PORT} ip saddr != {node_ip} drop" for ip in ips
    )
    nft(
        f"table inet {TABLE} {{\n  chain output {{\n"
        f"    type filter hook output priority 0; policy accept;\n{rules}\n  }}\n}}\n"
    )
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", TABLE], check=False, timeout=10)


def patch_failover(ns: str, failover: dict[str, Any]) -> None:
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, NAME, {"spec": {"failover": failover}}
    )


def test_pods_unreachable_to_clients_fail_over_only_with_the_client_probe(hub_ns: str) -> None:
    md = manifest(hub_ns)
    md["spec"]["failover"]["probe"] = {"enabled": False}
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "the ModelDeployment served", timeout=180)
    assert status(hub_ns)["activeCluster"] == "primary"
    ips = primary_pod_ips(hub_ns)
    with unreachable_to_clients(ips, CLUSTERS["primary"].node_ip):
        # With the probe off: every API-level signal passes, so no failover (the gap).
        time.sleep(UNDETECTED_HOLD_S)
        s = status(hub_ns)
        assert s["activeCluster"] == "primary", s
        assert s["primary"]["readyReplicas"] == 1, s["primary"]
        # With it: the primary fails its checks as clients see it, the standby takes over.
        started = time.monotonic()
        patch_failover(
            hub_ns,
            {"probe": {"enabled": True, "request": "inference", "timeoutMilliseconds": 500}},
        )
        s = wait_status(hub_ns, lambda s: s.get("activeCluster") == "standby", "failover", 60)
        took = time.monotonic() - started
        record = s.get("lastFailover") or {}
        print(
            f"\nclient-probe failover: {took:.2f} s from the probe switched on to the standby "
            f"serving; operator: detection {record.get('detectionSeconds')} s, switch "
            f"{record.get('switchSeconds')} s, total {record.get('totalSeconds')} s"
        )
        assert record.get("automatic") is True and record.get("to") == "standby", record
        message = s["primary"]["message"]
        assert "client probe (inference, from its ready endpoints): 0 of 1 answered" in message
        assert "timed out" in message
        # The standby passed the same probe before it got the traffic.
        assert (
            "client probe" in s["standby"]["message"]
            and "1 of 1 answered" in (s["standby"]["message"])
        )
    # The partition gone, the primary passes its probes again.
    wait_status(hub_ns, primary_answers, "the primary answering the probe again", 30)
    assert TABLE not in nft_tables()
    # Back on the primary, probe on: a partition now is found by the periodic check alone
    # (the API shows no change to wake it), then confirmed by failureThreshold checks.
    custom().patch_namespaced_custom_object(
        GROUP,
        VERSION,
        hub_ns,
        PLURAL,
        NAME,
        {"metadata": {"annotations": {SWITCH_ANNOTATION: "primary"}}},
    )
    wait_status(hub_ns, lambda s: s.get("activeCluster") == "primary", "failback", 60)
    wait_status(hub_ns, primary_answers, "the primary probed healthy", 30)
    with unreachable_to_clients(primary_pod_ips(hub_ns), CLUSTERS["primary"].node_ip):
        started = time.monotonic()
        s = wait_status(hub_ns, lambda s: s.get("activeCluster") == "standby", "failover", 60)
        took = time.monotonic() - started
    record = s.get("lastFailover") or {}
    print(
        f"client-probe failover: {took:.2f} s from the partition to the standby serving "
        f"(healthIntervalSeconds 1, failureThreshold 3, timeout 500 ms); operator: detection "
        f"{record.get('detectionSeconds')} s, total {record.get('totalSeconds')} s"
    )
    assert TABLE not in nft_tables()


def primary_answers(s: dict[str, Any]) -> bool:
    return "1 of 1 answered" in ((s.get("primary") or {}).get("message") or "")


def nft_tables() -> str:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    return out.stdout


def test_a_switch_to_a_cluster_that_never_answers_waits_says_why_and_is_dropped(
    hub_ns: str,
) -> None:
    # The standby's probe URL is a closed loopback port: it never answers a client.
    md = manifest(hub_ns)
    md["spec"]["failover"]["switchWaitSeconds"] = 5
    md["spec"]["failover"]["probe"] = {"urls": {"standby": "http://127.0.0.1:9"}}
    create(hub_ns, md)

    def primary_serving_standby_ready_but_silent(s: dict[str, Any]) -> bool:
        answering = (s.get("primary") or {}).get("answering")
        standby = s.get("standby") or {}
        return (
            s.get("phase") in ("Ready", "Degraded")
            and answering == "1/1"
            # Ready as its member says (the two clusters come up in their own time)...
            and standby.get("readyReplicas") == 1
            # ...but it answers nobody.
            and "connection refused" in (standby.get("message") or "")
        )

    wait_status(
        hub_ns,
        primary_serving_standby_ready_but_silent,
        "the primary serving, the standby Ready but answering nobody",
        180,
    )
    # What clients get, in `kubectl get md` (the Ready condition's reason).
    table = kubectl("get", "md", NAME, "-n", hub_ns).stdout
    assert "SERVING" in table.splitlines()[0] and "Serving" in table.splitlines()[1], table
    custom().patch_namespaced_custom_object(
        GROUP,
        VERSION,
        hub_ns,
        PLURAL,
        NAME,
        {"metadata": {"annotations": {SWITCH_ANNOTATION: "standby"}}},
    )
    waiting = wait_status(
        hub_ns, lambda s: condition(hub_ns, "SwitchPending") == "True", "the switch waiting", 30
    )
    assert waiting["activeCluster"] == "primary"

    def dropped() -> bool:
        annotations = get(hub_ns)["metadata"].get("annotations") or {}
        return SWITCH_ANNOTATION not in annotations

    kube.wait_for(dropped, timeout=40, what="the switch request dropped after 5 s")
    assert status(hub_ns)["activeCluster"] == "primary"
    events = (
        kube.core("hub")
        .list_namespaced_event(hub_ns, field_selector=f"involvedObject.name={NAME}")
        .items
    )
    reasons = {e.reason: e.message for e in events}
    assert "waits for standby to answer" in reasons["SwitchWaiting"], reasons
    assert "connection refused" in reasons["SwitchWaiting"]
    assert "never answered" in reasons["SwitchAbandoned"] and "SwitchAbandoned" in {
        e.reason for e in events if e.type == "Warning"
    }
