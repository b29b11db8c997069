"""The traffic provider contract: point a ModelDeployment's clients at the active cluster.

A provider is called from a worker thread (never on kopf's event loop), so it may block on
the Kubernetes client or HTTP. `apply` is idempotent and called whenever the target changes
(a new active cluster, or its set of ready addresses), once after every operator start, and
again with the same target at least every 30 s (so a hand-deleted object comes back);
it returns only when the switch is in effect as far as the provider can tell (the object is
written, the webhook answered 2xx), because that instant is the failover's `switchedTime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import API_VERSION
from modeldr.kube.errors import TrafficError as TrafficError


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment in the hub (objects a provider creates are owned by it)."""

    namespace: str
    name: str
    uid: str
    api_version: str = API_VERSION
    kind: str = "ModelDeployment"

    def reference(self) -> dict[str, object]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ClusterTarget:
    """One member cluster's part of the traffic: its entry addresses and its weight (0..100).

    In activeStandby mode only the active cluster is listed, with weight 100; in activeActive
    both are, with the weights of operator/activeactive.py."""

    cluster: str
    role: str
    addresses: tuple[str, ...]
    weight: int
    state: str = "Serving"
    message: str = ""


@dataclass(frozen=True)
class TrafficTarget:
    """Where the traffic should go now."""

    active_cluster: str
    primary_cluster: str
    standby_cluster: str
    # Ready pod addresses of the active cluster (loopback in the sandbox), sorted.
    addresses: tuple[str, ...]
    port: int
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # Every cluster that takes a share (providers that apply weights read these).
    clusters: tuple[ClusterTarget, ...] = ()
    mode: str = "activeStandby"


class TrafficProvider(Protocol):
    name: str

    def apply(
        self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
    ) -> None:
        """Make `target` take effect."""
        ...

    def cleanup(self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """Remove what apply created (objects owned by the ModelDeployment go by GC anyway)."""
        ...
