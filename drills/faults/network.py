"""NetworkPartition, PacketLoss, Latency: made by the modeldr node agents of the member
cluster (docs/agent.md). The driver writes one NetworkFault order in the model's member
namespace, naming the chosen pods' IPs and nodes and an expiry; each concerned node's agent
applies its part (nftables) and reports in the order's status. Undo deletes the order;
renewal pushes its expiry on while the step runs, so agents undo it by themselves when the
operator is gone.

The targets are chosen as PodKill chooses them (mode, value, blast radius). The step ends
Error with nothing left when an agent cannot make it (FaultUnsupported: Latency on a kernel
without tc netem), when it failed (InjectFailed) or when no agent answers (NoAgent: the
agent chart is not installed, or its pod on that node is not running).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from modeldr.api import networkfault as O
from modeldr.api.drillstatus import FaultRecord
from modeldr.drills.faults.base import TIMEOUT, Aim, Choice, choose_pods, member_api
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import FAULT_LAPSED, recorded_expiry
from modeldr.kube import k8s
from modeldr.kube.members import MemberRegistry

PROVIDER = "agent"
#: How long inject waits for every concerned node's agent to report.
AGENT_WAIT_S = 8.0
#: How long undo waits for the order to be gone from the API.
DELETE_WAIT_S = 10.0
POLL_S = 0.2
#: Undo polls faster: the agents answer within milliseconds, and the step's window (its
#: error ratio) lasts until its fault is undone.
UNDO_POLL_S = 0.05
#: Undo ends an order by moving its expiresAt this far into the past.
ENDED_AGO_S = 60


def _custom(members: MemberRegistry, cluster: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(member_api(members, cluster))


def _parse_expiry(record: FaultRecord) -> datetime:
    return recorded_expiry(record) or datetime.now(UTC) + timedelta(seconds=30)


class NetworkFault:
    """One driver for the three effects: they differ only in the order's parameters."""

    provider = PROVIDER
    needs_infrastructure = False
    inject_allowance_s = AGENT_WAIT_S

    def describe(self, fault_type: str) -> str:
        effect = {
            "NetworkPartition": "drop all traffic to and from the chosen pods (but their node's "
            "own, so the pods stay Ready)",
            "PacketLoss": "drop lossPercent of the packets to and from the chosen pods",
            "Latency": "delay what the node sends toward the chosen pods by "
            "latencyMilliseconds with tc netem (refused where the kernel has no netem)",
        }[fault_type]
        return f"the node agents {effect}; their order expires by itself and is deleted at undo"

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        where, fault = aim.where, aim.fault
        targets = choose_pods(members, aim)
        parameters = FaultParameters(
            namespace=where.namespace,
            loss_percent=fault.loss_percent,
            latency_milliseconds=fault.latency_milliseconds,
            jitter_milliseconds=fault.jitter_milliseconds,
        )
        return Choice(targets, parameters.record(), aim.seed)

    # -- inject ---------------------------------------------------------------------------

    def order_spec(self, members: MemberRegistry, record: FaultRecord) -> dict[str, Any]:
        """The order's spec: the targets' current IPs and nodes (read now: a pod's IP is
        known once it runs), the effect's parameters, the record's expiry."""
        core = client.CoreV1Api(member_api(members, record.cluster))
        namespace = FaultParameters.of(record).member_namespace
        targets = []
        for name in record.targets:
            pod = k8s.call(
                core.read_namespaced_pod, name, namespace, _request_timeout=TIMEOUT, absent=None
            )
            if pod is None or not pod.status.pod_ip or not pod.spec.node_name:
                raise Refusal(
                    "NoTargets",
                    f"pod {namespace}/{name} in {record.cluster} is gone or has no IP yet; "
                    "nothing was injected",
                )
            targets.append({"ip": pod.status.pod_ip, "node": pod.spec.node_name, "pod": name})
        spec: dict[str, Any] = {
            "effect": record.type,
            "targets": targets,
            "nodes": sorted({t["node"] for t in targets}),
            "expiresAt": _parse_expiry(record).astimezone(UTC).isoformat(),
        }
        effect = FaultParameters.of(record).model_dump(
            by_alias=True,
            exclude_none=True,
            include={"loss_percent", "latency_milliseconds", "jitter_milliseconds"},
        )
        spec.update(effect)
        O.NetworkFaultSpec.model_validate(spec)  # what the CRD would refuse, refused here
        return spec

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        api = _custom(members, record.cluster)
        namespace, name = FaultParameters.of(record).member_namespace, O.order_name(record.id)
        spec = self.order_spec(members, record)
        body = {
            "apiVersion": f"{O.GROUP}/{O.VERSION}",
            "kind": O.KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {O.FAULT_ID_LABEL: record.id[:63]},
            },
            "spec": spec,
        }
        try:
            api.create_namespaced_custom_object(
                O.GROUP, O.VERSION, namespace, O.PLURAL, body, _request_timeout=TIMEOUT
            )
        except client.ApiException as exc:
            if exc.status == 404:  # the resource type itself is unknown
                raise Refusal(
                    "NoAgent",
                    f"member cluster {record.cluster} has no NetworkFault CRD: the modeldr "
                    "node agent chart (charts/modeldr-agent) is not installed there; nothing "
                    "was injected",
                ) from None
            if exc.status != 409:  # 409: a retried inject; the order is there
                raise
        self._wait_applied(api, record, namespace, name, spec["nodes"])

    def _wait_applied(
        self,
        api: client.CustomObjectsApi,
        record: FaultRecord,
        namespace: str,
        name: str,
        nodes: list[str],
    ) -> None:
        deadline = time.monotonic() + AGENT_WAIT_S
        reports: dict[str, Any] = {}
        while True:
            current = k8s.call(
                api.get_namespaced_custom_object,
                O.GROUP,
                O.VERSION,
                namespace,
                O.PLURAL,
                name,
                _request_timeout=TIMEOUT,
                absent=None,
            )
            if current is None:
                raise Refusal("InjectFailed", f"NetworkFault {namespace}/{name} vanished")
            reports = ((current.get("status") or {}).get("nodes")) or {}
            verdict = self._judge(record, nodes, reports)
            if verdict is None:
                return
            if time.monotonic() >= deadline:
                raise verdict
            time.sleep(POLL_S)

    @staticmethod
    def _judge(record: FaultRecord, nodes: list[str], reports: dict[str, Any]) -> Refusal | None:
        """None when every node applied it; the error to raise now or at the deadline."""
        where = f"{record.type} in {record.cluster}"
        for node in nodes:
            report = reports.get(node) or {}
            state, message = report.get("state"), report.get("message") or ""
            if state == "Unsupported":
                raise Refusal(
                    "FaultUnsupported",
                    f"{where}: the node agent on {node} cannot make it: {message}; nothing was "
                    "injected",
                )
            if state == "Error":
                raise Refusal("InjectFailed", f"{where}: the node agent on {node}: {message}")
        silent = [n for n in nodes if (reports.get(n) or {}).get("state") != "Applied"]
        if not silent:
            return None
        return Refusal(
            "NoAgent",
            f"{where}: no node agent answered within {AGENT_WAIT_S:g}s for node(s) "
            f"{', '.join(silent)} (is the modeldr-agent DaemonSet running there? "
            "docs/agent.md); nothing was injected",
        )

    # -- renew and undo -------------------------------------------------------------------

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        """Push the order's expiry on. An order gone (404), or a node whose agent no longer
        reports it Applied (it expired, its target pod went, the kernel refused it), is a
        lapsed fault (FaultLapsed): the step cannot pass on it."""
        name = O.order_name(record.id)
        renewed = _set_expiry(members, record, expires_at)
        if renewed is None:
            raise Refusal(FAULT_LAPSED, f"NetworkFault {name} is gone: the fault is not in force")
        lapsed = not_in_force(renewed)
        if lapsed:
            raise Refusal(FAULT_LAPSED, f"NetworkFault {name}: {lapsed}")

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        """End the order (expiresAt set to now: every agent drops its rules at once and
        reports Removed), wait until no node reports it Applied, then delete it and wait
        until it is gone. A node that does not confirm within DELETE_WAIT_S fails the undo,
        naming it (its kernel drops the addresses at the expiry it was last given; its
        agent, back, removes what no live order backs)."""
        api = _custom(members, record.cluster)
        namespace, name = FaultParameters.of(record).member_namespace, O.order_name(record.id)
        args = (O.GROUP, O.VERSION, namespace, O.PLURAL, name)
        deadline = time.monotonic() + DELETE_WAIT_S
        # In the past by more than any sane clock skew between the hub and the nodes.
        ended = datetime.now(UTC) - timedelta(seconds=ENDED_AGO_S)
        _set_expiry(members, record, ended)  # None: gone already, nothing to end
        holding: list[str] = []
        while True:
            current = k8s.call(
                api.get_namespaced_custom_object, *args, _request_timeout=TIMEOUT, absent=None
            )
            holding = still_applied(current) if current is not None else []
            if not holding or time.monotonic() >= deadline:
                break
            time.sleep(UNDO_POLL_S)
        k8s.call(api.delete_namespaced_custom_object, *args, _request_timeout=TIMEOUT, absent=None)
        deadline = time.monotonic() + DELETE_WAIT_S
        while (
            k8s.call(api.get_namespaced_custom_object, *args, _request_timeout=TIMEOUT, absent=None)
            is not None
        ):
            if time.monotonic() >= deadline:
                raise Refusal("UndoFailed", f"NetworkFault {namespace}/{name} is not gone")
            time.sleep(UNDO_POLL_S)
        if holding:
            raise Refusal(
                "UndoFailed",
                f"NetworkFault {namespace}/{name}: the node agent(s) on {', '.join(holding)} "
                f"did not report the rules removed within {DELETE_WAIT_S:g}s (the order is "
                "deleted; their kernels drop the addresses at the expiry last given)",
            )


