"""Drills that work on the model's replicas through the member API, on the sandbox:

- ModelCorruption: an extra replica with a tampered artifact must never turn Ready, must name
  the bad file, must never get traffic nor count as a replica, and must be gone (with its
  copy) after the run;
- NodeDrain with the PodDisruptionBudget the operator renders: two replicas on one node, the
  drain evicts one and the budget refuses the other while its eviction would leave none
  available; the cordon is gone after the run;
- NodeDrain and GPULoss with the operator SIGKILLed mid-fault: nobody renews the node's
  expiry annotation, and the node's own agent removes the cordon or the taint when it passes.

One ModelDeployment (2 replicas, both primary replicas on one node) is shared by the module.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from modeldr.api import nodefault
from modeldr.drills.faults.corruption import FAULT_LABEL, LIFETIME_MARGIN_S
from modeldr.kube.constants import DRILLPLANS, DRILLRUNS, GROUP, VERSION
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from sandbox.operator_up import operator_up
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    create,
    custom,
    delete_policy,
    get,
    manifest,
    serving_everywhere,
    status,
    tenant_namespace,
    wait_status,
)

pytestmark = pytest.mark.integration

FINAL = ("Passed", "Failed", "Aborted", "Error", "Inconclusive")
NODE, OTHER_GPU_NODE = "gpu-0", "gpu-1"


def two_ready(s: dict[str, Any]) -> bool:
    return serving_everywhere(s, replicas=2)


def cordon(node: str, on: bool) -> None:
    kube.core("primary").patch_node(node, {"spec": {"unschedulable": on}})


@pytest.fixture(scope="module")
def md_ns(operator: None, sandbox: Sandbox) -> Iterator[str]:
    """The example ModelDeployment with 2 replicas, both primary ones on NODE (the other GPU
    node is cordoned while they are scheduled)."""
    ns = f"r-{int(time.time() * 1000) % 10**8:08d}"
    tenant_namespace(ns)
    try:
        cordon(OTHER_GPU_NODE, True)
        try:
            create(ns, manifest(ns, replicas=2))
            wait_status(ns, two_ready, "2 replicas served in both clusters", timeout=180)
        finally:
            cordon(OTHER_GPU_NODE, False)
        assert {p.spec.node_name for p in primary_pods(ns)} == {NODE}
        yield ns
    finally:
        with contextlib.suppress(Exception):
            custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, NAME)
        kube.wait_for(lambda: not exists(ns), timeout=90, what="the ModelDeployment gone")
        for cluster in ("hub", "primary", "standby"):
            with contextlib.suppress(Exception):
                kube.core(cluster).delete_namespace(ns)
        delete_policy(ns)


def exists(ns: str) -> bool:
    try:
        get(ns)
    except client.ApiException:
        return False
    return True


def primary_pods(ns: str, selector: str = f"modeldr.io/name={NAME}") -> list[Any]:
    return list(kube.core("primary").list_namespaced_pod(ns, label_selector=selector).items)


def plan(name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    spec = {
        **extra,
        "target": {"modelDeployment": NAME},
        "traffic": {"ratePerSecond": 10, "timeoutMilliseconds": 2000},
        "steadyState": {"durationSeconds": 2, "maxErrorRatio": 0.0},
        "steps": steps,
        "blastRadius": {"maxPodsPercent": 100},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DrillPlan",
        "metadata": {"name": name},
        "spec": spec,
    }


def apply_plan(ns: str, body: dict[str, Any]) -> str:
    custom().create_namespaced_custom_object(GROUP, VERSION, ns, DRILLPLANS, body)
    return f"{body['metadata']['name']}-1"


def run_status(ns: str, name: str) -> dict[str, Any]:
    with contextlib.suppress(client.ApiException):
        found = custom().get_namespaced_custom_object(GROUP, VERSION, ns, DRILLRUNS, name)
        return dict(found.get("status") or {})
    return {}


def explain(s: dict[str, Any]) -> str:
    keys = ("phase", "reason", "message", "steps", "faults")
    return json.dumps({k: s.get(k) for k in keys}, indent=1)


def hub_addresses(ns: str) -> set[str]:
    """What clients are sent to: the hub EndpointSlices of the ModelDeployment."""
    slices = client.DiscoveryV1Api(kube.api_client("hub")).list_namespaced_endpoint_slice(ns)
    return {a for s in slices.items for e in (s.endpoints or []) for a in (e.addresses or [])}


def watch_run(ns: str, name: str, each: Any, timeout: float) -> dict[str, Any]:
    """Poll the run until its verdict, calling `each()` every half second meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = run_status(ns, name)
        if s.get("phase") in FINAL:
            return s
        each()
        time.sleep(0.5)
    pytest.fail(f"no verdict for {name}: {explain(run_status(ns, name))}")


