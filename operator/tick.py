"""One round of a ModelDeployment's daemon, as named steps:

    parse -> observe -> decide -> reconcile members -> route traffic -> report -> next wake-up

`observe` reads the shared per-cluster snapshots and runs the health checks (no member
calls of its own); `decide` is the pure failover state machine; `reconcile_members` and
`route_traffic` are the only writers (inside the object's write guard); `report` builds the
status with the pure `status.build_status` and writes it only when it changed. Each step is
a function a unit test calls with a DaemonState it built.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from pydantic import ValidationError

from modeldr.api.base import truncate
from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.api.tenancy import POLICY_DENIED, modeldeployment_denials
from modeldr.kube import k8s, promql
from modeldr.kube.constants import GROUP, MODELDEPLOYMENTS, ROLES, SWITCH_ANNOTATION, VERSION, Role
from modeldr.kube.errors import MemberError, RenderError, TrafficConflict, TrafficError
from modeldr.kube.events import post_event
from modeldr.kube.tenancy import PoliciesUnreadable
from modeldr.operator import activeactive, autoscaling, clientprobe, metrics, render
from modeldr.operator.daemonstate import (
    DaemonState,
    cluster_of,
    ending,
    role_of,
    status_clusters,
    who,
)
from modeldr.operator.failover import Decision, Health, Switch, failover_record, replicas_for
from modeldr.operator.health import cluster_health
from modeldr.operator.monitor import Snapshot
from modeldr.operator.reconcile import reconcile_member, remove_stale, watch
from modeldr.operator.rollouts import advance_rollout
from modeldr.operator.status import (
    ConditionChange,
    Observed,
    apply_conditions,
    build_status,
    comparable,
)
from modeldr.operator.traffic.base import ClusterTarget, TrafficTarget
from modeldr.operator.verify import evaluate_model, fail_back_request, report_evaluation

log = logging.getLogger(__name__)

# Status is rewritten at least this often even when only check times moved; the last
# traffic target is written again as often (a hand-deleted hub object comes back).
STATUS_REFRESH_S = 30.0
INVALID_SPEC_RETRY_S = 30.0
# A ModelDeployment its tenant's policy refuses is looked at again this often (a policy the
# admin widens takes effect within it).
POLICY_DENIED_RETRY_S = 5.0
# While a failover or a wanted switch is under way, tick at least this often.
BUSY_TICK_S = 1.0
# A tick that ends early because the object is being deleted comes back this soon.
ENDING_TICK_S = 1.0


@dataclass(frozen=True)
class Seen:
    """What `observe` found: the snapshots of both members and their health checks."""

    snapshots: dict[Role, Snapshot]
    health: dict[Role, Health]


async def tick(
    ctl: DaemonState,
    body: kopf.Body,
    spec_raw: Any,
    meta: Any,
    status_raw: Any,
    stopped: Any,
) -> float:
    """One round; returns seconds until the next."""
    now = datetime.now(UTC)
    generation = int(meta.get("generation") or 0)
    annotations = dict(meta.get("annotations") or {})
    spec = await parse(ctl, body, spec_raw, annotations, now, generation, status_raw)
    if spec is None:
        return INVALID_SPEC_RETRY_S
    if await refused_by_policy(ctl, body, spec, now, generation, status_raw):
        return POLICY_DENIED_RETRY_S
    seen = await observe(ctl, body, spec, status_raw)
    decision = decide(ctl, spec, seen, annotations, now)
    if ending(meta, stopped):
        return ENDING_TICK_S  # the deletion handler cleans up; kopf stops this daemon
    urls = {role: server_urls(ctl, spec, seen, role) for role in ROLES}
    models = await advance_rollout(
        ctl, body, spec, seen.snapshots, urls, annotations, status_raw, now
    )
    specs = {role: spec.model_copy(update={"model": models[role]}) for role in ROLES}
    await reconcile_members(ctl, body, specs, seen, decision, annotations)
    if ending(meta, stopped):
        return ENDING_TICK_S
    last_failover = await route_traffic(ctl, body, spec, seen, decision)
    if spec.evaluation is not None or ctl.evaluation.task is not None:
        active = ctl.state.active
        healthy = seen.health[active].healthy
        await evaluate_model(ctl, body, specs[active], urls[active], healthy, last_failover)
    await settle_switch_request(ctl, spec, annotations, decision)
    ctl.restored = True
    await report(ctl, body, spec, seen, decision, now, generation, status_raw, last_failover)
    interval = ctl.state.next_interval(spec)
    busy = decision.failing_over or bool(decision.waiting)
    return min(interval, BUSY_TICK_S) if busy else interval


async def parse(
    ctl: DaemonState,
    body: kopf.Body,
    spec_raw: Any,
    annotations: dict[str, str],
    now: datetime,
    generation: int,
    status_raw: Any,
) -> ModelDeploymentSpec | None:
    """The spec, or None after reporting why it cannot be served."""
    try:
        spec = ModelDeploymentSpec.parse(spec_raw)
        render.model_volume(spec)  # fails early on an unsupported source
        render.pod_template_annotations(spec, annotations)
    except (ValidationError, RenderError) as exc:
        status = {"phase": "Failed", "observedGeneration": generation}
        change = ("Reconciled", False, "InvalidSpec", str(exc)[:2000])
        await write_status(ctl, body, status, [change], now, generation, status_raw)
        return None
    return spec


async def refused_by_policy(
    ctl: DaemonState,
    body: kopf.Body,
    spec: ModelDeploymentSpec,
    now: datetime,
    generation: int,
    status_raw: Any,
) -> bool:
    """True after reporting that the namespace's TenantPolicies do not allow the spec
    (Ready=False, PolicyDenied, an Event): nothing in any member is created, changed or
    deleted, and what runs there already is left as it is."""
    denials = await asyncio.to_thread(policy_denials, ctl, spec)
    if not denials:
        return False
    message = truncate(
        "; ".join(denials) + ". Nothing in the member clusters was created, changed or deleted."
    )
    if message != ctl.policy_denial:
        log.warning("%s/%s: refused by policy: %s", ctl.namespace, ctl.name, message)
        ctl.policy_denial = message
    status = {"phase": "Failed", "observedGeneration": generation}
    changes: list[ConditionChange] = [
        ("Ready", False, POLICY_DENIED, message),
        ("Reconciled", False, POLICY_DENIED, message),
    ]
    await write_status(ctl, body, status, changes, now, generation, status_raw)
    return True


def policy_denials(ctl: DaemonState, spec: ModelDeploymentSpec) -> list[str]:
    """Blocking: what the namespace's policies refuse of the spec (read fresh before a
    refusal: a policy created a moment ago is not refused on a stale cache)."""
    placements = [(spec.member(role).cluster, spec.member(role).namespace) for role in ROLES]

    def denials(fresh: bool) -> list[str]:
        grants = ctl.runtime.tenancy.grants(ctl.namespace, fresh=fresh)
        return modeldeployment_denials(grants, placements, spec.model.source, spec.runtime.image)

    try:
        found = denials(False)
        if found:
            found = denials(True)
    except PoliciesUnreadable as exc:
        found = [str(exc)]
    if not found:
        ctl.policy_denial = ""
    return found


def track_placement(ctl: DaemonState, spec: ModelDeploymentSpec, status_raw: Any) -> None:
    """Remember the clusters the spec no longer names (their objects go once it serves)."""
    clusters = {cluster_of(spec, role) for role in ROLES}
    if not ctl.clusters:
        # Clusters the last status names that the spec does not (changed while no daemon ran).
        ctl.former |= status_clusters(status_raw) - clusters
    elif clusters != ctl.clusters:
        ctl.former |= ctl.clusters - clusters
    ctl.former -= clusters
    ctl.clusters = clusters
    for gone in set(ctl.reconcile_error) - clusters:  # a cluster the spec no longer names
        del ctl.reconcile_error[gone]


async def observe(
    ctl: DaemonState, body: kopf.Body, spec: ModelDeploymentSpec, status_raw: Any
) -> Seen:
    monitors = {role: ctl.runtime.monitors.get(cluster_of(spec, role)) for role in ROLES}
    track_placement(ctl, spec, status_raw)
    watch(ctl, spec)
    if not ctl.restored:
        # Resume where the last operator left off: the active cluster is in the status.
        restored = role_of(spec, (status_raw or {}).get("activeCluster"))
        ctl.state.active = restored or "primary"
        # It served before this operator started: a failure now is a failure to act on.
        ctl.state.armed = (status_raw or {}).get("phase") not in (None, "Pending", "Progressing")
        for monitor in monitors.values():
            await asyncio.to_thread(monitor.wait_first, 3.0)
    snapshots = {role: monitors[role].snapshot for role in ROLES}
    report_member_errors(ctl, body, spec, snapshots)
    health: dict[Role, Health] = {
        role: cluster_health(snapshots[role], spec.member(role).namespace, ctl.name)
        for role in ROLES
    }
    if spec.failover.health_query:
        checked = await asyncio.gather(
            *(with_query(ctl, spec, role, health[role]) for role in ROLES)
        )
        health = dict(zip(ROLES, checked, strict=True))
    if spec.failover.probe.enabled:
        probed = await asyncio.gather(
            *(with_probe(ctl, spec, role, health[role], snapshots[role]) for role in ROLES)
        )
        health = dict(zip(ROLES, probed, strict=True))
    return Seen(snapshots, health)


def report_member_errors(
    ctl: DaemonState, body: kopf.Body, spec: ModelDeploymentSpec, snapshots: dict[Role, Snapshot]
) -> None:
    """A member that cannot be reached (or read: no Secret, bad kubeconfig) gets an Event
    when that starts and when it ends, from the first check on."""
    for role in ROLES:
        error = snapshots[role].error or ""
        cluster = cluster_of(spec, role)
        if error != ctl.member_errors.get(cluster, ""):
            if error:
                post_event(body, "Warning", "MemberUnavailable", f"{who(role, cluster)}: {error}")
            elif cluster in ctl.member_errors:
                post_event(body, "Normal", "MemberAvailable", f"{who(role, cluster)} answers again")
            ctl.member_errors[cluster] = error


async def with_query(
    ctl: DaemonState, spec: ModelDeploymentSpec, role: Role, health: Health
) -> Health:
    """Add the PromQL part to a passing check (a failing one needs no query)."""
    if not health.healthy or not spec.failover.health_query:
        return health
    cluster = cluster_of(spec, role)
    url = await asyncio.to_thread(prometheus_url, ctl, cluster)
    if not url:
        return Health(
            True,
            f"{health.reason}; health query skipped: no prometheus-url for {cluster}",
            health.ready_replicas,
        )
    expression = promql.render_query(
        spec.failover.health_query, cluster, spec.member(role).namespace
    )
    result = await asyncio.to_thread(promql.evaluate, url, expression)
    if result.passed is False:
        return Health(False, result.message, health.ready_replicas, "HealthQueryFailed")
    return Health(True, f"{health.reason}; {result.message}", health.ready_replicas)


async def with_probe(
    ctl: DaemonState, spec: ModelDeploymentSpec, role: Role, health: Health, snapshot: Snapshot
) -> Health:
    """Add the client probe to a passing check (failover.probe): the cluster fails it when
    too few of the requests a client would send answer in time."""
    probe = spec.failover.probe
    if not probe.enabled or not health.healthy:
        return health
    addresses = entry_addresses(spec, snapshot, (spec.member(role).namespace, ctl.name))
    outcome = await clientprobe.probe_cluster(probe, role, addresses, entry_port(spec))
    before = ctl.ejections[role].ejected(time.monotonic())
    ctl.ejections[role].record(outcome.answering, outcome.failing, time.monotonic())
    after = ctl.ejections[role].ejected(time.monotonic())
    if after != before:
        log.info(
            "%s/%s: %s entry points left out of the traffic (no answer to the client probe): %s",
            ctl.namespace,
            ctl.name,
            role,
            ", ".join(sorted(after)) or "none",
        )
    return Health(
        outcome.passed,
        f"{health.reason}; {outcome.message}",
        health.ready_replicas,
        "Healthy" if outcome.passed else "ServersNotAnswering",
        f"{outcome.answered}/{outcome.sent}",
    )


def prometheus_url(ctl: DaemonState, cluster: str) -> str | None:
    """Blocking: the member Secret's prometheus-url (None when the member is unusable)."""
    try:
        return ctl.runtime.members.get(cluster).prometheus_url
    except MemberError:
        return None


