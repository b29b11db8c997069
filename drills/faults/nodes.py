"""Node faults through the member API: NodeDrain (cordon, then evict the model's pods through
the Eviction API, so PodDisruptionBudgets are respected) and GPULoss (the node's GPUs go:
taint nvidia.com/gpu NoExecute, the model's pods evicted, nothing GPU-bound schedules there).
Undo removes exactly what the record says was added: a cordon this drill set, its taint.

Both expire by themselves on the member side: the Node carries the fault's id and expiry as
annotations (api/nodefault.py), the step renews the expiry, and the node's agent undoes the
cordon or the taint when it passes (agent/nodereaper.py), so a dead operator leaves the node
as it was within one expiry period. A renewal that finds the marks gone or another fault's
(the agent undid it, someone uncordoned the node) is a lapsed fault (FaultLapsed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from modeldr.api import nodefault
from modeldr.api.drillstatus import FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills.faults.base import TIMEOUT, Aim, Choice, Observation, member_api, model_pods
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import FAULT_LAPSED, recorded_expiry
from modeldr.drills.select import SelectionError, select_node
from modeldr.kube import k8s
from modeldr.kube.constants import GPU_RESOURCE
from modeldr.kube.members import MemberRegistry

# The taint GPULoss adds; its value marks it as the drill's (undo removes only this one).
GPU_LOSS_TAINT_VALUE = nodefault.GPU_LOSS_TAINT_VALUE
GPU_LOSS_EFFECT = nodefault.GPU_LOSS_EFFECT
#: How long an inject (the cordon or taint, then the evictions) may take: the first expiry
#: counts from its end.
NODE_INJECT_ALLOWANCE_S = 60.0


def _expiry(record: FaultRecord) -> datetime:
    expires = recorded_expiry(record)
    if expires is None:  # the step records one before every inject (drills/renewal.py)
        raise Refusal("InjectFailed", f"{record.type} {record.id} has no expiry recorded")
    return expires


def renew_marks(
    members: MemberRegistry, record: FaultRecord, kind: nodefault.Kind, expires_at: datetime
) -> None:
    """Push the expiry annotation of the fault on its node; FaultLapsed when the node no
    longer carries this fault's marks (its agent undid it at expiry, or someone did)."""
    core = client.CoreV1Api(member_api(members, record.cluster))
    name = FaultParameters.of(record).node_name
    node = k8s.call(core.read_node, name, _request_timeout=TIMEOUT, absent=None)
    if node is None:
        raise Refusal(FAULT_LAPSED, f"node {name} is gone")
    fault_key, _ = nodefault.ANNOTATIONS[kind]
    holder = (node.metadata.annotations or {}).get(fault_key)
    if holder != record.id:
        raise Refusal(
            FAULT_LAPSED,
            f"node {name} no longer carries this {kind} (annotation {fault_key} is "
            f"{holder!r}): undone at its expiry by the node's agent, or by hand",
        )
    body = {
        "metadata": {
            "resourceVersion": node.metadata.resource_version,
            "annotations": nodefault.marked(kind, record.id, expires_at.astimezone(UTC)),
        }
    }
    core.patch_node(name, body, _request_timeout=TIMEOUT)


def carries(node: Any, kind: nodefault.Kind, fault_id: str) -> bool:
    """The node carries this fault's id (the annotation its inject set with the change)."""
    fault_key, _ = nodefault.ANNOTATIONS[kind]
    return bool((node.metadata.annotations or {}).get(fault_key) == fault_id)


def plan_node(members: MemberRegistry, aim: Aim) -> Choice:
    """A node that runs the model's pods (the named one, or one drawn by the seed); its pods
    on it count against the blast radius."""
    where, fault = aim.where, aim.fault
    pods = model_pods(members, where)
    try:
        chosen = select_node(pods, aim.seed, node=fault.node, max_pods_percent=aim.max_pods_percent)
    except SelectionError as exc:
        raise Refusal(exc.reason, exc.message) from None
    parameters = FaultParameters(
        node=chosen.node, namespace=where.namespace, grace_period_seconds=fault.grace_period_seconds
    )
    return Choice(chosen.pods, parameters.record(), aim.seed)


