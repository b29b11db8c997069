"""The drill engine on the sandbox, end to end: DrillPlans applied to the hub start
DrillRuns that the operator (under the chart's RBAC) runs against a served tiny BERT with
real faults (member API, the sandbox's infrastructure webhook), real probe traffic, real
Prometheus gates and real model checks. Every test checks what the run says and that the
clusters are as before it (no cordon, taint or outage left).

Durations are short on purpose: the engine's behaviour, not the model's, is under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from modeldr.kube.constants import (
    DRILL_PLAN_LABEL,
    DRILLPLANS,
    DRILLRUNS,
    DRILLS_LABEL,
    GPU_RESOURCE,
    GROUP,
    SWITCH_ANNOTATION,
    VERSION,
)
from sandbox import daemons, kube, prometheus
from sandbox.api import FAILED_NODE_LEASE_HOLDER, Sandbox
from sandbox.config import OPERATOR_METRICS_PORT, sandbox_paths
from sandbox.operator_up import operator_up
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    ROOT,
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

GOLDEN_SET = ROOT / "examples/sandbox/golden-set.yaml"
FINAL = ("Passed", "Failed", "Aborted", "Error", "Inconclusive")
# The model server's request counter as the sandbox's Prometheus scrapes it.
REQUESTS = 'sum(rate(modeldr_serve_requests_total{{cluster="{cluster}", namespace="{ns}"}}[15s]))'


@contextlib.contextmanager
def own_modeldeployment(
    prefix: str, md_spec: Callable[[dict[str, Any]], None], serving: Callable[[Any], bool]
) -> Iterator[str]:
    """A hub namespace of its own with the golden set and the example ModelDeployment as
    `md_spec` changes it, once `serving` holds; everything removed afterwards."""
    ns = f"{prefix}-{int(time.time() * 1000) % 10**8:08d}"
    tenant_namespace(ns)
    try:
        kube.core("hub").create_namespaced_config_map(ns, yaml.safe_load(GOLDEN_SET.read_text()))
        md = manifest(ns)
        md_spec(md["spec"])
        create(ns, md)
        wait_status(ns, serving, "the ModelDeployment served", timeout=180)
        yield ns
    finally:
        with contextlib.suppress(Exception):
            custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, NAME)
        kube.wait_for(lambda: not _exists(ns), timeout=90, what="the ModelDeployment gone")
        for cluster in ("hub", "primary", "standby"):
            with contextlib.suppress(Exception):
                kube.core(cluster).delete_namespace(ns)
        delete_policy(ns)


@pytest.fixture(scope="module")
def drill_ns(operator: None, sandbox: Sandbox) -> Iterator[str]:
    """One hub namespace with the example ModelDeployment (1 replica per cluster, opted in
    to drills) and its golden set, shared by the module's drills: each drill leaves it as it
    found it, which is what the tests check."""
    with own_modeldeployment("d", lambda spec: None, serving_everywhere) as ns:
        yield ns


def _exists(ns: str) -> bool:
    try:
        get(ns)
    except client.ApiException:
        return False
    return True


def plan(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"modelDeployment": NAME},
        "traffic": {"ratePerSecond": 10, "timeoutMilliseconds": 2000},
        "steadyState": {"durationSeconds": 2, "maxErrorRatio": 0.0},
        "steps": steps,
        "blastRadius": {"maxPodsPercent": 100},  # one replica per cluster
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DrillPlan",
        "metadata": {"name": name},
        "spec": body,
    }


def apply_plan(ns: str, body: dict[str, Any]) -> str:
    """Create the plan; returns the name of the run it starts (generation 1)."""
    custom().create_namespaced_custom_object(GROUP, VERSION, ns, DRILLPLANS, body)
    return f"{body['metadata']['name']}-1"


def run(ns: str, name: str) -> dict[str, Any]:
    return dict(custom().get_namespaced_custom_object(GROUP, VERSION, ns, DRILLRUNS, name))


def run_status(ns: str, name: str) -> dict[str, Any]:
    with contextlib.suppress(client.ApiException):
        return dict(run(ns, name).get("status") or {})
    return {}


def wait_run(ns: str, name: str, predicate: Any, what: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = run_status(ns, name)
        if predicate(last):
            return last
        time.sleep(0.5)
    pytest.fail(
        f"timed out waiting for {what} of {name}; last status:\n{json.dumps(last, indent=1)}"
    )


def finished(ns: str, name: str, timeout: float = 180) -> dict[str, Any]:
    return wait_run(ns, name, lambda s: s.get("phase") in FINAL, "the verdict", timeout)


def explain(s: dict[str, Any]) -> str:
    return json.dumps(
        {k: s.get(k) for k in ("phase", "reason", "message", "steps", "faults")}, indent=1
    )


def primary_node(ns: str) -> str:
    pods = kube.core("primary").list_namespaced_pod(ns, label_selector=f"modeldr.io/name={NAME}")
    nodes = {str(p.spec.node_name) for p in pods.items if p.spec.node_name}
    assert len(nodes) == 1, nodes
    return nodes.pop()


def node_state(node: str) -> tuple[bool, list[tuple[str, str, str]]]:
    """What a drill may change on a node: its cordon and its taints."""
    obj = kube.core("primary").read_node(node)
    taints = sorted((t.key, t.value or "", t.effect) for t in obj.spec.taints or [])
    return bool(obj.spec.unschedulable), taints


def drill_taints(node: str) -> list[tuple[str, str, str]]:
    return [t for t in node_state(node)[1] if t[0] == GPU_RESOURCE and t[2] == "NoExecute"]


@pytest.fixture(autouse=True)
def serving_before_and_after(drill_ns: str) -> Iterator[None]:
    """Each drill starts on a model served in both clusters (a drained pod is rescheduled
    and warms up before the next drill's steady state)."""
    wait_status(drill_ns, serving_everywhere, "model servers Ready in both clusters", 180)
    if status(drill_ns).get("activeCluster") != "primary":
        # A drill that ended on the standby (by design or not) is failed back first, so each
        # drill starts from the primary; the failback is the operator's own switch.
        failback = {"metadata": {"annotations": {SWITCH_ANNOTATION: "primary"}}}
        custom().patch_namespaced_custom_object(GROUP, VERSION, drill_ns, PLURAL, NAME, failback)
        wait_status(drill_ns, lambda s: s.get("activeCluster") == "primary", "failback", 60)
    yield
    wait_status(drill_ns, serving_everywhere, "model servers Ready again", 180)


def drill_condition(ns: str) -> str | None:
    for c in status(ns).get("conditions") or []:
        if c["type"] == "DrillInProgress":
            return str(c["status"])
    return None


def test_a_healthy_drill_passes_with_gates_and_model_checks(drill_ns: str) -> None:
    body = plan(
        "healthy",
        [
            {
                "name": "hold",
                "action": {"type": "Wait"},
                "durationSeconds": 8,
                "expect": {
                    "activeCluster": "unchanged",
                    "maxErrorRatio": 0.0,
                    "maxRTOSeconds": 2,
                    "maxP99LatencyMs": 1500,
                },
            }
        ],
        # The module's first drill: the server's request counter is born with the probe's
        # first request, and rate() needs two scrapes of it (the sandbox scrapes every 2 s):
        # the gate waits that out, as a user's gate on a fresh series would.
        gates=[
            {
                "name": "primary-answers",
                "steps": ["hold"],
                "prometheus": {"query": REQUESTS.format(cluster="primary", ns=drill_ns)},
                "initialDelaySeconds": 3,
                "intervalSeconds": 2,
                "count": 2,
                "successCondition": "result[0] > 0",
            }
        ],
        abortConditions=[{"name": "all-failing", "maxErrorRatio": 0.9, "windowSeconds": 5}],
        modelChecks={
            "goldenSet": {"configMapRef": {"name": "tiny-bert-golden"}},
            "minAgreement": 1.0,
        },
    )
    name = apply_plan(drill_ns, body)
    wait_run(drill_ns, name, lambda s: s.get("phase") == "Running", "Running", 60)
    wait_status(drill_ns, lambda s: drill_condition(drill_ns) == "True", "DrillInProgress", 30)
    s = finished(drill_ns, name)
    assert s["phase"] == "Passed", explain(s)
    assert s["reason"] == "AllPassed"
    step = s["steps"][0]
    assert step["phase"] == "Passed" and step["requests"] > 0 and step["errorRatio"] == 0
    assert step["activeCluster"] == "primary"
    gate = s["gates"][0]
    assert gate["phase"] == "Passed" and gate["successful"] == 2, gate
    checks = {c["name"]: c for c in s["modelChecks"]}
    assert set(checks) == {"baseline", "hold"}
    assert checks["hold"]["agreement"] == 1 and checks["hold"]["servedDigest"].startswith("sha256:")
    assert s["steadyState"]["before"]["phase"] == "Passed"
    assert s["steadyState"]["after"]["phase"] == "Passed"

    # The plan shows its last run (written just after the run's own verdict), the
    # ModelDeployment no drill any more.
    def last_run() -> dict[str, Any]:
        plan_status = custom().get_namespaced_custom_object(
            GROUP, VERSION, drill_ns, DRILLPLANS, "healthy"
        )
        return dict((plan_status.get("status") or {}).get("lastRun") or {})

    kube.wait_for(
        lambda: last_run().get("phase") == "Passed", timeout=10, what="the plan's lastRun Passed"
    )
    assert last_run()["name"] == name
    wait_status(drill_ns, lambda _: drill_condition(drill_ns) == "False", "DrillInProgress off", 30)
    assert run(drill_ns, name)["metadata"]["labels"][DRILL_PLAN_LABEL] == "healthy"


def test_a_primary_outage_fails_over_within_the_rto_and_everything_comes_back(
    drill_ns: str, sandbox: Sandbox
) -> None:
    body = plan(
        "outage",
        [
            {
                "name": "primary-outage",
                "fault": {"type": "ClusterOutage", "cluster": "primary"},
                "durationSeconds": 15,
                "expect": {"activeCluster": "standby", "maxRTOSeconds": 10},
            },
            # At once after the restore: the operator holds the switch until the primary's
            # restarted servers answer; clients pay at most 1% of their requests (at 20/s).
            {
                "name": "failback",
                "action": {"type": "Failback"},
                "durationSeconds": 20,
                "expect": {"activeCluster": "primary", "maxErrorRatio": 0.01},
            },
        ],
        traffic={"ratePerSecond": 20, "timeoutMilliseconds": 2000},
    )
    name = apply_plan(drill_ns, body)
    s = finished(drill_ns, name, timeout=240)
    assert s["phase"] == "Passed", explain(s)
    outage = s["steps"][0]
    assert outage["activeCluster"] == "standby" and 0 < outage["rtoSeconds"] <= 10, outage
    assert outage["failedRequests"] > 0  # clients saw the outage: the RTO is real
    (fault,) = s["faults"]
    assert fault["type"] == "ClusterOutage" and fault["state"] == "Undone", fault
    assert fault["provider"] == "webhook" and fault["targets"] == ["primary"]
    assert fault["recordedAt"] <= fault["appliedAt"] <= fault["undoneAt"]
    assert kube.apiserver_ready("primary")
    assert status(drill_ns)["activeCluster"] == "primary"
    failback = s["steps"][1]
    print(
        f"\nimmediate failback after a restore (drill step): error ratio "
        f"{failback['errorRatio']} ({failback.get('failedRequests')} failed), RTO "
        f"{failback.get('rtoSeconds')} s"
    )


def test_an_abort_condition_stops_the_run_and_undoes_the_drain(drill_ns: str) -> None:
    node = primary_node(drill_ns)
    before = node_state(node)
    # Prometheus's clock passes a moment a few seconds ahead: the condition starts to hold
    # while the node is drained (after the 2 s steady state).
    at = time.time() + 8
    body = plan(
        "abort",
        [
            {
                "name": "drain",
                "fault": {"type": "NodeDrain", "cluster": "primary"},
                "durationSeconds": 120,
            }
        ],
        abortConditions=[
            {
                "name": "clock",
                "prometheus": {"query": "time()"},
                "condition": f"result[0] > {at:.1f}",
            }
        ],
    )
    name = apply_plan(drill_ns, body)
    _wait_applied(drill_ns, name)
    assert node_state(node)[0], "the node is cordoned while the fault is on"
    s = finished(drill_ns, name, timeout=60)
    assert s["phase"] == "Aborted" and s["reason"] == "AbortConditionMet", explain(s)
    assert s["abortConditions"][0]["phase"] == "Aborted"
    assert s["steps"][0]["phase"] == "Aborted"
    (fault,) = s["faults"]
    assert fault["state"] == "Undone", fault
    # DRILLS.md: within 5 s of the condition holding, every fault is undone.
    undone = datetime.fromisoformat(fault["undoneAt"].replace("Z", "+00:00")).timestamp()
    assert undone - at < 5, (undone, at)
    assert node_state(node) == before


def test_a_run_stopped_by_hand_undoes_its_fault(drill_ns: str) -> None:
    node = primary_node(drill_ns)
    before = node_state(node)
    name = apply_plan(
        drill_ns,
        plan(
            "by-hand",
            [
                {
                    "name": "gpus-gone",
                    "fault": {"type": "GPULoss", "cluster": "primary"},
                    "durationSeconds": 120,
                }
            ],
        ),
    )
    _wait_applied(drill_ns, name)
    assert drill_taints(node), "the GPU taint is on while the fault is"
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, drill_ns, DRILLRUNS, name, {"spec": {"abort": True}}
    )
    s = finished(drill_ns, name, timeout=60)
    assert s["phase"] == "Aborted" and s["reason"] == "StoppedByHand", explain(s)
    assert [f["state"] for f in s["faults"]] == ["Undone"]
    assert node_state(node) == before


