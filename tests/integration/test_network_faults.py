"""Network faults on the sandbox, end to end: DrillPlans whose steps the operator makes
through the node agents (the modeldr-agent DaemonSet's pods, run by the process runtime as
`modeldr agent` processes with their node's address), checked in the kernel's real ruleset
(`nft list table inet modeldr_agent`) and with real traffic to the model's pods. Also what
happens when the operator or an agent dies mid-fault: the faults expire by themselves, and a
restarted agent leaves no rule no live order backs.

Short durations: each test adds seconds, the agent's behaviour is under test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client

from modeldr.agent.rules import FAMILY, TABLE
from modeldr.api import networkfault as O
from sandbox import agent, kube
from sandbox.config import sandbox_paths
from sandbox.operator_up import operator_up
from tests.integration.modeldeployments import NAME, ROOT, client_probe, serving_everywhere
from tests.integration.test_drills import (  # the drill helpers and the shared fixtures
    _alive,
    apply_plan,
    drill_ns,
    explain,
    finished,
    own_modeldeployment,
    plan,
    serving_before_and_after,
    wait_run,
)

pytestmark = pytest.mark.integration
__all__ = ["drill_ns", "serving_before_and_after"]  # fixtures used by name

NODE_IP = "127.1.0.1"  # the primary's nodes' address (sandbox/config.py)


def ruleset() -> str:
    done = subprocess.run(
        ["nft", "list", "table", FAMILY, TABLE],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return done.stdout if done.returncode == 0 else ""


def sets_holding(ip: str) -> set[str]:
    """The agents' sets that hold `ip` now (an element that timed out is gone from them)."""
    done = subprocess.run(
        ["nft", "-j", "list", "table", FAMILY, TABLE],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    items = json.loads(done.stdout)["nftables"] if done.returncode == 0 else []
    names: set[str] = set()
    for item in items:
        found = item.get("set") or {}
        for element in found.get("elem") or []:
            value = element["elem"]["val"] if isinstance(element, dict) else element
            if value == ip:
                names.add(found["name"])
    return names


def rules_for(ip: str) -> list[str]:
    """The rule lines in force for `ip`: those matching a set that holds it."""
    named = {f"@{name}" for name in sets_holding(ip)}
    return [
        line.strip()
        for line in ruleset().splitlines()
        if any(f" {n} " in f" {line} " for n in named)
    ]


def model_pod(ns: str) -> client.V1Pod:
    pods = kube.core("primary").list_namespaced_pod(ns, label_selector=f"modeldr.io/name={NAME}")
    live = [p for p in pods.items if p.metadata.deletion_timestamp is None and p.status.pod_ip]
    assert len(live) == 1, [p.metadata.name for p in pods.items]
    return live[0]


def ready_path(pod: client.V1Pod) -> tuple[int, str]:
    container = pod.spec.containers[0]
    probe = container.readiness_probe.http_get
    return int(container.ports[0].container_port), str(probe.path)


def answers(ip: str, port: int, path: str, source: str | None = None, timeout: float = 1.0) -> bool:
    """One GET to the pod from 127.0.0.1 (a client) or from `source` (the node, as the
    kubelet's probes come)."""
    connection = http.client.HTTPConnection(
        ip, port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def orders(ns: str) -> list[dict[str, Any]]:
    api = client.CustomObjectsApi(kube.api_client("primary"))
    items = api.list_namespaced_custom_object(O.GROUP, O.VERSION, ns, O.PLURAL)["items"]
    return list(items)


def applied(ns: str, name: str) -> dict[str, Any]:
    def is_applied(s: dict[str, Any]) -> bool:
        return any(f.get("state") == "Applied" for f in s.get("faults") or [])

    return wait_run(ns, name, is_applied, "the fault applied", 60)


def network_step(name: str, fault: dict[str, Any], seconds: int, **expect: Any) -> dict[str, Any]:
    return {
        "name": name,
        "fault": {"cluster": "primary", **fault},
        "durationSeconds": seconds,
        "expect": {"activeCluster": "unchanged", **expect},
    }


def test_a_partition_cuts_clients_off_while_the_node_still_reaches_the_pod(drill_ns: str) -> None:
    # With the client probe switched off: the member's own signals miss the partition, so
    # the traffic stays where no client gets through (with it on, the operator fails over:
    # test_partition_failover.py).
    with client_probe(drill_ns, {"enabled": False}):
        partition_unseen(drill_ns)


def partition_unseen(drill_ns: str) -> None:
    pod = model_pod(drill_ns)
    ip, (port, path) = pod.status.pod_ip, ready_path(pod)
    assert answers(ip, port, path) and not rules_for(ip)
    name = apply_plan(
        drill_ns, plan("partition", [network_step("cut", {"type": "NetworkPartition"}, 6)])
    )
    applied(drill_ns, name)
    in_force = rules_for(ip)
    [nf] = orders(drill_ns)
    # output and input (host traffic), forward both ways (routed pod traffic), one order
    assert len(in_force) == 4, ruleset()
    note = f'comment "modeldr:{drill_ns}/{nf["metadata"]["name"]}/{nf["metadata"]["uid"]}"'
    assert all(r.endswith(note) for r in in_force), in_force
    assert any(f"saddr != {NODE_IP}" in r for r in in_force), in_force
    assert not answers(ip, port, path), "a client still reaches the partitioned pod"
    assert answers(ip, port, path, source=NODE_IP), "the node's own address was cut off too"
    assert nf["status"]["nodes"][pod.spec.node_name]["state"] == "Applied"
    assert nf["spec"]["targets"] == [
        {"ip": ip, "node": pod.spec.node_name, "pod": pod.metadata.name}
    ]
    # The readiness probe (every 2 s, failureThreshold 1) comes from the node: the pod stays
    # Ready, so its endpoint does too, while no client gets through (what only the client
    # probe sees).
    time.sleep(3)
    again = kube.core("primary").read_namespaced_pod(pod.metadata.name, drill_ns)
    ready = {c.type: c.status for c in again.status.conditions or []}
    assert ready.get("Ready") == "True", ready
    assert rules_for(ip) == in_force
    s = finished(drill_ns, name, timeout=90)
    step = s["steps"][0]
    assert step["errorRatio"] > 0.9, explain(s)  # the clients saw it
    assert s["faults"][0]["state"] == "Undone" and s["faults"][0]["provider"] == "agent"
    assert not rules_for(ip) and orders(drill_ns) == []
    assert answers(ip, port, path)


def test_packet_loss_keeps_errors_bounded_and_does_not_fail_over(drill_ns: str) -> None:
    pod = model_pod(drill_ns)
    name = apply_plan(
        drill_ns,
        plan(
            "loss",
            [
                network_step(
                    "lossy", {"type": "PacketLoss", "lossPercent": 20}, 8, maxErrorRatio=0.5
                )
            ],
        ),
    )
    applied(drill_ns, name)
    [rule, *_] = rules_for(pod.status.pod_ip)
    assert "numgen random mod 100 < 20 drop" in rule
    s = finished(drill_ns, name, timeout=90)
    assert s["phase"] == "Passed", explain(s)
    step = s["steps"][0]
    print(
        f"\npacket loss 20%: error ratio {step['errorRatio']:.3f}, p99 "
        f"{step.get('p99LatencyMs')} ms over {step['requests']} requests"
    )
    assert step["activeCluster"] == "primary" and step["errorRatio"] <= 0.5
    assert step["requests"] >= 40  # 10/s over the 8 s step
    assert not rules_for(pod.status.pod_ip) and orders(drill_ns) == []


def test_latency_without_netem_ends_error_fault_unsupported_with_nothing_left(
    drill_ns: str,
) -> None:
    name = apply_plan(
        drill_ns,
        plan("latency", [network_step("slow", {"type": "Latency", "latencyMilliseconds": 200}, 5)]),
    )
    s = finished(drill_ns, name, timeout=60)
    assert s["phase"] == "Error" and s["reason"] == "FaultUnsupported", explain(s)
    step = s["steps"][0]
    assert step["reason"] == "FaultUnsupported" and "netem" in step["message"], explain(s)
    assert "nothing was injected" in step["message"]
    assert [f["state"] for f in s["faults"]] == ["Undone"]  # the order was deleted at once
    assert orders(drill_ns) == [] and "modeldr:" not in ruleset()


def test_a_killed_operator_s_partition_expires_by_itself(drill_ns: str) -> None:
    """SIGKILL of the operator mid-partition: nobody renews the order, so each agent drops
    its rules when its expiresAt passes (3 s after the last renewal); the next operator
    then finds the run and ends it Aborted."""
    pod = model_pod(drill_ns)
    ip = pod.status.pod_ip
    name = apply_plan(
        drill_ns,
        plan(
            "orphan", [network_step("cut", {"type": "NetworkPartition"}, 120)], faultExpirySeconds=3
        ),
    )
    applied(drill_ns, name)
    time.sleep(2.5)  # a few renewals
    pid = int((sandbox_paths().state / "operator.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    try:
        # The order's last expiry, then the rules: still there before it (the kill did not
        # take them), gone at it. Checked against the clock, not assumed from the kill: on a
        # loaded machine the reads after the kill may come late.
        [nf] = orders(drill_ns)
        expires = datetime.fromisoformat(nf["spec"]["expiresAt"])
        if (expires - datetime.now(UTC)).total_seconds() > 0.5:
            assert rules_for(ip), "the rules went with the operator, not at their expiry"
        kube.wait_for(lambda: not _alive(pid), timeout=10, what="the operator gone")
        kube.wait_for(lambda: not rules_for(ip), timeout=10, interval=0.05, what="rules expired")
        gone = datetime.now(UTC)
        lag = (gone - expires).total_seconds()
        print(
            f"\nexpiry -> rules gone: {lag:.3f} s (operator killed "
            f"{time.monotonic() - killed:.1f} s before)"
        )
        # Up to the polling's own delay on a loaded machine (each poll runs `nft list`).
        assert -0.5 <= lag <= 3.0, f"rules gone {lag:.2f} s after expiresAt {expires}"

        # The agent reports it just after it drops the rules (a status write, a moment later).
        def removed() -> dict[str, Any] | None:
            [nf] = orders(drill_ns)
            report = dict(nf["status"]["nodes"][pod.spec.node_name])
            return report if report["state"] == "Removed" else None

        report = kube.wait_for(removed, timeout=5, interval=0.1, what="the agent's Removed")
        assert "expired" in report["message"]
    finally:
        operator_up()  # whatever happened: the module's next tests need it
    s = finished(drill_ns, name, timeout=90)
    assert s["phase"] == "Aborted" and s["reason"] == "OperatorRestarted", explain(s)
    assert orders(drill_ns) == [] and not rules_for(ip)


def agent_pid(cluster: str, node: str) -> tuple[str, int]:
    pod = agent.agent_pods(cluster)[node]
    pidfile = sandbox_paths().processes / cluster / agent.NAMESPACE / f"{pod}.pid"
    return pod, int(pidfile.read_text())


def create_order(ns: str, body: dict[str, Any]) -> None:
    api = client.CustomObjectsApi(kube.api_client("primary"))
    api.create_namespaced_custom_object(O.GROUP, O.VERSION, ns, O.PLURAL, body)


def delete_order(ns: str, name: str) -> None:
    api = client.CustomObjectsApi(kube.api_client("primary"))
    with contextlib.suppress(client.ApiException):
        api.delete_namespaced_custom_object(O.GROUP, O.VERSION, ns, O.PLURAL, name)


def test_a_partition_whose_order_vanishes_mid_step_is_inconclusive_fault_lapsed(
    drill_ns: str,
) -> None:
    """Someone deletes the drill's order while the step runs: the rules go, the clients get
    through again, and what the step measures after that says nothing about a partition.
    The next renewal finds the order gone, stops, and the step ends Inconclusive,
    FaultLapsed, never Passed (its expectations alone would have passed)."""
    ip = model_pod(drill_ns).status.pod_ip
    with client_probe(drill_ns, {"enabled": False}):  # no failover meanwhile
        name = apply_plan(
            drill_ns,
            plan(
                "lapse",
                [network_step("cut", {"type": "NetworkPartition"}, 6)],
                faultExpirySeconds=3,
            ),
        )
        applied(drill_ns, name)
        [nf] = orders(drill_ns)
        delete_order(drill_ns, nf["metadata"]["name"])
        kube.wait_for(lambda: not rules_for(ip), timeout=10, what="the rules gone with it")
        s = finished(drill_ns, name, timeout=90)
    [step] = s["steps"]
    assert (step["phase"], step["reason"]) == ("Inconclusive", "FaultLapsed"), explain(s)
    assert "NetworkPartition lapsed" in step["message"] and "is gone" in step["message"]
    assert s["phase"] != "Passed", explain(s)
    assert s["faults"][0]["state"] == "Undone" and orders(drill_ns) == []


def test_an_agent_killed_mid_partition_removes_the_orphaned_rules_when_it_restarts(
    drill_ns: str,
) -> None:
    """The LitmusChaos/Chaos Mesh failure: the helper dies, its order is deleted meanwhile,
    the rules stay. Here the runtime restarts the SIGKILLed agent (restartPolicy Always) and
    its startup cleanup removes every rule no live order backs."""
    target = model_pod(drill_ns)
    ip, node, (port, path) = target.status.pod_ip, target.spec.node_name, ready_path(target)
    # Within the agents' cap (MAX_EXPIRY_AHEAD_S), longer than the test.
    body = raw_order("orphan", ip, node, 120)
    with client_probe(drill_ns, {"enabled": False}):  # no failover meanwhile
        assert answers(ip, port, path)
        create_order(drill_ns, body)
        try:
            kube.wait_for(lambda: bool(rules_for(ip)), timeout=10, what="the rules applied")
            assert not answers(ip, port, path)
            pod, pid = agent_pid("primary", node)
            os.killpg(pid, signal.SIGKILL)
            delete_order(drill_ns, "orphan")
            killed = time.monotonic()
            assert rules_for(ip), "a dead agent cannot have removed its rules"
            kube.wait_for(
                lambda: not rules_for(ip),
                timeout=30,
                interval=0.1,
                what="the restarted agent to remove the orphaned rules",
            )
            print(
                f"\nagent killed -> orphaned rules removed by its restart: "
                f"{time.monotonic() - killed:.2f} s"
            )
            assert answers(ip, port, path)
            restarted = kube.core("primary").read_namespaced_pod(pod, agent.NAMESPACE)
            assert restarted.status.container_statuses[0].restart_count >= 1
            assert agent_pid("primary", node)[1] != pid
        finally:
            delete_order(drill_ns, "orphan")
    log = (sandbox_paths().processes / "primary" / agent.NAMESPACE / f"{pod}.log").read_text()
    assert "removing 1 order(s) left in the kernel" in log.rsplit("--- ", 1)[-1], log[-2000:]


def test_the_kernel_ends_a_partition_at_expiry_while_its_agent_is_stopped(
    drill_ns: str,
) -> None:
    """No agent acting at all (its process stopped with SIGSTOP: the runtime, like a
    kubelet, would restart a SIGKILLed one, and a stopped one cannot act either): the
    partition's addresses are set elements with the order's time left, so the kernel itself
    lets traffic through again at expiresAt. The agent, let go on, removes the inert chains
    and sets and reports the order Removed."""
    target = model_pod(drill_ns)
    ip, node, (port, path) = target.status.pod_ip, target.spec.node_name, ready_path(target)
    api = client.CustomObjectsApi(kube.api_client("primary"))
    body = raw_order("no-agent", ip, node, 8)
    expires = datetime.fromisoformat(body["spec"]["expiresAt"])
    pod, pid = agent_pid("primary", node)
    with client_probe(drill_ns, {"enabled": False}):  # no failover meanwhile
        assert answers(ip, port, path)
        create_order(drill_ns, body)
        stopped = False
        try:
            kube.wait_for(
                lambda: node_report(api, drill_ns, "no-agent", node).get("state") == "Applied",
                timeout=10,
                what="the partition applied",
            )
            os.killpg(pid, signal.SIGSTOP)
            stopped = True
            assert not answers(ip, port, path)
            assert "timeout" in ruleset() and rules_for(ip), ruleset()
            kube.wait_for(
                lambda: answers(ip, port, path, timeout=0.3),
                timeout=20,
                interval=0.05,
                what="the kernel to let traffic through at expiry",
            )
            after = (datetime.now(UTC) - expires).total_seconds()
            print(f"\nexpiresAt -> traffic through, agent stopped: {after:+.2f} s")
            # Not before its time (the check above polls every 50 ms, answers time out at 0.3).
            assert -0.5 < after < 2.0, after
            # The agent did nothing: its chains are still there, inert, with no element.
            assert f'comment "modeldr:{drill_ns}/no-agent/' in ruleset(), ruleset()
            assert not rules_for(ip), ruleset()
        finally:
            if stopped:
                os.killpg(pid, signal.SIGCONT)
            kube.wait_for(
                lambda: node_report(api, drill_ns, "no-agent", node).get("state") == "Removed",
                timeout=15,
                what="the agent, let go on, to report the expired order Removed",
            )
            delete_order(drill_ns, "no-agent")
    assert "no-agent" not in ruleset(), ruleset()
    assert agent_pid("primary", node) == (pod, pid)  # the same agent: never restarted


def raw_order(name: str, ip: str, node: str, expires_in_s: float) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in_s)
    return {
        "apiVersion": f"{O.GROUP}/{O.VERSION}",
        "kind": O.KIND,
        "metadata": {"name": name},
        "spec": {
            "effect": "NetworkPartition",
            "targets": [{"ip": ip, "node": node}],
            "nodes": [node],
            "expiresAt": expires.isoformat(),
        },
    }


def node_report(api: client.CustomObjectsApi, ns: str, name: str, node: str) -> dict[str, Any]:
    nf = api.get_namespaced_custom_object(O.GROUP, O.VERSION, ns, O.PLURAL, name)
    return dict(((nf.get("status") or {}).get("nodes") or {}).get(node) or {})


def test_orders_an_agent_must_refuse_never_reach_the_kernel_nor_block_the_others(
    drill_ns: str,
) -> None:
    """A zoned or non-canonical address is refused by the apiserver (the CRD's CEL rule: it
    used to fail every order's nft transaction on the node). The agent refuses, reporting
    Error with the reason per target and putting nothing in the kernel: an order that
    expires beyond its cap, one naming the node's own address, one naming a standby pod's
    address (no pod on this node has it), one naming a pod of another namespace (the
    operator's own model pods of the standby cluster are elsewhere; here another drill
    namespace's). A good order beside them on the same node is applied."""
    target = model_pod(drill_ns)
    ip, node = target.status.pod_ip, target.spec.node_name
    api = client.CustomObjectsApi(kube.api_client("primary"))
    for bad_ip in ("fe80::1%x", "FD00::5", "::ffff:127.1.129.251"):
        with pytest.raises(client.ApiException) as refused:
            api.create_namespaced_custom_object(
                O.GROUP, O.VERSION, drill_ns, O.PLURAL, raw_order("zoned", bad_ip, node, 20)
            )
        assert refused.value.status == 422, refused.value.body
        assert O.IP_RULE in refused.value.body and "spec.targets[0].ip" in refused.value.body
    standby_ip = model_pod_of("standby", drill_ns).status.pod_ip
    node_ip = kube.core("primary").read_node(node).status.addresses[0].address
    bad = {
        "too-long": (ip, O.MAX_EXPIRY_AHEAD_S + 600, f"at most {O.MAX_EXPIRY_AHEAD_S} s ahead"),
        "the-node": (node_ip, 30, f"the address of node {node} itself"),
        "standby-pod": (standby_ip, 30, f"no pod running on node {node} has this address"),
    }
    with client_probe(drill_ns, {"enabled": False}):  # no failover meanwhile
        try:
            for name, (address, seconds, _) in bad.items():
                create_order(drill_ns, raw_order(name, address, node, seconds))
            create_order(drill_ns, raw_order("fine", ip, node, 30))
            kube.wait_for(
                lambda: (
                    node_report(api, drill_ns, "fine", node).get("state") == "Applied"
                    and all(
                        node_report(api, drill_ns, n, node).get("state") == "Error" for n in bad
                    )
                ),
                timeout=15,
                what="the good order applied and the bad ones refused",
            )
            for name, (_, _, reason) in bad.items():
                report = node_report(api, drill_ns, name, node)
                assert reason in report["message"], report
                assert report["targets"] == [], report
                assert f'"modeldr:{drill_ns}/{name}/' not in ruleset()
            for name in ("the-node", "standby-pod"):
                address = bad[name][0]
                refused_here = node_report(api, drill_ns, name, node)["refused"]
                assert list(refused_here) == [address] and bad[name][2] in refused_here[address]
                assert not sets_holding(address), ruleset()
            fine = [r for r in rules_for(ip) if f"modeldr:{drill_ns}/fine/" in r]
            assert len(fine) == 4 and fine == rules_for(ip), ruleset()
        finally:
            for name in (*bad, "fine"):
                delete_order(drill_ns, name)
    kube.wait_for(lambda: not rules_for(ip), timeout=10, what="the good order's rules gone")


def model_pod_of(cluster: str, ns: str) -> client.V1Pod:
    pods = kube.core(cluster).list_namespaced_pod(ns, label_selector=f"modeldr.io/name={NAME}")
    live = [p for p in pods.items if p.metadata.deletion_timestamp is None and p.status.pod_ip]
    assert live, f"no model pod in {cluster}/{ns}"
    return live[0]


def test_the_packet_loss_example_passes_as_it_stands(drill_ns: str) -> None:
    """examples/sandbox/drillplan-packet-loss.yaml against the example ModelDeployment as it
    stands (2 replicas per cluster), in a namespace of its own."""
    example = yaml.safe_load((ROOT / "examples/sandbox/drillplan-packet-loss.yaml").read_text())

    def as_example(spec: dict[str, Any]) -> None:
        spec["replicas"] = 2

    with own_modeldeployment("l", as_example, lambda s: serving_everywhere(s, 2)) as ns:
        name = apply_plan(ns, example)
        s = finished(ns, name, timeout=240)
    assert s["phase"] == "Passed", explain(s)
    lossy = s["steps"][0]
    print(
        f"\nexample packet loss: error ratio {lossy['errorRatio']:.3f}, p99 "
        f"{lossy.get('p99LatencyMs')} ms over {lossy['requests']} requests"
    )
    assert lossy["activeCluster"] == "primary"
    assert [f["type"] for f in s["faults"]] == ["PacketLoss"]
    assert s["faults"][0]["state"] == "Undone"
