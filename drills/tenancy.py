"""A run's tenancy checks (TENANCY.md), all blocking (worker threads):

- before anything is touched (preflight): the freeze at its three levels (Frozen), the
  target's placement, every step's fault type, the plan's blast radius under the policy's
  cap and the member's consent to whole-cluster faults (PolicyDenied);
- before every step and every few seconds while the run goes on (`lapse`): the target still
  opted in (ConsentRevoked), no freeze (Frozen), the policy still allowing it (PolicyDenied);
  the engine then aborts the run and undoes every fault;
- before a node-level fault is journaled (`node_refusal`): the node admitted by the policy's
  nodeSelector (PolicyDenied) and running no pod of a workload that did not opt in, other
  than DaemonSet and static pods (CollateralDamage, naming the pods).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from kubernetes import client

from modeldr.api.drillplan import NODE_FAULTS, DrillPlanSpec
from modeldr.api.tenancy import (
    COLLATERAL_DAMAGE,
    CONSENT_REVOKED,
    FROZEN,
    POLICY_DENIED,
    Grants,
    modeldeployment_denials,
)
from modeldr.api.tenantpolicy import CLUSTER_FAULTS_LABEL, FROZEN_LABEL, TRUE
from modeldr.drills.refusal import Refusal
from modeldr.drills.target import Target, read_object
from modeldr.kube import k8s
from modeldr.kube.constants import (
    DRILLS_ENABLED,
    DRILLS_LABEL,
    MANAGED_BY,
    MANAGER,
    NAME_LABEL,
    NAMESPACE_LABEL,
    ROLES,
)
from modeldr.kube.members import MemberRegistry
from modeldr.kube.tenancy import Tenancy

TIMEOUT: Final = (2.0, 10.0)
# Whole-cluster faults need the member's own consent besides the tenant's policy.
# A region's object store serves every tenant's models there: its outage is one of them.
CLUSTER_FAULTS: Final = ("ClusterOutage", "ModelStoreOutage", "ModelStoreLoss")
# At most this many pods named in a CollateralDamage message.
NAMED_PODS_MAX: Final = 10


@dataclass(frozen=True)
class RunTenancy:
    """The checks of one run against its target."""

    hub: client.ApiClient
    members: MemberRegistry
    tenancy: Tenancy
    target: Target
    plan: DrillPlanSpec

    # ------------------------------------------------------------------ before the run

    def preflight_refusal(self) -> Refusal | None:
        """Why the run may not start (Frozen, PolicyDenied), or None."""
        frozen = self.frozen()
        if frozen is not None:
            return Refusal(FROZEN, f"drills are frozen: {frozen}; nothing was touched")
        grants = self.tenancy.grants(self.target.namespace, fresh=True)
        denials = self.target_denials(grants) + self.plan_denials(grants)
        if denials:
            return Refusal(POLICY_DENIED, "; ".join(dict.fromkeys(denials)))
        return None

    def target_denials(self, grants: Grants) -> list[str]:
        spec = self.target.spec
        placements = [(spec.member(r).cluster, spec.member(r).namespace) for r in ROLES]
        found = modeldeployment_denials(grants, placements, spec.model.source, spec.runtime.image)
        return [f"the target {self.target.name}: {d}" for d in found]

    def plan_denials(self, grants: Grants) -> list[str]:
        found: list[str] = []
        plan_percent = self.plan.blast_radius.max_pods_percent
        labels: dict[str, dict[str, str]] | None = None
        for step in self.plan.steps:
            fault = step.fault
            if fault is None:
                continue
            denied = grants.fault_denial(fault.type)
            if denied is not None:
                found.append(f"step {step.name}: {denied}")
                continue
            cap = grants.max_pods_percent(fault.type, plan_percent)
            if cap < plan_percent:
                found.append(
                    f"step {step.name}: drills.maxPodsPercent: the plan's blastRadius."
                    f"maxPodsPercent {plan_percent} is over the {cap} the TenantPolicies "
                    f"allowing {fault.type} to {grants.namespace} ({grants.names}) allow"
                )
            if fault.type in CLUSTER_FAULTS:
                labels = labels if labels is not None else self.members.secret_labels()
                for cluster in self.clusters_of(fault.cluster):
                    if (labels.get(cluster) or {}).get(CLUSTER_FAULTS_LABEL) != TRUE:
                        found.append(
                            f"step {step.name}: {fault.type} in {cluster} needs the member's "
                            f"consent: its hub Secret labelled {CLUSTER_FAULTS_LABEL}={TRUE}"
                        )
        return found

    def clusters_of(self, fault_cluster: str) -> list[str]:
        """The member clusters a step's `fault.cluster` may hit (active: either)."""
        if fault_cluster == "active":
            return [self.target.cluster(role) for role in ROLES]
        role = self.target.role_of(fault_cluster)
        return [self.target.cluster(role)] if role is not None else []

    # ------------------------------------------------------------------ while it runs

    def frozen(self) -> str | None:
        """Where a freeze applies to this run, or None."""
        if self.tenancy.operator_frozen():
            return f"namespace {self.tenancy.operator_namespace} is labelled {FROZEN_LABEL}={TRUE}"
        labels = self.members.secret_labels()
        for cluster in sorted({self.target.cluster(role) for role in ROLES}):
            if (labels.get(cluster) or {}).get(FROZEN_LABEL) == TRUE:
                return f"member {cluster}'s hub Secret is labelled {FROZEN_LABEL}={TRUE}"
        grants = self.tenancy.grants(self.target.namespace, fresh=True)
        by = grants.frozen_by()
        if by:
            return f"TenantPolicy {', '.join(by)} has spec.drills.frozen: true"
        return None

    def lapse(self) -> tuple[str, str] | None:
        """(reason, message) when the run must stop now, or None to go on."""
        obj = read_object(self.hub, self.target.namespace, self.target.name)
        if obj is None:
            return CONSENT_REVOKED, f"the target {self.target.name} was deleted mid-run"
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(DRILLS_LABEL) != DRILLS_ENABLED:
            return CONSENT_REVOKED, (
                f"the target {self.target.name} no longer carries {DRILLS_LABEL}="
                f"{DRILLS_ENABLED}: its owner withdrew consent"
            )
        frozen = self.frozen()
        if frozen is not None:
            return FROZEN, f"drills were frozen mid-run: {frozen}"
        grants = self.tenancy.grants(self.target.namespace)
        denials = self.target_denials(grants) + self.plan_denials(grants)
        if denials:
            return POLICY_DENIED, "the policy changed mid-run: " + "; ".join(denials)
        return None

    # ------------------------------------------------------------------ node-level faults

    def node_refusal(self, fault_type: str, cluster: str, node: str) -> Refusal | None:
        """Why a node-level fault may not be made on this node (read now), or None."""
        if fault_type not in NODE_FAULTS:
            return None
        core = client.CoreV1Api(self.members.get(cluster).api)
        found: Any = k8s.call(core.read_node, node, _request_timeout=TIMEOUT, absent=None)
        if found is None:
            return Refusal(POLICY_DENIED, f"node {node} in {cluster} does not exist")
        grants = self.tenancy.grants(self.target.namespace)
        denied = grants.node_denial(fault_type, node, found.metadata.labels or {})
        if denied is not None:
            return Refusal(POLICY_DENIED, f"{fault_type} in {cluster}: {denied}")
        pods = core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node}", _request_timeout=TIMEOUT
        ).items
        hurt = self.bystanders(pods)
        if not hurt:
            return None
        named = ", ".join(hurt[:NAMED_PODS_MAX]) + (
            f" and {len(hurt) - NAMED_PODS_MAX} more" if len(hurt) > NAMED_PODS_MAX else ""
        )
        return Refusal(
            COLLATERAL_DAMAGE,
            f"{fault_type} on node {node} in {cluster} would hurt {len(hurt)} pods of "
            f"workloads that did not opt in to drills: {named}; nothing was touched",
        )

    def bystanders(self, pods: Iterable[Any]) -> list[str]:
        """namespace/name of the pods a node-level fault would hurt that did not opt in."""
        opted: dict[tuple[str, str], bool] = {}
        hurt = []
        for pod in pods:
            if (pod.status.phase or "") in ("Succeeded", "Failed") or node_bound(pod):
                continue
            owner = model_owner(pod.metadata.labels or {})
            if owner is not None:
                if owner not in opted:
                    opted[owner] = self.opted_in(*owner)
                if opted[owner]:
                    continue
            hurt.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return sorted(hurt)

    def opted_in(self, hub_namespace: str, name: str) -> bool:
        obj = read_object(self.hub, hub_namespace, name)
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return bool(labels.get(DRILLS_LABEL) == DRILLS_ENABLED)


def node_bound(pod: Any) -> bool:
    """A DaemonSet's pod or a static (mirror) pod: part of the node, not a workload on it."""
    owners = pod.metadata.owner_references or []
    if any(owner.kind == "DaemonSet" for owner in owners):
        return True
    return "kubernetes.io/config.mirror" in (pod.metadata.annotations or {})


def model_owner(labels: dict[str, str]) -> tuple[str, str] | None:
    """(hub namespace, name) of the ModelDeployment whose pod this is, or None."""
    if labels.get(MANAGED_BY) != MANAGER:
        return None
    name, namespace = labels.get(NAME_LABEL), labels.get(NAMESPACE_LABEL)
    return (namespace, name) if name and namespace else None