@contextlib.contextmanager
def prometheus_frozen() -> Iterator[None]:
    """Prometheus SIGSTOPped: its port still accepts connections, nothing answers (a hung
    Prometheus, the worst case for a caller: it waits out its timeout)."""
    pid = daemons.running_pid(prometheus.NAME, "prometheus")
    assert pid, "the sandbox's Prometheus is not running"
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        kube.wait_for(prometheus.ready, timeout=30, what="Prometheus answering again")


def test_a_stop_by_hand_acts_within_seconds_while_prometheus_hangs(drill_ns: str) -> None:
    """Two PromQL abort conditions with 30 s timeouts and Prometheus frozen: the stop by
    hand still ends the run within seconds, its fault undone (DRILLS.md: a manual abort
    acts at once; the conditions' queries are not waited for)."""
    node = primary_node(drill_ns)
    before = node_state(node)
    slow = {"query": "vector(0)", "timeoutSeconds": 30}
    conditions = [
        {"name": f"never-{n}", "prometheus": slow, "condition": "result[0] > 5"} for n in (1, 2)
    ]
    body = plan(
        "hung-prometheus",
        [
            {
                "name": "gpus-gone",
                "fault": {"type": "GPULoss", "cluster": "primary"},
                "durationSeconds": 120,
            }
        ],
        abortConditions=conditions,
    )
    name = apply_plan(drill_ns, body)
    _wait_applied(drill_ns, name)
    with prometheus_frozen():
        time.sleep(3)  # the watch's next round of queries is now waiting on Prometheus
        asked = time.monotonic()
        custom().patch_namespaced_custom_object(
            GROUP, VERSION, drill_ns, DRILLRUNS, name, {"spec": {"abort": True}}
        )
        s = finished(drill_ns, name, timeout=30)
        took = time.monotonic() - asked
    print(f"\nstop by hand -> run ended, Prometheus frozen: {took:.2f} s")
    assert s["phase"] == "Aborted" and s["reason"] == "StoppedByHand", explain(s)
    assert [f["state"] for f in s["faults"]] == ["Undone"]
    assert took < 10, f"the stop by hand waited on Prometheus: {took:.1f} s"
    assert node_state(node) == before