def decide(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    seen: Seen,
    annotations: dict[str, str],
    now: datetime,
) -> Decision:
    """The failover state machine's decision for this round (and the check metrics)."""
    requested = role_of(spec, annotations.get(SWITCH_ANNOTATION))
    decision = ctl.state.observe(spec, now, seen.health, requested or fail_back_request(ctl, spec))
    for role in ROLES:
        metrics.HEALTH_CHECKS.labels(
            ctl.namespace,
            ctl.name,
            cluster_of(spec, role),
            "ok" if seen.health[role].healthy else "failed",
        ).inc()
    return decision


def remember_sizes(ctl: DaemonState, spec: ModelDeploymentSpec, seen: Seen, now: float) -> None:
    """spec.autoscaling: each role's health and Deployment size this tick, for the floor."""
    if spec.autoscaling is None:
        return
    window = spec.autoscaling.scale_down_stabilization_seconds
    for role in ROLES:
        deployment = seen.snapshots[role].deployments.get((spec.member(role).namespace, ctl.name))
        replicas = (deployment or {}).get("spec", {}).get("replicas")
        ctl.scale_memory.observe(role, seen.health[role].healthy, replicas, now, window)


def member_replicas(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    role: Role,
    decision: Decision,
    now: float,
) -> int:
    """The role's Deployment replicas; with spec.autoscaling, its HPA's minReplicas (the
    floor: a cluster serving for a failed peer carries the replicas the peer ran)."""
    if spec.autoscaling is None:
        return replicas_for(spec, role, decision.full_size)
    serving = spec.traffic.active_active or role in decision.full_size
    return autoscaling.floor(spec.autoscaling, spec, role, serving, ctl.scale_memory, now)


