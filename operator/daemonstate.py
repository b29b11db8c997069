"""The per-ModelDeployment state its daemon keeps between ticks, and the write guard it
shares with the deletion handler. No I/O here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import ROLES, Role
from modeldr.kube.errors import Closing
from modeldr.operator.activeactive import ClusterShare, WeightState
from modeldr.operator.autoscaling import ScaleMemory
from modeldr.operator.ejection import Ejections
from modeldr.operator.evaluation import EvaluationState
from modeldr.operator.failover import FailoverState
from modeldr.operator.monitor import Key, Wake
from modeldr.operator.rollout import RolloutState
from modeldr.operator.traffic.base import Owner, TrafficTarget

if TYPE_CHECKING:
    from modeldr.operator.runtime import Runtime

T = TypeVar("T")


@dataclass
class Writes:
    """Keeps the daemon's member and traffic writes and the deletion handler's cleanup
    apart: once `close()` returns no write is in flight, and `run` refuses new ones, so a tick
    cannot recreate what the cleanup deleted. Shared through the object's kopf memo; used
    from worker threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def run(self, call: Callable[[], T]) -> T:
        with self.lock:
            if self.closed:
                raise Closing
            return call()

    def close(self) -> None:
        with self.lock:
            self.closed = True


@dataclass
class DaemonState:
    runtime: Runtime
    namespace: str
    name: str
    uid: str
    writes: Writes = field(default_factory=Writes)
    state: FailoverState = field(default_factory=FailoverState)
    restored: bool = False
    last_target: TrafficTarget | None = None
    last_status: dict[str, Any] = field(default_factory=dict)
    last_status_write: float = 0.0
    # Kinds per cluster already seen as ours (skips the ownership read before applying).
    known: dict[str, set[str]] = field(default_factory=dict)
    traffic_error: str = ""
    # The error is a traffic object that is not this ModelDeployment's (never adopted).
    traffic_conflict: bool = False
    # Why the TenantPolicies refuse the spec ('' when they allow it).
    policy_denial: str = ""
    reconcile_error: dict[str, str] = field(default_factory=dict)
    member_errors: dict[str, str] = field(default_factory=dict)
    last_traffic_write: float = 0.0
    # Thread-safe wake-up of this daemon, and what it is registered for: (cluster, key).
    wake: Wake | None = None
    watching: set[tuple[str, Key]] = field(default_factory=set)
    # Member clusters of the spec, and clusters it named before (their objects go).
    clusters: set[str] = field(default_factory=set)
    former: set[str] = field(default_factory=set)
    # Entry points the client probe found dead, per role (ejection.py).
    ejections: dict[str, Ejections] = field(
        default_factory=lambda: {"primary": Ejections(), "standby": Ejections()}
    )
    evaluation: EvaluationState = field(default_factory=EvaluationState)
    rollout: RolloutState = field(default_factory=RolloutState)
    # traffic.mode activeActive: what the weighting remembers, and this round's shares.
    weights: WeightState = field(default_factory=WeightState)
    shares: dict[Role, ClusterShare] | None = None
    # spec.autoscaling: each role's replicas while healthy, when each last failed.
    scale_memory: ScaleMemory = field(default_factory=ScaleMemory)
    # The replicas each role was sized to in the last tick (the status reports them).
    wanted_replicas: dict[Role, int] = field(default_factory=dict)

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.name, self.uid)

    def labels(self) -> dict[str, str]:
        return {"namespace": self.namespace, "modeldeployment": self.name}


def cluster_of(spec: ModelDeploymentSpec, role: Role) -> str:
    return spec.member(role).cluster


def who(role: Role, cluster: str) -> str:
    return cluster if cluster == role else f"{role} cluster {cluster}"


def role_of(spec: ModelDeploymentSpec, value: str | None) -> Role | None:
    """The role a switch request or a status names, by role or by cluster name."""
    if value in ("primary", spec.clusters.primary.cluster):
        return "primary"
    if value in ("standby", spec.clusters.standby.cluster):
        return "standby"
    return None


def status_clusters(status: Any) -> set[str]:
    """The member clusters a status names (where the model was last placed)."""
    clusters = set()
    for role in ROLES:
        cluster = ((status or {}).get(role) or {}).get("cluster")
        if cluster:
            clusters.add(str(cluster))
    return clusters


def ending(meta: Any, stopped: Any) -> bool:
    """Deleted (or the daemon is stopping): no more writes to members or traffic."""
    return bool(stopped) or bool(meta.get("deletionTimestamp"))