def test_a_corrupted_replica_refuses_to_serve_names_the_file_and_leaves_nothing(
    md_ns: str,
) -> None:
    wait_status(md_ns, two_ready, "serving", 120)
    name = apply_plan(
        md_ns,
        plan(
            "corrupt",
            [
                {
                    "name": "corrupt",
                    "fault": {"type": "ModelCorruption", "cluster": "primary"},
                    "durationSeconds": 8,
                    "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
                },
            ],
        ),
    )
    seen: dict[str, Any] = {
        "ips": set(),
        "served": set(),
        "replicas": set(),
        "ready": False,
        "deadlines": set(),
    }

    def each() -> None:
        for pod in primary_pods(md_ns, FAULT_LABEL):
            seen["deadlines"].add(pod.spec.active_deadline_seconds)
            if pod.status.pod_ip:
                seen["ips"].add(pod.status.pod_ip)
            seen["ready"] |= any(c.ready for c in pod.status.container_statuses or [])
        seen["served"] |= hub_addresses(md_ns)
        seen["replicas"].add((status(md_ns).get("primary") or {}).get("replicas"))

    s = watch_run(md_ns, name, each, timeout=120)
    assert s["phase"] == "Passed", explain(s)
    step = s["steps"][0]
    assert "refused to serve" in step["message"], step
    assert "naming the bad file model.safetensors" in step["message"], step
    (fault,) = s["faults"]
    assert (fault["type"], fault["state"]) == ("ModelCorruption", "Undone"), fault
    # It ran, was never Ready, never behind the hub's endpoints, never one of the replicas.
    assert seen["ips"] and not seen["ready"], seen
    assert not seen["ips"] & seen["served"], seen
    assert seen["replicas"] == {2}, seen
    # It would have ended by itself: the step's 8 s and the margin (activeDeadlineSeconds).
    assert seen["deadlines"] == {8 + LIFETIME_MARGIN_S}, seen
    assert fault["parameters"]["holdSeconds"] == "8", fault
    # Undone: the replica and its corrupted copy are gone.
    assert not primary_pods(md_ns, FAULT_LABEL)
    assert not glob.glob(f"/tmp/modeldr-corrupted-{fault['targets'][0]}*")
    assert two_ready(status(md_ns))