async def reconcile_members(
    ctl: DaemonState,
    body: kopf.Body,
    specs: dict[Role, ModelDeploymentSpec],
    seen: Seen,
    decision: Decision,
    annotations: dict[str, str],
) -> None:
    """Member objects, sized for the decision (a failover scales the standby up first);
    `specs`: the spec each role renders (its model pinned during a rollout)."""
    spec = specs["primary"]
    now = time.monotonic()
    remember_sizes(ctl, spec, seen, now)
    for role in ROLES:
        replicas = member_replicas(ctl, spec, role, decision, now)
        ctl.wanted_replicas[role] = replicas
        error = await reconcile_member(
            ctl, specs[role], role, seen.snapshots[role], replicas, annotations
        )
        cluster = cluster_of(spec, role)
        if error and ctl.reconcile_error.get(cluster) != error:
            post_event(body, "Warning", "ReconcileFailed", error)
        ctl.reconcile_error[cluster] = error
    if all(h.healthy for h in seen.health.values()) and not any(ctl.reconcile_error.values()):
        await remove_stale(ctl, spec, body)


async def route_traffic(
    ctl: DaemonState, body: kopf.Body, spec: ModelDeploymentSpec, seen: Seen, decision: Decision
) -> dict[str, Any] | None:
    """Point traffic at the active cluster; returns the failover record of a switch made."""
    if spec.traffic.provider not in ctl.runtime.config.traffic_providers:
        ctl.traffic_conflict = False
        ctl.traffic_error = (
            f"traffic provider {spec.traffic.provider} is not enabled in this operator "
            "(helm value rbac.trafficProviders)"
        )
        return None
    if spec.traffic.active_active:
        healthy = {role: seen.health[role].healthy for role in ROLES}
        ctl.shares = activeactive.weigh(spec, ctl.weights, healthy, time.monotonic())
    else:
        ctl.shares = None
    if decision.switch is not None:
        return await switch_traffic(ctl, body, spec, seen, decision.switch)
    await mirror_active(ctl, body, spec, seen)
    return None