def test_a_run_is_refused_when_its_target_did_not_opt_in(drill_ns: str) -> None:
    patch = {"metadata": {"labels": {DRILLS_LABEL: None}}}
    custom().patch_namespaced_custom_object(GROUP, VERSION, drill_ns, PLURAL, NAME, patch)
    try:
        name = apply_plan(
            drill_ns,
            plan(
                "not-opted-in",
                [{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 5}],
            ),
        )
        s = finished(drill_ns, name, timeout=60)
    finally:
        restore = {"metadata": {"labels": {DRILLS_LABEL: "enabled"}}}
        custom().patch_namespaced_custom_object(GROUP, VERSION, drill_ns, PLURAL, NAME, restore)
    assert s["phase"] == "Error" and s["reason"] == "TargetNotOptedIn", explain(s)
    assert not s.get("faults")


def test_what_cannot_be_tested_is_never_passed(drill_ns: str) -> None:
    """Zero matching targets is Error with nothing injected; a gate on a series that does not
    exist is Inconclusive (an empty result is no evidence). (A fault the cluster cannot make,
    Latency without tc netem, is Error/FaultUnsupported: test_network_faults.py.)"""
    zero = apply_plan(
        drill_ns,
        plan(
            "zero-targets",
            [
                {
                    "name": "kill-none",
                    "fault": {"type": "PodKill", "mode": "percent", "value": 0},
                    "durationSeconds": 5,
                }
            ],
        ),
    )
    s = finished(drill_ns, zero, timeout=60)
    assert s["phase"] == "Error" and s["reason"] == "NoTargets", explain(s)
    assert s["steps"][0]["reason"] == "NoTargets" and not s.get("faults")
    empty_gate = apply_plan(
        drill_ns,
        plan(
            "empty-gate",
            [{"name": "hold", "action": {"type": "Wait"}, "durationSeconds": 4}],
            gates=[
                {
                    "name": "nothing",
                    "prometheus": {"query": "no_such_series_anywhere"},
                    "intervalSeconds": 1,
                    "successCondition": "result[0] > 0",
                }
            ],
        ),
    )
    s = finished(drill_ns, empty_gate, timeout=90)
    assert s["phase"] == "Inconclusive" and s["reason"] == "MetricsMissing", explain(s)
    assert s["gates"][0]["inconclusive"] > 0 and s["gates"][0]["successful"] == 0


