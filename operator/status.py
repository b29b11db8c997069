"""Status of a ModelDeployment: conditions (metav1.Condition), per-cluster status, phase.

Pure functions; the daemon writes the result through the status subresource only when it
changed, and posts an Event for every condition that changes (`build_status` is the whole
status of one tick; `apply_conditions` merges its condition changes into what is there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import DIGEST_ANNOTATION, ROLES, Role
from modeldr.kube.times import iso
from modeldr.operator.failover import (
    LAST_FAILOVER_KEYS,
    Decision,
    Health,
    other,
    replicas_for,
)
from modeldr.operator.monitor import Snapshot


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> tuple[list[dict[str, Any]], bool]:
    """The conditions with `type_` set; True as second value when its status changed."""
    value = "True" if status else "False"
    out = [dict(c) for c in conditions if c.get("type") != type_]
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    out.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message[:32768],
            "observedGeneration": generation,
            "lastTransitionTime": iso(now)
            if changed or previous is None
            else previous.get("lastTransitionTime", iso(now)),
        }
    )
    order = {c.get("type"): i for i, c in enumerate(conditions)}
    out.sort(key=lambda c: order.get(c["type"], len(order)))
    return out, changed and previous is not None


def observed_digest(deployment: dict[str, Any] | None) -> str | None:
    """The digest every ready replica was started with (and verified before turning ready)."""
    if not deployment:
        return None
    status = deployment.get("status") or {}
    spec = deployment.get("spec") or {}
    metadata = deployment.get("metadata") or {}
    rolled_out = (
        status.get("observedGeneration") == metadata.get("generation")
        and int(status.get("updatedReplicas") or 0) >= int(spec.get("replicas") or 0)
        and int(status.get("readyReplicas") or 0) > 0
    )
    if not rolled_out:
        return None
    annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    digest = annotations.get(DIGEST_ANNOTATION)
    return str(digest) if digest else None


def cluster_status(
    cluster: str,
    snapshot: Snapshot,
    health: Health,
    namespace: str,
    name: str,
    wanted_replicas: int,
    gpu_product: str | None,
    autoscaled: bool = False,
) -> dict[str, Any]:
    deployment = snapshot.deployments.get((namespace, name))
    # Autoscaled (spec.autoscaling), the Deployment may run more than the floor wanted here.
    sized = int(((deployment or {}).get("spec") or {}).get("replicas") or 0)
    out: dict[str, Any] = {
        "cluster": cluster,
        "reachable": snapshot.ok,
        "replicas": max(wanted_replicas, sized) if autoscaled else wanted_replicas,
        "readyReplicas": int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0),
        "lastCheckTime": iso(snapshot.time),
        "message": health.reason[:1024],
    }
    if health.answering:
        out["answering"] = health.answering
    digest = observed_digest(deployment)
    if digest:
        out["observedDigest"] = digest
    if snapshot.gpus is not None:
        out["freeGPUs"] = snapshot.gpus.free(gpu_product)
    return out


def failover_ready(
    mode: str,
    other_health: Health,
    other_snapshot: Snapshot,
    missing_replicas: int,
    gpus_per_replica: int,
    gpu_product: str | None,
) -> tuple[bool, str]:
    """Could the non-active cluster take all the traffic now (or after scaling up)?"""
    if not other_snapshot.ok:
        return False, f"{other_snapshot.cluster} unreachable: {other_snapshot.error}"
    if mode in ("hot", "warm") and not other_health.healthy:
        return False, f"{other_snapshot.cluster} not ready: {other_health.reason}"
    needed = missing_replicas * gpus_per_replica
    if needed and other_snapshot.gpus is not None:
        free = other_snapshot.gpus.free(gpu_product)
        if free < needed:
            return False, (
                f"{other_snapshot.cluster} has {free} free GPUs"
                + (f" of product {gpu_product}" if gpu_product else "")
                + f", needs {needed} to scale up on failover"
            )
    return True, f"{other_snapshot.cluster} can take the traffic"


def without_times(status: dict[str, Any]) -> dict[str, Any]:
    """The status minus the fields that change on every check (to decide whether to write)."""
    out = {k: v for k, v in status.items() if k not in ("primary", "standby")}
    for role in ("primary", "standby"):
        if role in status:
            out[role] = {k: v for k, v in status[role].items() if k != "lastCheckTime"}
    return out


# Conditions whose True is the abnormal state (an Event of type Warning when they turn True).
NEGATIVE_CONDITIONS = ("Degraded", "FailedOver", "SwitchPending", "DrillInProgress")

# (type, status, reason, message) of one condition.
ConditionChange = tuple[str, bool, str, str]


@dataclass(frozen=True)
class Observed:
    """What one tick knows about a ModelDeployment, as the status build needs it."""

    name: str
    spec: ModelDeploymentSpec
    active: Role
    armed: bool
    decision: Decision
    snapshots: dict[Role, Snapshot]
    health: dict[Role, Health]
    traffic_routed: bool  # the provider has a target in effect
    traffic_error: str
    reconcile_errors: tuple[str, ...]
    # traffic_error is a traffic object this ModelDeployment does not own (never adopted).
    traffic_conflict: bool = False
    drill: str | None = None  # the DrillRun breaking this model now, if any
    # The replicas each role was sized to this tick (spec.autoscaling: its HPA's floor).
    wanted_replicas: dict[Role, int] | None = None

    def wanted(self, role: Role) -> int:
        if self.wanted_replicas is not None and role in self.wanted_replicas:
            return self.wanted_replicas[role]
        return replicas_for(self.spec, role, self.decision.full_size)


@dataclass(frozen=True)
class StatusReport:
    status: dict[str, Any]  # without conditions
    changes: list[ConditionChange]
    serving: bool
    can_fail_over: bool


def build_status(
    seen: Observed,
    generation: int,
    last_failover: dict[str, Any] | None,
    previous: Any,
) -> StatusReport:
    """The status one tick writes: phase, per-cluster parts, the failover record and the
    condition changes."""
    spec, active = seen.spec, seen.active
    per_cluster = {
        role: cluster_status(
            spec.member(role).cluster,
            seen.snapshots[role],
            seen.health[role],
            spec.member(role).namespace,
            seen.name,
            seen.wanted(role),
            spec.gpu_product_for(role),
            spec.autoscaling is not None,
        )
        for role in ROLES
    }
    can_fail_over, why = standby_readiness(seen)
    serving = seen.health[active].healthy and seen.traffic_routed and not seen.traffic_error
    ready = per_cluster[active]["readyReplicas"]
    degraded = degraded_reasons(seen, ready, serving, "" if can_fail_over else why)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase_of(seen, serving, bool(degraded)),
        "activeCluster": spec.member(active).cluster,
        "primary": per_cluster["primary"],
        "standby": per_cluster["standby"],
    }
    if last_failover is not None:
        # A merge patch keeps keys it does not mention: null the previous failover's timings.
        status["lastFailover"] = {key: None for key in LAST_FAILOVER_KEYS} | last_failover
    elif (previous or {}).get("lastFailover"):
        status["lastFailover"] = dict(previous["lastFailover"])
    changes = condition_changes(seen, serving, can_fail_over, why, degraded)
    return StatusReport(status, changes, serving, can_fail_over)


def standby_readiness(seen: Observed) -> tuple[bool, str]:
    """Could the cluster that is not active take over now?"""
    spec = seen.spec
    standby = other(seen.active)
    if standby == "standby":
        mode = spec.clusters.standby.mode
        missing = spec.replicas - spec.standby_replicas()
    else:
        mode, missing = "hot", 0  # the primary always runs full size
    return failover_ready(
        mode,
        seen.health[standby],
        seen.snapshots[standby],
        missing,
        spec.resources.gpus_per_replica,
        spec.gpu_product_for(standby),
    )


def degraded_reasons(
    seen: Observed, active_ready: int, serving: bool, cannot_fail_over: str
) -> list[str]:
    """Why the model is served but not as wanted (empty: as wanted). `cannot_fail_over` is
    why the standby could not take over, '' when it could."""
    reasons = [cannot_fail_over] if cannot_fail_over else []
    wanted = seen.wanted(seen.active)
    if serving and active_ready < wanted:
        cluster = seen.spec.member(seen.active).cluster
        reasons.append(f"{active_ready}/{wanted} replicas ready in {cluster}")
    return reasons + list(seen.reconcile_errors)


def phase_of(seen: Observed, serving: bool, degraded: bool) -> str:
    if seen.decision.failing_back:
        return "FailingBack"
    if seen.decision.failing_over:
        return "FailingOver"
    if serving:
        return "Degraded" if degraded else "Ready"
    if not seen.armed:
        return "Progressing" if seen.snapshots[seen.active].deployments else "Pending"
    return "Failed"


def condition_changes(
    seen: Observed, serving: bool, can_fail_over: bool, why: str, degraded: list[str]
) -> list[ConditionChange]:
    health, active = seen.health, seen.active
    active_cluster = seen.spec.member(active).cluster
    errors = seen.reconcile_errors
    changes: list[ConditionChange] = [
        (
            "Ready",
            serving,
            ready_reason(seen, serving),
            f"{active_cluster}: {health[active].reason}"
            + (f"; traffic: {seen.traffic_error}" if seen.traffic_error else ""),
        ),
        (
            "PrimaryReady",
            health["primary"].healthy,
            "Healthy" if health["primary"].healthy else "Unhealthy",
            health["primary"].reason,
        ),
        (
            "StandbyReady",
            health["standby"].healthy,
            "Healthy" if health["standby"].healthy else "Unhealthy",
            health["standby"].reason,
        ),
        (
            "FailoverReady",
            can_fail_over,
            "StandbyCanTakeOver" if can_fail_over else "StandbyCannotTakeOver",
            why,
        ),
        (
            "FailedOver",
            active != "primary",
            "ActiveIsStandby" if active != "primary" else "ActiveIsPrimary",
            f"traffic goes to {active_cluster}",
        ),
        (
            "Degraded",
            bool(degraded),
            "Degraded" if degraded else "AsDesired",
            "; ".join(degraded)[:2000] or "all replicas ready, standby as its mode asks",
        ),
        (
            "Reconciled",
            not errors,
            "Applied" if not errors else "ApplyFailed",
            "; ".join(errors)[:2000] or "member objects match the spec",
        ),
    ]
    if seen.decision.waiting:
        changes.append(("SwitchPending", True, "Waiting", seen.decision.waiting))
    else:
        changes.append(("SwitchPending", False, "NoSwitchPending", "no switch is waiting"))
    if seen.drill:
        changes.append(("DrillInProgress", True, "DrillRunning", f"DrillRun {seen.drill} is on"))
    else:
        changes.append(("DrillInProgress", False, "NoDrill", "no drill is running"))
    return changes


def ready_reason(seen: Observed, serving: bool) -> str:
    """The Ready condition's reason: what clients of the active cluster get."""
    if serving:
        return "Serving"
    health = seen.health[seen.active]
    if not health.healthy and health.code != "Healthy":
        return health.code
    if seen.traffic_error and seen.traffic_conflict:
        return "TrafficObjectNotOwned"  # the message names the object
    return "TrafficNotRouted" if seen.traffic_error or not seen.traffic_routed else "NotServing"


def apply_conditions(
    conditions: list[dict[str, Any]],
    changes: list[ConditionChange],
    now: datetime,
    generation: int,
) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """The conditions with every change applied, and an Event (type, reason, message) for
    each condition whose status flipped: Warning when it turned to its abnormal state."""
    events = []
    for type_, value, reason, message in changes:
        conditions, flipped = set_condition(
            conditions, type_, value, reason, message, now, generation
        )
        if flipped:
            bad = value if type_ in NEGATIVE_CONDITIONS else not value
            events.append(("Warning" if bad else "Normal", f"{type_}{value}", message))
    return conditions, events


def comparable(status: dict[str, Any]) -> dict[str, Any]:
    """The status minus what changes on every check and every transition time: equal
    values need no write."""
    out = without_times(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    return out