def target_for(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    seen: Seen,
    role: Role,
    addresses: tuple[str, ...],
    reason: str,
    extra: dict[str, str] | None = None,
) -> TrafficTarget:
    return TrafficTarget(
        active_cluster=cluster_of(spec, role),
        primary_cluster=spec.clusters.primary.cluster,
        standby_cluster=spec.clusters.standby.cluster,
        addresses=addresses,
        port=entry_port(spec),
        reason=reason,
        extra=extra or {},
        clusters=cluster_targets(ctl, spec, seen, role, addresses),
        mode=spec.traffic.mode,
    )


def cluster_targets(
    ctl: DaemonState, spec: ModelDeploymentSpec, seen: Seen, role: Role, addresses: tuple[str, ...]
) -> tuple[ClusterTarget, ...]:
    """activeStandby: the active cluster with all the weight. activeActive: both, weighted by
    this round's shares; a cluster whose apiserver cannot be read keeps the addresses it last
    had (its weight says whether it is sent anything)."""
    if ctl.shares is None:
        return (ClusterTarget(cluster_of(spec, role), role, addresses, 100),)
    last = {c.role: c.addresses for c in (ctl.last_target.clusters if ctl.last_target else ())}
    targets = []
    for each in ROLES:
        if each == role:
            known = addresses
        elif seen.snapshots[each].ok:
            known = ready_addresses(ctl, spec, seen, each)
        else:
            known = last.get(each, ())
        share = ctl.shares[each]
        cluster = cluster_of(spec, each)
        targets.append(
            ClusterTarget(cluster, each, known, share.weight, share.state, share.message)
        )
    return tuple(targets)