def test_one_run_per_target_at_a_time(drill_ns: str) -> None:
    first = apply_plan(
        drill_ns,
        plan("long", [{"name": "hold", "action": {"type": "Wait"}, "durationSeconds": 120}]),
    )
    wait_run(drill_ns, first, lambda s: s.get("phase") == "Running", "Running", 60)
    second = apply_plan(
        drill_ns,
        plan("second", [{"name": "hold", "action": {"type": "Wait"}, "durationSeconds": 5}]),
    )
    s = finished(drill_ns, second, timeout=60)
    assert s["phase"] == "Error" and s["reason"] == "TargetBusy", explain(s)
    assert first in s["message"]
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, drill_ns, DRILLRUNS, first, {"spec": {"abort": True}}
    )
    s = finished(drill_ns, first, timeout=30)
    assert s["phase"] == "Aborted" and s["reason"] == "StoppedByHand", explain(s)


def _wait_applied(ns: str, name: str) -> dict[str, Any]:
    def applied(s: dict[str, Any]) -> bool:
        return any(f.get("state") == "Applied" for f in s.get("faults") or [])

    return wait_run(ns, name, applied, "the fault applied", 60)


def test_deleting_a_run_mid_fault_undoes_the_fault(drill_ns: str) -> None:
    node = primary_node(drill_ns)
    before = node_state(node)
    name = apply_plan(
        drill_ns,
        plan(
            "deleted",
            [
                {
                    "name": "drain",
                    "fault": {"type": "NodeDrain", "cluster": "primary"},
                    "durationSeconds": 120,
                }
            ],
        ),
    )
    _wait_applied(drill_ns, name)
    assert node_state(node)[0], "the node is cordoned while the fault is on"
    custom().delete_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLRUNS, name)
    kube.wait_for(lambda: not run_status(drill_ns, name), timeout=90, what="the run gone")
    assert node_state(node) == before