def test_a_drain_respects_the_pod_disruption_budget_and_leaves_no_cordon(md_ns: str) -> None:
    wait_status(md_ns, two_ready, "serving", 120)
    before = kube.core("primary").read_node(NODE)
    assert not before.spec.unschedulable
    name = apply_plan(
        md_ns,
        plan(
            "drain",
            [
                {
                    "name": "drain",
                    "fault": {"type": "NodeDrain", "cluster": "primary", "node": NODE},
                    "durationSeconds": 6,
                    "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.1},
                },
            ],
        ),
    )
    lowest: list[int] = []

    def each() -> None:
        available = [
            p
            for p in primary_pods(md_ns)
            if p.metadata.deletion_timestamp is None
            and any(c.ready for c in p.status.container_statuses or [])
        ]
        lowest.append(len(available))

    s = watch_run(md_ns, name, each, timeout=120)
    assert s["phase"] == "Passed", explain(s)
    (fault,) = s["faults"]
    assert fault["state"] == "Undone" and len(fault["targets"]) == 2, fault
    # maxUnavailable 1: the first eviction went through, the second was refused.
    refused = fault["parameters"]["refusedByPodDisruptionBudget"].split(",")
    assert len(refused) == 1 and refused[0] in fault["targets"], fault
    assert "1 of 2 pods evicted; the PodDisruptionBudget refused 1" in s["steps"][0]["message"]
    # A replica served throughout (the budget's whole point).
    assert lowest and min(lowest) >= 1, lowest
    # The refused pod stayed where it was; the cordon is gone.
    pod = kube.core("primary").read_namespaced_pod(refused[0], md_ns)
    assert pod.spec.node_name == NODE and pod.metadata.deletion_timestamp is None
    after = kube.core("primary").read_node(NODE)
    assert not after.spec.unschedulable
    assert (after.spec.taints or []) == (before.spec.taints or [])
    wait_status(md_ns, two_ready, "2 replicas again", 120)


def node_faults(node: Any) -> list[nodefault.Mark]:
    return nodefault.marks(node.metadata.annotations or {})


def restored(node: Any) -> bool:
    taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in node.spec.taints or []]
    return (
        not node.spec.unschedulable
        and not any(nodefault.is_gpu_loss_taint(t) for t in taints)
        and not node_faults(node)
    )


@pytest.mark.parametrize("fault_type", ["NodeDrain", "GPULoss"])
def test_an_operator_killed_mid_fault_leaves_the_node_to_its_agent_to_restore(
    md_ns: str, fault_type: str
) -> None:
    """SIGKILL of the operator while a cordon or a GPU taint holds the node: no renewal comes,
    and when the node's expiry annotation passes the node's agent removes the fault (there
    is no operator to do it); the next operator ends the run Aborted."""
    wait_status(md_ns, two_ready, "serving", 120)
    core = kube.core("primary")
    # Where a replica runs now (an earlier drain may have moved one).
    node = sorted(p.spec.node_name for p in primary_pods(md_ns) if p.spec.node_name)[0]
    assert restored(core.read_node(node))
    step = {
        "name": "hold",
        "fault": {"type": fault_type, "cluster": "primary", "node": node},
        "durationSeconds": 120,
        "expect": {"activeCluster": "unchanged"},
    }
    name = apply_plan(md_ns, plan(f"killed-{fault_type.lower()}", [step], faultExpirySeconds=3))
    kube.wait_for(
        lambda: bool(node_faults(core.read_node(node))), timeout=60, what="the node faulted"
    )
    time.sleep(1.5)  # a few renewals
    pid = int((sandbox_paths().state / "operator.pid").read_text())
    try:
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        [mark] = node_faults(core.read_node(node))
        assert mark.expires_at is not None
        kube.wait_for(
            lambda: restored(core.read_node(node)),
            timeout=15,
            interval=0.05,
            what=f"the node's agent to undo the {fault_type} at its expiry",
        )
        lag = (datetime.now(UTC) - mark.expires_at).total_seconds()
        print(
            f"\n{fault_type}: expiry -> node restored by its agent, no operator: {lag:+.2f} s "
            f"({time.monotonic() - killed:.1f} s after the SIGKILL)"
        )
        assert -0.5 <= lag <= 2.0, lag
        assert time.monotonic() - killed <= 3 + 2.5, "not within one expiry period of the kill"
    finally:
        operator_up()
    s = watch_run(md_ns, name, lambda: None, timeout=90)
    assert s["phase"] == "Aborted" and s["reason"] == "OperatorRestarted", explain(s)
    assert restored(core.read_node(node))
    wait_status(md_ns, two_ready, "2 replicas again", 180)