def ready_addresses(
    ctl: DaemonState, spec: ModelDeploymentSpec, seen: Seen, role: Role
) -> tuple[str, ...]:
    key = (spec.member(role).namespace, ctl.name)
    addresses = entry_addresses(spec, seen.snapshots[role], key)
    if not spec.failover.probe.enabled:
        return addresses
    return ctl.ejections[role].usable(addresses, time.monotonic())


def server_urls(ctl: DaemonState, spec: ModelDeploymentSpec, seen: Seen, role: Role) -> list[str]:
    """Base URLs of the role's servers, where the client probe reaches them (its URL, or
    every ready entry address): what the model evaluation asks."""
    addresses = ready_addresses(ctl, spec, seen, role)
    probe = spec.failover.probe.model_copy(update={"sample_size": None})
    targets = clientprobe.plan_targets(probe, role, addresses, entry_port(spec), random.Random())
    return list(dict.fromkeys(targets.urls))


def entry_addresses(
    spec: ModelDeploymentSpec, snapshot: Snapshot, key: tuple[str, str]
) -> tuple[str, ...]:
    """Where clients reach the model in a member: its ready pods' addresses, or (traffic
    addresses nodePorts) the addresses of the nodes that run them, sorted."""
    if not spec.traffic.endpoint_slice.node_ports:
        return snapshot.ready_addresses.get(key, ())
    nodes = snapshot.ready_nodes.get(key, ())
    return tuple(
        sorted({snapshot.node_addresses[n] for n in nodes if n in snapshot.node_addresses})
    )


def entry_port(spec: ModelDeploymentSpec) -> int:
    settings = spec.traffic.endpoint_slice
    if settings.node_ports and settings.node_port is not None:
        return settings.node_port
    return spec.runtime.port