def test_an_operator_killed_during_an_outage_is_rolled_back_by_the_next_one(
    drill_ns: str,
) -> None:
    """SIGKILL of the operator while the standby is dark: nothing can undo it but the next
    operator, which finds the run Running, restores the standby through the provider and
    ends the run Aborted."""
    name = apply_plan(
        drill_ns,
        plan(
            "restart",
            [
                {
                    "name": "standby-dark",
                    "fault": {"type": "ClusterOutage", "cluster": "standby"},
                    "durationSeconds": 120,
                }
            ],
        ),
    )
    _wait_applied(drill_ns, name)
    assert not kube.apiserver_ready("standby")
    pid = int((sandbox_paths().state / "operator.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # no chance to undo anything itself
    kube.wait_for(lambda: not _alive(pid), timeout=10, what="the operator gone")
    operator_up()
    s = finished(drill_ns, name, timeout=120)
    assert s["phase"] == "Aborted" and s["reason"] == "OperatorRestarted", explain(s)
    assert [f["state"] for f in s["faults"]] == ["Undone"]
    assert kube.apiserver_ready("standby")


def test_a_failover_the_standby_has_no_gpus_for_fails_before_anything_is_touched(
    operator: None, sandbox: Sandbox
) -> None:
    """A cold standby whose GPU nodes are full: preflight says the failover the plan would
    cause cannot happen (Failed, StandbyCapacityInsufficient), with nothing injected. The
    plan comes right after the standby fills up, before the ModelDeployment's status can
    have seen it: preflight reads the standby's nodes and pods as they are."""

    def cold(spec: dict[str, Any]) -> None:
        spec["clusters"]["standby"]["mode"] = "cold"

    def primary_serving(s: dict[str, Any]) -> bool:
        return (s.get("primary") or {}).get("readyReplicas") == 1

    with own_modeldeployment("c", cold, primary_serving) as ns:
        free_before = (status(ns).get("standby") or {}).get("freeGPUs")
        hogs = [_gpu_hog(ns, node) for node in ("gpu-0", "gpu-1")]
        try:
            name = apply_plan(
                ns,
                plan(
                    "no-room",
                    [
                        {
                            "name": "primary-outage",
                            "fault": {"type": "ClusterOutage", "cluster": "primary"},
                            "durationSeconds": 10,
                            "expect": {"activeCluster": "standby"},
                        }
                    ],
                ),
            )
            s = finished(ns, name, timeout=60)
        finally:
            for hog in hogs:
                with contextlib.suppress(Exception):
                    kube.core("standby").delete_namespaced_pod(hog, ns, grace_period_seconds=0)
    assert free_before, "the standby had free GPUs before the hogs came"
    assert s["phase"] == "Failed" and s["reason"] == "StandbyCapacityInsufficient", explain(s)
    assert "needs 1 free GPUs" in s["message"] and "it has 0" in s["message"]
    assert not s.get("faults") and kube.apiserver_ready("primary")


def _gpu_hog(namespace: str, node: str) -> str:
    """A pod holding all 8 GPUs of a standby node (kwok runs it; it serves nothing)."""
    name = f"gpu-hog-{node}"
    # A new namespace gets its default ServiceAccount (which admission wants) a moment later.
    kube.wait_for(
        lambda: _has_default_account(namespace),
        timeout=30,
        what="the standby namespace's default ServiceAccount",
    )
    kube.core("standby").create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "hog",
                        "image": "hog:none",
                        "resources": {
                            "limits": {GPU_RESOURCE: "8"},
                            "requests": {GPU_RESOURCE: "8"},
                        },
                    }
                ],
                "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists"}],
            },
        },
    )
    return name


def _has_default_account(namespace: str) -> bool:
    try:
        kube.core("standby").read_namespaced_service_account("default", namespace)
    except client.ApiException:
        return False
    return True