def _set_expiry(
    members: MemberRegistry, record: FaultRecord, expires_at: datetime
) -> dict[str, Any] | None:
    """Patch the order's expiresAt; the order as it is now, or None when it is gone."""
    api = _custom(members, record.cluster)
    body = {"spec": {"expiresAt": expires_at.astimezone(UTC).isoformat()}}
    patched: dict[str, Any] | None = k8s.call(
        api.patch_namespaced_custom_object,
        O.GROUP,
        O.VERSION,
        FaultParameters.of(record).member_namespace,
        O.PLURAL,
        O.order_name(record.id),
        body,
        _content_type="application/merge-patch+json",
        _request_timeout=TIMEOUT,
        absent=None,
    )
    return patched


def not_in_force(order: dict[str, Any]) -> str:
    """Why the order is not in force on every node it names (empty: it is)."""
    nodes = (order.get("spec") or {}).get("nodes") or []
    reports = ((order.get("status") or {}).get("nodes")) or {}
    off = []
    for node in nodes:
        report = reports.get(node) or {}
        if report.get("state") != "Applied":
            state, message = report.get("state") or "no report", report.get("message") or ""
            off.append(f"node {node}: {state}" + (f" ({message})" if message else ""))
    return "; ".join(off)[:900]


def still_applied(order: dict[str, Any]) -> list[str]:
    """The nodes whose agent reports this order's rules in force (Applied)."""
    nodes = ((order.get("status") or {}).get("nodes")) or {}
    return sorted(
        n for n, r in nodes.items() if isinstance(r, dict) and r.get("state") == "Applied"
    )
