"""The drill's target as the hub shows it: the ModelDeployment (opt-in label, spec, status),
its member clusters and roles, and the hub calls a run makes on it (read, switch request).
Blocking; the engine calls these in worker threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.drills.faults.base import Placement
from modeldr.drills.refusal import Refusal
from modeldr.kube import k8s
from modeldr.kube.constants import (
    DRILLS_ENABLED,
    DRILLS_LABEL,
    GROUP,
    MODELDEPLOYMENT_KIND,
    MODELDEPLOYMENTS,
    ROLES,
    SWITCH_ANNOTATION,
    VERSION,
    Role,
)

TIMEOUT = (2, 10)


@dataclass(frozen=True)
class Target:
    namespace: str
    name: str
    uid: str
    spec: ModelDeploymentSpec
    labels: dict[str, str]

    @property
    def opted_in(self) -> bool:
        return self.labels.get(DRILLS_LABEL) == DRILLS_ENABLED

    def cluster(self, role: Role) -> str:
        return self.spec.member(role).cluster

    def role_of(self, cluster: str | None) -> Role | None:
        for role in ROLES:
            if cluster in (role, self.cluster(role)):
                return role
        return None

    def placement(self, role: Role) -> Placement:
        member = self.spec.member(role)
        return Placement(self.namespace, self.name, role, member.cluster, member.namespace)

    def service(self) -> str:
        """The hub Service whose EndpointSlice the endpointslice provider keeps."""
        return self.spec.service_name(self.name)

    def body(self) -> dict[str, Any]:
        """Enough of the object for kopf.event."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": MODELDEPLOYMENT_KIND,
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }


def resolve_role(target: Target, cluster: str, active: str | None) -> Role:
    """The role a step's `fault.cluster` names: active (the cluster active now), a role, or
    a member cluster's name; Refusal when it names none of them."""
    if cluster == "active" and active is None:
        raise Refusal(
            "ActiveClusterUnknown",
            f"fault.cluster active: {target.name} reports no status.activeCluster yet",
        )
    role = target.role_of(active if cluster == "active" else cluster)
    if role is None:
        raise Refusal(
            "UnknownCluster",
            f"fault.cluster {cluster!r} is neither active, primary, standby nor a member "
            f"cluster of {target.name} ({target.cluster('primary')}, "
            f"{target.cluster('standby')})",
        )
    return role


def read_object(hub: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    api = client.CustomObjectsApi(hub)
    found: dict[str, Any] | None = k8s.call(
        api.get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        MODELDEPLOYMENTS,
        name,
        _request_timeout=TIMEOUT,
        absent=None,
    )
    return found


def read_target(hub: client.ApiClient, namespace: str, name: str) -> Target:
    """The ModelDeployment; Refusal(TargetNotFound / TargetNotOptedIn / TargetInvalid)."""
    obj = read_object(hub, namespace, name)
    if obj is None:
        raise Refusal("TargetNotFound", f"ModelDeployment {namespace}/{name} does not exist")
    labels = dict(obj["metadata"].get("labels") or {})
    try:
        spec = ModelDeploymentSpec.parse(obj.get("spec") or {})
    except Exception as exc:
        raise Refusal("TargetInvalid", f"ModelDeployment {name}: {exc}"[:1024]) from None
    target = Target(namespace, name, obj["metadata"]["uid"], spec, labels)
    if not target.opted_in:
        raise Refusal(
            "TargetNotOptedIn",
            f"ModelDeployment {name} does not carry the label {DRILLS_LABEL}={DRILLS_ENABLED}: "
            "a drill touches only what opted in",
        )
    return target


def target_status(hub: client.ApiClient, target: Target) -> dict[str, Any]:
    """The ModelDeployment's status now ({} when it is gone)."""
    obj = read_object(hub, target.namespace, target.name)
    return dict((obj or {}).get("status") or {})


def request_switch(hub: client.ApiClient, target: Target, role: Role) -> None:
    """Ask the operator's own switch to move traffic (a Failover or Failback action)."""
    client.CustomObjectsApi(hub).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        target.namespace,
        MODELDEPLOYMENTS,
        target.name,
        {"metadata": {"annotations": {SWITCH_ANNOTATION: role}}},
        _request_timeout=TIMEOUT,
    )