async def switch_traffic(
    ctl: DaemonState, body: kopf.Body, spec: ModelDeploymentSpec, seen: Seen, switch: Switch
) -> dict[str, Any] | None:
    from_cluster = cluster_of(spec, ctl.state.active)
    target = target_for(
        ctl,
        spec,
        seen,
        switch.to,
        ready_addresses(ctl, spec, seen, switch.to),
        switch.reason,
        extra={"previousCluster": from_cluster},
    )
    try:
        await send_traffic(ctl, spec, target)
    except TrafficError as exc:
        ctl.traffic_error = str(exc)
        ctl.traffic_conflict = isinstance(exc, TrafficConflict)
        post_event(body, "Warning", "SwitchFailed", f"switch to {target.active_cluster}: {exc}")
        return None
    switched = datetime.now(UTC)
    ctl.state.switched(switch.to)
    ctl.last_target, ctl.traffic_error = target, ""
    record = failover_record(switch, from_cluster, target.active_cluster, switched)
    if switch.failure_time and switch.detected_time:
        metrics.FAILOVER_SECONDS.observe((switched - switch.failure_time).total_seconds())
    metrics.FAILOVERS.labels(
        ctl.namespace, ctl.name, from_cluster, target.active_cluster, switch.trigger
    ).inc()
    kind = {"automatic": "FailedOver", "manual": "Switched", "failback": "FailedBack"}
    post_event(
        body,
        "Warning" if switch.trigger == "automatic" else "Normal",
        kind[switch.trigger],
        f"traffic switched from {from_cluster} to {target.active_cluster}: {switch.reason}",
    )
    return record


async def mirror_active(
    ctl: DaemonState, body: kopf.Body, spec: ModelDeploymentSpec, seen: Seen
) -> None:
    """Mirror the active cluster's ready pods; while it is unreachable keep what clients
    have (the failover replaces it) instead of publishing an empty set. The last target
    is written again every STATUS_REFRESH_S: a hand-deleted hub object comes back."""
    active = ctl.state.active
    reachable = seen.snapshots[active].ok
    if reachable:
        addresses = ready_addresses(ctl, spec, seen, active)
    else:
        addresses = ctl.last_target.addresses if ctl.last_target else ()
    target = target_for(ctl, spec, seen, active, addresses, "ready endpoints changed")
    # activeActive: a weight that moved is written even while the active cluster's apiserver
    # cannot be read (its addresses are the last known ones then).
    fresh = reachable or ctl.last_target is None or ctl.shares is not None
    changed = fresh and target != ctl.last_target
    due = time.monotonic() - ctl.last_traffic_write > STATUS_REFRESH_S
    if not changed and due and ctl.last_target is not None:
        target, changed = ctl.last_target, True
    if not changed:
        return
    try:
        await send_traffic(ctl, spec, target)
        ctl.last_target, ctl.traffic_error = target, ""
    except TrafficError as exc:
        if ctl.traffic_error != str(exc):
            post_event(body, "Warning", "TrafficUpdateFailed", str(exc))
        ctl.traffic_error = str(exc)
        ctl.traffic_conflict = isinstance(exc, TrafficConflict)


async def send_traffic(ctl: DaemonState, spec: ModelDeploymentSpec, target: TrafficTarget) -> None:
    provider = ctl.runtime.provider(spec.traffic.provider)
    hub = ctl.runtime.hub
    await asyncio.to_thread(ctl.writes.run, lambda: provider.apply(hub, ctl.owner, spec, target))
    ctl.last_traffic_write = time.monotonic()


async def settle_switch_request(
    ctl: DaemonState, spec: ModelDeploymentSpec, annotations: dict[str, str], decision: Decision
) -> None:
    """A satisfied switch request is removed so that it does not linger, and so is one that
    waited its whole bound for a target that never answered (decision.drop_request)."""
    if SWITCH_ANNOTATION not in annotations:
        return
    requested = role_of(spec, annotations.get(SWITCH_ANNOTATION))
    if decision.drop_request or (requested is not None and requested == ctl.state.active):
        await asyncio.to_thread(remove_switch_annotation, ctl)


def remove_switch_annotation(ctl: DaemonState) -> None:
    client.CustomObjectsApi(ctl.runtime.hub).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ctl.namespace,
        MODELDEPLOYMENTS,
        ctl.name,
        {"metadata": {"annotations": {SWITCH_ANNOTATION: None}}},
        _request_timeout=(2, 5),
    )