def _alive(pid: int) -> bool:
    """Running, not a zombie (an operator this test process started stays one until it is
    reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def test_faults_on_the_standby_leave_clients_alone_and_are_undone(drill_ns: str) -> None:
    """PodKill and NodeFailure (through the infrastructure webhook) on the standby: clients
    of the primary see nothing, and the standby is whole again afterwards."""
    name = apply_plan(
        drill_ns,
        plan(
            "standby-faults",
            [
                {
                    "name": "standby-node-dies",
                    "fault": {"type": "NodeFailure", "cluster": "standby"},
                    "durationSeconds": 4,
                    "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
                },
                # The node's pods restart when it recovers: a moment for the standby to be whole.
                {"name": "standby-recovers", "action": {"type": "Wait"}, "durationSeconds": 8},
                {
                    "name": "kill-standby-pod",
                    "fault": {"type": "PodKill", "cluster": "standby", "gracePeriodSeconds": 0},
                    "durationSeconds": 4,
                    "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
                },
            ],
        ),
    )
    s = finished(drill_ns, name, timeout=120)
    assert s["phase"] == "Passed", explain(s)
    failure, kill = s["faults"]
    assert (kill["type"], kill["cluster"], kill["state"]) == ("PodKill", "standby", "Undone")
    assert kill["parameters"]["gracePeriodSeconds"] == "0" and len(kill["targets"]) == 1
    assert (failure["type"], failure["provider"], failure["state"]) == (
        "NodeFailure",
        "webhook",
        "Undone",
    )
    node = failure["parameters"]["node"]
    leases = client.CoordinationV1Api(kube.api_client("standby"))
    lease = leases.read_namespaced_lease(node, "kube-node-lease")
    assert lease.spec.holder_identity != FAILED_NODE_LEASE_HOLDER  # kwok heartbeats it again


def test_an_expectation_the_system_cannot_meet_fails_with_the_measured_value(
    drill_ns: str,
) -> None:
    name = apply_plan(
        drill_ns,
        plan(
            "impossible",
            [
                {
                    "name": "hold",
                    "action": {"type": "Wait"},
                    "durationSeconds": 3,
                    "expect": {"activeCluster": "standby"},
                }
            ],
        ),
    )
    s = finished(drill_ns, name, timeout=60)
    assert s["phase"] == "Failed" and s["reason"] == "ExpectationFailed", explain(s)
    assert "primary" in s["steps"][0]["message"] and "standby" in s["steps"][0]["message"]


def test_prometheus_stopped_mid_run_is_inconclusive_never_passed(drill_ns: str) -> None:
    body = plan(
        "prometheus-down",
        [{"name": "hold", "action": {"type": "Wait"}, "durationSeconds": 14}],
        gates=[
            {
                "name": "primary-answers",
                "prometheus": {"query": REQUESTS.format(cluster="primary", ns=drill_ns)},
                "intervalSeconds": 1,
                "successCondition": "result[0] > 0",
            }
        ],
    )
    name = apply_plan(drill_ns, body)

    def measured(s: dict[str, Any]) -> bool:
        return any(g.get("successful", 0) > 0 for g in s.get("gates") or [])

    wait_run(drill_ns, name, measured, "a successful measurement", 60)
    prometheus.stop()
    try:
        s = finished(drill_ns, name, timeout=90)
    finally:
        prometheus.start()
        kube.wait_for(prometheus.ready, timeout=60, what="Prometheus ready again")
    assert s["phase"] == "Inconclusive" and s["reason"] == "MetricsMissing", explain(s)
    gate = s["gates"][0]
    assert gate["successful"] > 0 and gate["inconclusive"] > 0, gate


def test_a_standby_whose_override_changes_its_answers_fails_the_model_check(
    operator: None, sandbox: Sandbox
) -> None:
    """The standby runs with a runtime override that truncates every text to a few tokens
    (spec.clusters.standby.runtime.env): it answers every request with HTTP 200, but not as
    the baseline did. The outage step itself fails on its answer expectations (the probe sent
    golden texts and judged every answer: the wrong answer ratio and the time to correct
    answers, which unlike the RTO never ends), and the model check after it with
    ModelMismatch and the figures."""

    def truncating_standby(spec: dict[str, Any]) -> None:
        spec["clusters"]["standby"]["runtime"] = {
            "env": [
                {"name": "MODELDR_SERVE_MAX_SEQ_LENGTH", "value": "6"},
                {"name": "MODELDR_SERVE_TRUNCATE", "value": "true"},
            ]
        }

    with own_modeldeployment("m", truncating_standby, serving_everywhere) as ns:
        name = apply_plan(
            ns,
            plan(
                "standby-differs",
                [
                    {
                        "name": "primary-outage",
                        "fault": {"type": "ClusterOutage", "cluster": "primary"},
                        "durationSeconds": 12,
                        "expect": {
                            "activeCluster": "standby",
                            "maxTimeToCorrectSeconds": 10,
                            "maxWrongAnswerRatio": 0.05,
                        },
                    }
                ],
                modelChecks={
                    "goldenSet": {"configMapRef": {"name": "tiny-bert-golden"}},
                    "minAgreement": 0.99,
                },
            ),
        )
        s = finished(ns, name, timeout=180)
    assert s["phase"] == "Failed", explain(s)
    step = s["steps"][0]
    assert step["phase"] == "Failed" and step["reason"] == "ExpectationFailed", explain(s)
    assert step["activeCluster"] == "standby" and step["rtoSeconds"] < 10, step
    assert step["wrongAnswerRatio"] > 0.05 and step["timeToCorrectSeconds"] > 10, step
    assert "wrong answer ratio" in step["message"] and "time to correct answers" in step["message"]
    print(
        f"\ntruncating standby: RTO {step['rtoSeconds']} s, time to correct answers"
        f" {step['timeToCorrectSeconds']} s, wrong answer ratio {step['wrongAnswerRatio']}"
    )
    checks = {c["name"]: c for c in s["modelChecks"]}
    assert checks["baseline"]["cluster"] == "primary" and checks["baseline"]["phase"] == "Passed"
    after = checks["primary-outage"]
    assert after["cluster"] == "standby" and after["agreement"] < 0.99, after
    assert "agreement" in after["message"]
    assert [f["state"] for f in s["faults"]] == ["Undone"] and kube.apiserver_ready("primary")


def test_the_readme_sequence_passes_the_example_plan(operator: None, sandbox: Sandbox) -> None:
    """The README's drill sequence on a fresh namespace: the example ModelDeployment as it
    stands (2 replicas per cluster), then at once the golden set and
    examples/sandbox/drillplan.yaml as it stands (a pod kill, a whole-primary outage through
    the sandbox's webhook, an immediate failback, a gate, model checks). The run waits for
    the model to serve before its steady state, and ends Passed. Only the gate's PromQL
    names the namespace instead of modeldr-demo."""
    example = yaml.safe_load((ROOT / "examples/sandbox/drillplan.yaml").read_text())

    def as_example(spec: dict[str, Any]) -> None:
        spec["replicas"] = 2

    # No wait for the model to serve: the plan comes right after the ModelDeployment.
    with own_modeldeployment("x", as_example, lambda s: True) as ns:
        for gate in example["spec"]["gates"]:
            query = gate["prometheus"]["query"]
            gate["prometheus"]["query"] = query.replace(
                'namespace="modeldr-demo"', f'namespace="{ns}"'
            )
        assert not serving_everywhere(status(ns), 2)  # it has not started yet
        name = apply_plan(ns, example)
        s = finished(ns, name, timeout=540)
    assert s["phase"] == "Passed", explain(s)
    assert [step["phase"] for step in s["steps"]] == ["Passed"] * len(example["spec"]["steps"])
    failback = next(step for step in s["steps"] if step["name"] == "failback")
    print(f"\nthe README sequence: Passed; failback error ratio {failback['errorRatio']}")
    outage = next(step for step in s["steps"] if step["name"] == "primary-outage")
    assert outage["activeCluster"] == "standby" and outage["rtoSeconds"] <= 10
    # The standby serves the same model: answers are the baseline's soon after they return.
    assert outage["timeToCorrectSeconds"] <= 10 and outage["wrongAnswerRatio"] <= 0.01, outage
    print(
        f"the README sequence: outage RTO {outage['rtoSeconds']} s, time to correct answers"
        f" {outage['timeToCorrectSeconds']} s"
    )
    assert all(f["state"] == "Undone" for f in s["faults"]) and kube.apiserver_ready("primary")


def operator_metric(name: str, **labels: str) -> float:
    """The sum of a series of the operator's own /metrics (what Prometheus scrapes)."""
    url = f"http://127.0.0.1:{OPERATOR_METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def plan_runs(ns: str, plan_name: str) -> dict[str, dict[str, Any]]:
    items = custom().list_namespaced_custom_object(
        GROUP, VERSION, ns, DRILLRUNS, label_selector=f"{DRILL_PLAN_LABEL}={plan_name}"
    )["items"]
    return {r["metadata"]["name"]: r for r in items}


def test_a_scheduled_plan_starts_runs_on_time_respects_forbid_and_trims_history(
    drill_ns: str,
) -> None:
    """Every 10 s (a seconds field), a drill of about 12 s: the first due time starts a run
    within a couple of seconds; the next one falls inside it and is skipped (Forbid) and
    recorded; a later one starts the second run; when it ends, historyLimit 1 removes the
    first. Never two runs of the plan at once."""
    name = "every-10s"
    body = plan(
        name,
        [
            {
                "name": "hold",
                "action": {"type": "Wait"},
                "durationSeconds": 8,
                "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
            }
        ],
        schedule="*/10 * * * * *",
        historyLimit=1,
        startingDeadlineSeconds=5,
    )
    custom().create_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLPLANS, body)
    seen: dict[str, dict[str, Any]] = {}
    overlaps: list[list[str]] = []  # kube.wait_for retries on exceptions: collect, then assert

    def in_flight(runs: dict[str, dict[str, Any]]) -> list[str]:
        return [n for n, r in runs.items() if (r.get("status") or {}).get("phase") not in FINAL]

    def watch() -> dict[str, dict[str, Any]]:
        runs = plan_runs(drill_ns, name)
        if len(in_flight(runs)) > 1:
            overlaps.append(in_flight(runs))
        seen.update(runs)
        return runs

    try:
        first = kube.wait_for(lambda: sorted(watch()) or None, timeout=20, what="a first run")[0]
        run1 = seen[first]
        due = datetime.fromisoformat(run1["spec"]["scheduledTime"].replace("Z", "+00:00"))
        created = datetime.fromisoformat(
            run1["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        )
        assert due.second % 10 == 0 and first == f"{name}-{int(due.timestamp())}"
        assert 0 <= (created - due).total_seconds() <= 3, (due, created)  # on time

        def missed() -> dict[str, Any] | None:
            watch()
            s = custom().get_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLPLANS, name)
            return (s.get("status") or {}).get("lastMissedSchedule")

        miss = kube.wait_for(missed, timeout=20, what="a due time skipped by Forbid")
        assert miss["reason"] == "ConcurrencyForbidden" and first in miss["message"], miss
        assert (
            operator_metric(
                "modeldr_drill_scheduled_missed_total", plan=name, reason="ConcurrencyForbidden"
            )
            >= 1
        )
        s1 = finished(drill_ns, first, timeout=60)
        assert s1["phase"] == "Passed", explain(s1)
        second = kube.wait_for(
            lambda: [n for n in sorted(watch()) if n != first] or None,
            timeout=30,
            what="a second scheduled run",
        )[0]
        assert seen[second]["metadata"]["creationTimestamp"] >= s1["finishedAt"][:19]
        s2 = finished(drill_ns, second, timeout=60)
        assert s2["phase"] == "Passed", explain(s2)
        # History: the first run went when the second ended (historyLimit 1).
        kube.wait_for(lambda: first not in watch(), timeout=15, what="the first run pruned")
        assert second in plan_runs(drill_ns, name)
        assert (
            operator_metric(
                "modeldr_drill_runs_total", plan=name, trigger="schedule", verdict="Passed"
            )
            >= 2
        )
        plan_status = custom().get_namespaced_custom_object(
            GROUP, VERSION, drill_ns, DRILLPLANS, name
        )["status"]
        assert plan_status["lastScheduledRun"]["phase"] == "Passed"
        assert plan_status["nextScheduleTime"] > plan_status["lastScheduleTime"]
        # Prometheus (scraping the operator) sees what the chart's alerts read: the missed
        # due time fires the missed-drill alert's expression; the last verdict is Passed.
        missed_alert = (
            f"max by (namespace, plan) (increase(modeldr_drill_scheduled_missed_total"
            f'{{namespace="{drill_ns}", plan="{name}"}}[1h])) > 0'
        )
        kube.wait_for(lambda: prometheus.query(missed_alert), timeout=20, what="the miss alert")
        verdict = (
            f'modeldr_drill_last_verdict{{namespace="{drill_ns}", plan="{name}", '
            f'trigger="schedule", verdict="Passed"}} == 1'
        )
        kube.wait_for(lambda: prometheus.query(verdict), timeout=20, what="Passed in Prometheus")
        # Suspended: the schedule says so and starts nothing more.
        custom().patch_namespaced_custom_object(
            GROUP, VERSION, drill_ns, DRILLPLANS, name, {"spec": {"suspend": True}}
        )

        def suspended() -> bool:
            st = custom().get_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLPLANS, name)
            return str((st.get("status") or {}).get("scheduleMessage", "")).startswith("suspended")

        kube.wait_for(suspended, timeout=10, what="the schedule suspended")
        for run_name in in_flight(watch()):
            finished(drill_ns, run_name, timeout=60)
        assert not overlaps, f"two runs of the plan at once: {overlaps}"
    finally:
        with contextlib.suppress(client.ApiException):
            custom().delete_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLPLANS, name)