def evict(core: client.CoreV1Api, namespace: str, pod: str, grace: int | None) -> bool:
    """Evict one pod; gone already is fine. False when the PodDisruptionBudget refused
    (429: evicting it now would leave fewer pods available than the budget allows): the
    refusal is respected, the pod stays on the cordoned node, and the step says so."""
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
    }
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace}
    try:
        k8s.call(
            core.create_namespaced_pod_eviction,
            pod,
            namespace,
            body,
            _request_timeout=TIMEOUT,
            absent=k8s.DONE,
        )
    except client.ApiException as exc:
        if exc.status != 429:  # the PodDisruptionBudget says not now: respected
            raise
        return False
    return True


def evict_all(members: MemberRegistry, record: FaultRecord) -> None:
    """Evict the record's pods in order; those the budget refused are named in the record's
    parameters (refusedByPodDisruptionBudget), written with its applied state."""
    core = client.CoreV1Api(member_api(members, record.cluster))
    parameters = FaultParameters.of(record)
    assert parameters.namespace is not None
    refused = [
        pod
        for pod in record.targets
        if not evict(core, parameters.namespace, pod, parameters.grace_period_seconds)
    ]
    kept = ",".join(refused) or None
    record.parameters = parameters.model_copy(
        update={"refused_by_pod_disruption_budget": kept}
    ).record()


def eviction_summary(record: FaultRecord) -> Observation:
    """What the evictions did, for the step's message (the budget's refusals are the
    system holding, not a failure)."""
    parameters = FaultParameters.of(record)
    refused = [p for p in (parameters.refused_by_pod_disruption_budget or "").split(",") if p]
    node, total = parameters.node or "?", len(record.targets)
    message = f"{record.type} of {node}: {total - len(refused)} of {total} pods evicted"
    if refused:
        message += (
            f"; the PodDisruptionBudget refused {len(refused)} ({', '.join(refused)}) while "
            "evicting it would have left too few available, so it stayed on the node"
        )
    return Observation(Phase.PASSED, "", message)


class NodeDrain:
    provider = "member-api"
    needs_infrastructure = False
    inject_allowance_s = NODE_INJECT_ALLOWANCE_S

    def describe(self, fault_type: str) -> str:
        return (
            "cordons a node that runs the model and evicts the model's pods on it through "
            "the Eviction API (the PodDisruptionBudget is respected); undo uncordons it"
        )

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        planned = plan_node(members, aim)
        name = FaultParameters.of(planned.parameters).node_name
        core = client.CoreV1Api(member_api(members, aim.where.cluster))
        node = core.read_node(name, _request_timeout=TIMEOUT)
        if node.spec.unschedulable:
            # Cordoned by someone else: draining it again would be no fault, and undo must
            # not uncordon what the drill did not cordon.
            raise Refusal(
                "NodeAlreadyCordoned",
                f"node {name} in {aim.where.cluster} is cordoned already",
            )
        return planned

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        core = client.CoreV1Api(member_api(members, record.cluster))
        marks = nodefault.marked("cordon", record.id, _expiry(record))
        core.patch_node(
            FaultParameters.of(record).node_name,
            {"metadata": {"annotations": marks}, "spec": {"unschedulable": True}},
            _request_timeout=TIMEOUT,
        )
        evict_all(members, record)

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        renew_marks(members, record, "cordon", expires_at)

    def observe(self, members: MemberRegistry, record: FaultRecord) -> Observation:
        return eviction_summary(record)

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        """Uncordon the node only while it carries this fault's id (the cordon and the marks
        are set in one patch): a cordon someone else set is never lifted."""
        core = client.CoreV1Api(member_api(members, record.cluster))
        name = FaultParameters.of(record).node_name
        node = k8s.call(core.read_node, name, _request_timeout=TIMEOUT, absent=None)
        if node is None or not carries(node, "cordon", record.id):
            return  # gone, undone already (by its agent at expiry), or not this fault's
        body = {
            "metadata": {
                "resourceVersion": node.metadata.resource_version,
                "annotations": nodefault.unmarked("cordon"),
            },
            "spec": {"unschedulable": False},
        }
        core.patch_node(name, body, _request_timeout=TIMEOUT)