async def report(
    ctl: DaemonState,
    body: kopf.Body,
    spec: ModelDeploymentSpec,
    seen: Seen,
    decision: Decision,
    now: datetime,
    generation: int,
    status_raw: Any,
    last_failover: dict[str, Any] | None,
) -> None:
    """Status, the decision's Events and the per-model gauges."""
    observed = Observed(
        name=ctl.name,
        spec=spec,
        active=ctl.state.active,
        armed=ctl.state.armed,
        decision=decision,
        snapshots=seen.snapshots,
        health=seen.health,
        traffic_routed=ctl.last_target is not None,
        traffic_error=ctl.traffic_error,
        traffic_conflict=ctl.traffic_conflict,
        reconcile_errors=tuple(e for e in ctl.reconcile_error.values() if e),
        drill=ctl.runtime.drills.holder(ctl.namespace, ctl.name),
        wanted_replicas=dict(ctl.wanted_replicas),
    )
    built = build_status(observed, generation, last_failover, status_raw)
    report_evaluation(ctl, spec, built.status, built.changes)
    if spec.rollout is not None or ctl.rollout.status is not None:
        built.status["rollout"] = ctl.rollout.status
    built.status["traffic"] = traffic_status(spec, ctl.last_target)
    for event_type, reason, message in decision.events:
        post_event(body, event_type, reason, message)
    await write_status(ctl, body, built.status, built.changes, now, generation, status_raw)
    labels = ctl.labels()
    metrics.SERVING.labels(**labels).set(1 if built.serving else 0)
    metrics.FAILOVER_READY.labels(**labels).set(1 if built.can_fail_over else 0)
    metrics.zero_failovers(
        ctl.namespace, ctl.name, cluster_of(spec, "primary"), cluster_of(spec, "standby")
    )
    for role in ROLES:
        metrics.ACTIVE_CLUSTER.labels(ctl.namespace, ctl.name, cluster_of(spec, role)).set(
            1 if role == ctl.state.active else 0
        )


def traffic_status(spec: ModelDeploymentSpec, target: TrafficTarget | None) -> dict[str, Any]:
    """status.traffic: the mode and each cluster's weight and state as last applied."""
    clusters = [
        {
            "cluster": c.cluster,
            "role": c.role,
            "weight": c.weight,
            "state": c.state,
            "servers": len(c.addresses),
            **({"message": c.message} if c.message else {}),
        }
        for c in (target.clusters if target else ())
    ]
    return {"mode": spec.traffic.mode, "provider": spec.traffic.provider, "clusters": clusters}


async def write_status(
    ctl: DaemonState,
    body: kopf.Body,
    status: dict[str, Any],
    changes: list[ConditionChange],
    now: datetime,
    generation: int,
    status_raw: Any,
) -> None:
    """Merge the condition changes, post an Event per flipped condition, and write the
    status through the subresource when it differs from the last write (or is due)."""
    previous = list((status_raw or {}).get("conditions") or [])
    conditions, events = apply_conditions(previous, changes, now, generation)
    for event_type, reason, message in events:
        post_event(body, event_type, reason, message)
    status["conditions"] = conditions
    unchanged = comparable(status)
    due = time.monotonic() - ctl.last_status_write > STATUS_REFRESH_S
    if unchanged == ctl.last_status and not due:
        return
    patch = client.CustomObjectsApi(ctl.runtime.hub).patch_namespaced_custom_object_status
    try:
        written = await asyncio.to_thread(
            k8s.call,
            patch,
            GROUP,
            VERSION,
            ctl.namespace,
            MODELDEPLOYMENTS,
            ctl.name,
            {"status": status},
            _request_timeout=(2, 10),
            absent=k8s.LOST,
        )
    except client.ApiException as exc:
        log.warning(
            "%s/%s: status write failed: %s %s", ctl.namespace, ctl.name, exc.status, exc.reason
        )
        return
    if written is k8s.LOST:
        return  # deleted meanwhile
    ctl.last_status, ctl.last_status_write = unchanged, time.monotonic()