def test_a_game_day_repeats_until_enough_passes_in_a_row_and_stops(drill_ns: str) -> None:
    """spec.repeat {runs 4, untilConsecutivePasses 2}: the plan's run is followed by the next
    of its series as soon as it ends, and the series stops after two passes in a row (not
    four runs), with status.passRate (2 of 2, its Wilson interval) and an Event."""
    name = "game-day"
    body = plan(
        name,
        [
            {
                "name": "hold",
                "action": {"type": "Wait"},
                "durationSeconds": 2,
                "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
            }
        ],
        repeat={"runs": 4, "untilConsecutivePasses": 2},
    )
    first = apply_plan(drill_ns, body)
    started = time.monotonic()
    try:

        def satisfied() -> dict[str, Any] | None:
            s = custom().get_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLPLANS, name)
            rate = (s.get("status") or {}).get("passRate") or {}
            return rate if rate.get("state") == "Satisfied" else None

        rate = kube.wait_for(satisfied, timeout=150, what="the game day satisfied")
        took = time.monotonic() - started
        assert (rate["series"], rate["runs"], rate["passed"]) == (first, 2, 2), rate
        assert rate["ratio"] == 1.0 and rate["upper"] == 1.0 and 0.34 < rate["lower"] < 0.35
        runs = plan_runs(drill_ns, name)
        assert sorted(runs) == [first, f"{first}-2"], sorted(runs)
        second = runs[f"{first}-2"]["metadata"]["labels"]
        assert second["modeldr.io/series"] == first and second["modeldr.io/series-index"] == "2"
        time.sleep(3)  # a third run would start at once: none does
        assert sorted(plan_runs(drill_ns, name)) == [first, f"{first}-2"]
        events = kube.core("hub").list_namespaced_event(
            drill_ns, field_selector=f"involvedObject.name={name}"
        )
        assert any(e.reason == "GameDaySatisfied" for e in events.items)
        print(f"\ngame day: 2 runs in a row passed in {took:.0f} s")
    finally:
        with contextlib.suppress(client.ApiException):
            custom().delete_namespaced_custom_object(GROUP, VERSION, drill_ns, DRILLPLANS, name)