def _taints(node: Any) -> list[dict[str, Any]]:
    return [
        {"key": t.key, "value": t.value, "effect": t.effect}
        | ({"timeAdded": t.time_added} if t.time_added else {})
        for t in (node.spec.taints or [])
    ]


def _is_ours(taint: dict[str, Any]) -> bool:
    return nodefault.is_gpu_loss_taint(taint)


class GPULoss:
    provider = "member-api"
    needs_infrastructure = False
    inject_allowance_s = NODE_INJECT_ALLOWANCE_S

    def describe(self, fault_type: str) -> str:
        return (
            "taints a node that runs the model nvidia.com/gpu=modeldr.io-drill:NoExecute and "
            "evicts the model's pods on it; undo removes exactly that taint"
        )

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        planned = plan_node(members, aim)
        name = FaultParameters.of(planned.parameters).node_name
        core = client.CoreV1Api(member_api(members, aim.where.cluster))
        node = core.read_node(name, _request_timeout=TIMEOUT)
        taken = [
            t
            for t in _taints(node)
            if t["key"] == GPU_RESOURCE and t["effect"] == GPU_LOSS_EFFECT and not _is_ours(t)
        ]
        if taken:
            # The apiserver refuses a second taint of the same key and effect, and the GPUs
            # are gone already: no fault to make.
            raise Refusal(
                "NodeAlreadyTainted",
                f"node {name} in {aim.where.cluster} has a "
                f"{GPU_RESOURCE}:{GPU_LOSS_EFFECT} taint already",
            )
        return planned

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        core = client.CoreV1Api(member_api(members, record.cluster))
        name = FaultParameters.of(record).node_name
        node = core.read_node(name, _request_timeout=TIMEOUT)
        taints = _taints(node)
        tainted = any(_is_ours(t) for t in taints)
        holder = (node.metadata.annotations or {}).get(nodefault.GPU_LOSS_FAULT)
        if not (tainted and holder == record.id):  # else a retried inject: nothing to write
            self._taint(core, node, record)
        # The taint manager evicts pods without a NoExecute toleration; evicting the model's
        # pods ourselves makes the fault's start a known instant.
        evict_all(members, record)

    @staticmethod
    def _taint(core: client.CoreV1Api, node: Any, record: FaultRecord) -> None:
        taints = _taints(node)
        marks = nodefault.marked("gpu-loss", record.id, _expiry(record))
        # The resourceVersion makes a concurrent taint change a 409, not a lost write.
        body: dict[str, Any] = {
            "metadata": {"resourceVersion": node.metadata.resource_version, "annotations": marks}
        }
        if not any(_is_ours(t) for t in taints):
            taint = {"key": GPU_RESOURCE, "value": GPU_LOSS_TAINT_VALUE, "effect": GPU_LOSS_EFFECT}
            body["spec"] = {"taints": [*taints, taint]}
        core.patch_node(node.metadata.name, body, _request_timeout=TIMEOUT)

    def observe(self, members: MemberRegistry, record: FaultRecord) -> Observation:
        return eviction_summary(record)

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        renew_marks(members, record, "gpu-loss", expires_at)

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        core = client.CoreV1Api(member_api(members, record.cluster))
        name = FaultParameters.of(record).node_name
        node = k8s.call(core.read_node, name, _request_timeout=TIMEOUT, absent=None)
        if node is None or not carries(node, "gpu-loss", record.id):
            return  # gone, undone already (by its agent at expiry), or not this fault's
        taints = _taints(node)
        kept = [t for t in taints if not _is_ours(t)]
        body: dict[str, Any] = {
            "metadata": {
                "resourceVersion": node.metadata.resource_version,
                "annotations": nodefault.unmarked("gpu-loss"),
            }
        }
        if len(kept) != len(taints):
            body["spec"] = {"taints": kept or None}
        core.patch_node(name, body, _request_timeout=TIMEOUT)
