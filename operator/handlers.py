"""kopf handlers for ModelDeployment.

One daemon per ModelDeployment owns everything about it: it renders the member objects and
repairs drift, checks the clusters' health, fails over and back, points traffic at the active
cluster and writes status. One writer per object means no races between handlers. The daemon
never blocks the event loop: member and hub calls (member Secret lookups included) run in
worker threads, and it reads member state from the shared per-cluster snapshots
(operator.monitor) instead of calling the members itself. The pollers wake the daemon when its
model's snapshot changes (reachability, ready endpoints), the `_nudge` handler when the object
changes. The deletion handler and the daemon's writes never overlap (`Writes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import kopf
from kubernetes import client, config
from pydantic import ValidationError

from modeldr.operator import apply, metrics, promql, render
from modeldr.operator import config as operator_config
from modeldr.operator.failover import Decision, FailoverState, Health, Role, other, replicas_for
from modeldr.operator.health import cluster_health
from modeldr.operator.members import MemberError, MemberRegistry
from modeldr.operator.monitor import Key, Monitors, Snapshot, Wake
from modeldr.operator.spec import ModelDeploymentSpec
from modeldr.operator.status import (
    cluster_status,
    failover_ready,
    iso,
    set_condition,
    without_times,
)
from modeldr.operator.traffic import provider_for
from modeldr.operator.traffic.base import Owner, TrafficError, TrafficProvider, TrafficTarget

GROUP, VERSION, PLURAL = "modeldr.io", "v1alpha1", "modeldeployments"
SWITCH_ANNOTATION = "modeldr.io/switch-to"
# "true": the operator leaves the ModelDeployment alone (no reconcile, no health checks, no
# failover, no status writes) until the annotation is removed. Deletion still cleans up.
PAUSED_ANNOTATION = "modeldr.io/paused"
# Status is rewritten at least this often even when only check times moved.
STATUS_REFRESH_S = 30.0
LAST_FAILOVER_KEYS = (
    "from", "to", "reason", "automatic", "failureTime", "detectedTime", "switchedTime",
    "detectionSeconds", "switchSeconds", "totalSeconds",
)  # fmt: skip
# Conditions whose True is the abnormal state (an Event of type Warning when they turn True).
NEGATIVE_CONDITIONS = ("Degraded", "FailedOver", "SwitchPending")

ROLES: tuple[Role, Role] = ("primary", "standby")

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    hub: client.ApiClient
    members: MemberRegistry
    monitors: Monitors


_runtime: Runtime | None = None


def _hub_configuration() -> client.Configuration:
    """The default client configuration (`modeldr operator` sets it from --kubeconfig), or,
    under a bare `kopf run`, in-cluster credentials or $KUBECONFIG."""
    cfg = client.Configuration.get_default_copy()
    if cfg.host and "localhost" not in cfg.host:
        return cfg
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)
    return cfg


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        settings = operator_config.current()
        hub = client.ApiClient(_hub_configuration())
        members = MemberRegistry(hub, settings)
        _runtime = Runtime(hub, members, Monitors(members))
    return _runtime


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # One thread per blocking call in flight; daemons hold none while they sleep.
    settings.execution.max_workers = max(settings.execution.max_workers or 0, 32)
    runtime()


@kopf.on.cleanup()
def _cleanup(**_: Any) -> None:
    if _runtime is not None:
        _runtime.monitors.stop()


def _wake_event(memo: kopf.Memo) -> asyncio.Event:
    event = memo.get("wake")
    if not isinstance(event, asyncio.Event):
        event = memo["wake"] = asyncio.Event()
    return event


@kopf.on.event(GROUP, VERSION, PLURAL)
async def _nudge(memo: kopf.Memo, **_: Any) -> None:
    """Any change of the object (spec, annotations) gets a tick at once. Async: it runs on
    the event loop, where the daemon waits on the (not thread-safe) asyncio.Event."""
    _wake_event(memo).set()


class Closing(Exception):
    """The ModelDeployment is being deleted: no more writes to members or traffic."""


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


def _writes(memo: kopf.Memo) -> Writes:
    writes = memo.setdefault("writes", Writes())
    assert isinstance(writes, Writes)
    return writes


@dataclass
class Controller:
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
    reconcile_error: dict[str, str] = field(default_factory=dict)
    member_errors: dict[str, str] = field(default_factory=dict)
    last_traffic_write: float = 0.0
    # Thread-safe wake-up of this daemon, and what it is registered for: (cluster, key).
    wake: Wake | None = None
    watching: set[tuple[str, Key]] = field(default_factory=set)
    # Member clusters of the spec, and clusters it named before (their objects go).
    clusters: set[str] = field(default_factory=set)
    former: set[str] = field(default_factory=set)

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.name, self.uid)

    def labels(self) -> dict[str, str]:
        return {"namespace": self.namespace, "modeldeployment": self.name}


def _cluster_of(spec: ModelDeploymentSpec, role: Role) -> str:
    return spec.member(role).cluster


def _who(role: Role, cluster: str) -> str:
    return cluster if cluster == role else f"{role} cluster {cluster}"


def _role_of(spec: ModelDeploymentSpec, value: str | None) -> Role | None:
    if value in ("primary", spec.clusters.primary.cluster):
        return "primary"
    if value in ("standby", spec.clusters.standby.cluster):
        return "standby"
    return None


async def _reconcile_member(
    ctl: Controller,
    spec: ModelDeploymentSpec,
    role: Role,
    snapshot: Snapshot,
    replicas: int,
    annotations: dict[str, str],
) -> str:
    """Apply what drifted in one member; returns an error message or ''."""
    rt = runtime()
    cluster = _cluster_of(spec, role)
    if not snapshot.ok:
        return ""  # unreachable: the health check says so; retried next tick
    member = spec.member(role)
    desired = render.member_objects(ctl.name, ctl.namespace, spec, role, replicas, annotations)
    observed = {
        "Deployment": snapshot.deployments,
        "Service": snapshot.services,
        "PodDisruptionBudget": snapshot.pdbs,
    }
    drifted = []
    for obj in desired:
        actual = observed[obj["kind"]].get((member.namespace, ctl.name))
        if actual is None or not render.is_subset(
            {"metadata": {"labels": obj["metadata"]["labels"]}, "spec": obj["spec"]}, actual
        ):
            drifted.append(obj)
    if not drifted:
        return ""
    known = ctl.known.setdefault(cluster, set())
    known &= {k for k, objs in observed.items() if (member.namespace, ctl.name) in objs}
    started = time.monotonic()
    try:
        written = await asyncio.to_thread(
            ctl.writes.run,
            functools.partial(_apply_member, cluster, drifted, ctl.name, ctl.namespace, set(known)),
        )
    except Closing:
        raise
    except (apply.ConflictError, MemberError) as exc:
        reason = "conflict" if isinstance(exc, apply.ConflictError) else "member"
        metrics.RECONCILE_ERRORS.labels(ctl.namespace, ctl.name, cluster, reason).inc()
        metrics.RECONCILES.labels(ctl.namespace, ctl.name, "error").inc()
        return str(exc)
    except client.ApiException as exc:
        metrics.RECONCILE_ERRORS.labels(ctl.namespace, ctl.name, cluster, str(exc.status)).inc()
        metrics.RECONCILES.labels(ctl.namespace, ctl.name, "error").inc()
        body = (exc.body or "")[:300] if isinstance(exc.body, str) else ""
        return f"applying to {cluster} failed: {exc.status} {exc.reason} {body}".strip()
    except Exception as exc:
        metrics.RECONCILE_ERRORS.labels(ctl.namespace, ctl.name, cluster, "unreachable").inc()
        metrics.RECONCILES.labels(ctl.namespace, ctl.name, "error").inc()
        return f"applying to {cluster} failed: {type(exc).__name__}: {exc}"[:500]
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    metrics.RECONCILES.labels(ctl.namespace, ctl.name, "applied").inc()
    known.update(written)
    missing = [
        o["kind"] for o in drifted if (member.namespace, ctl.name) not in observed[o["kind"]]
    ]
    what = ", ".join(f"{o['kind']}" for o in drifted)
    log.info(
        "%s/%s: applied %s to %s (%s)",
        ctl.namespace, ctl.name, what, cluster,
        "created" if missing else "differed from the spec",
    )  # fmt: skip
    rt.monitors.get(cluster).wake()
    return ""


def _apply_member(
    cluster: str, objects: list[dict[str, Any]], name: str, hub_namespace: str, known: set[str]
) -> list[str]:
    """Blocking: the member's client (may re-read the hub Secrets) and the writes."""
    api = runtime().members.get(cluster).api
    return apply.apply_objects(api, objects, name, hub_namespace, known=known)


def _delete_member_objects(cluster: str, namespace: str, name: str, hub_namespace: str) -> int:
    """Blocking: delete this ModelDeployment's objects in one member namespace."""
    return apply.delete_objects(runtime().members.get(cluster).api, namespace, name, hub_namespace)


async def _remove_stale(ctl: Controller, spec: ModelDeploymentSpec, body: kopf.Body) -> None:
    """Remove this ModelDeployment's member objects outside the spec's placement: left behind
    when `clusters.<role>.namespace` or `.cluster` changed. Only objects with its owner labels
    (managed by modeldr, this name and hub namespace), found in the snapshots of the spec's
    clusters and of the clusters it named before; the caller runs it only while both clusters
    pass their checks, so nothing is removed while the new placement is not serving."""
    rt = runtime()
    desired = {spec.member(role).cluster: spec.member(role).namespace for role in ROLES}
    for cluster in sorted(set(desired) | ctl.former):
        snapshot = rt.monitors.get(cluster).snapshot
        if not snapshot.ok:
            continue  # retried next tick
        stale = snapshot.owned_namespaces(ctl.name, ctl.namespace) - {desired.get(cluster, "")}
        if not stale and cluster not in desired:
            ctl.former.discard(cluster)
        for namespace in sorted(stale):
            try:
                deleted = await asyncio.to_thread(
                    ctl.writes.run,
                    functools.partial(
                        _delete_member_objects, cluster, namespace, ctl.name, ctl.namespace
                    ),
                )
            except Closing:
                raise
            except Exception as exc:  # retried next tick
                log.warning("%s/%s: removing old objects in %s namespace %s failed: %s",
                            ctl.namespace, ctl.name, cluster, namespace, exc)  # fmt: skip
                continue
            rt.monitors.get(cluster).wake()
            if deleted:
                message = (
                    f"removed {deleted} objects from {cluster} namespace {namespace}: no longer "
                    "where the spec places this model"
                )
                log.info("%s/%s: %s", ctl.namespace, ctl.name, message)
                _post_event(body, "Normal", "StaleObjectsRemoved", message)


def _watch(ctl: Controller, spec: ModelDeploymentSpec) -> None:
    """Register the daemon's wake-up with the pollers of the spec's clusters."""
    if ctl.wake is None:
        return
    monitors = runtime().monitors
    wanted = {
        (spec.member(role).cluster, (spec.member(role).namespace, ctl.name)) for role in ROLES
    }
    for cluster, key in ctl.watching - wanted:
        monitors.unwatch(cluster, key, ctl.wake)
    for cluster, key in wanted - ctl.watching:
        monitors.get(cluster).watch(key, ctl.wake)
    ctl.watching = wanted


def _status_clusters(status: Any) -> set[str]:
    """The member clusters a status names (where the model was last placed)."""
    clusters = set()
    for role in ROLES:
        cluster = ((status or {}).get(role) or {}).get("cluster")
        if cluster:
            clusters.add(str(cluster))
    return clusters


def _ending(meta: Any, stopped: kopf.DaemonStopped) -> bool:
    """Deleted (or the daemon is stopping): no more writes to members or traffic."""
    return bool(stopped) or bool(meta.get("deletionTimestamp"))


_providers: dict[str, TrafficProvider] = {}


def _provider(name: str) -> TrafficProvider:
    # One instance per provider: the webhook remembers what it delivered.
    if name not in _providers:
        _providers[name] = provider_for(name)
    return _providers[name]


async def _switch_traffic(
    ctl: Controller, spec: ModelDeploymentSpec, target: TrafficTarget
) -> None:
    provider = _provider(spec.traffic.provider)
    call = functools.partial(provider.apply, runtime().hub, ctl.owner, spec, target)
    await asyncio.to_thread(ctl.writes.run, call)
    ctl.last_traffic_write = time.monotonic()


def _post_event(body: kopf.Body, type_: str, reason: str, message: str) -> None:
    try:
        kopf.event(body, type=type_, reason=reason, message=message[:1000])
    except Exception:  # an Event is best-effort; status carries the facts
        log.debug("event %s not posted", reason, exc_info=True)


async def _tick(
    ctl: Controller,
    body: kopf.Body,
    spec_raw: Any,
    meta: Any,
    status_raw: Any,
    stopped: kopf.DaemonStopped,
) -> float:
    """One round; returns seconds until the next."""
    rt = runtime()
    now = datetime.now(UTC)
    generation = int(meta.get("generation") or 0)
    annotations = dict(meta.get("annotations") or {})
    try:
        spec = ModelDeploymentSpec.parse(spec_raw)
        render.model_volume(spec)  # fails early on an unsupported source
        render.pod_template_annotations(spec, annotations)
    except (ValidationError, render.RenderError) as exc:
        await _write_status(
            ctl, body, {"phase": "Failed", "observedGeneration": generation},
            [("Reconciled", False, "InvalidSpec", str(exc)[:2000])], now, generation,
            status_raw,
        )  # fmt: skip
        return 30.0

    roles = ROLES
    monitors = {role: rt.monitors.get(_cluster_of(spec, role)) for role in roles}
    clusters = {_cluster_of(spec, role) for role in roles}
    if not ctl.clusters:
        # Clusters the last status names that the spec does not (changed while no daemon ran).
        ctl.former |= _status_clusters(status_raw) - clusters
    elif clusters != ctl.clusters:
        ctl.former |= ctl.clusters - clusters
    ctl.former -= clusters
    ctl.clusters = clusters
    for gone in set(ctl.reconcile_error) - clusters:  # a cluster the spec no longer names
        del ctl.reconcile_error[gone]
    _watch(ctl, spec)
    if not ctl.restored:
        # Resume where the last operator left off: the active cluster is in the status.
        restored = _role_of(spec, (status_raw or {}).get("activeCluster"))
        ctl.state.active = restored or "primary"
        # It served before this operator started: a failure now is a failure to act on.
        ctl.state.armed = (status_raw or {}).get("phase") not in (None, "Pending", "Progressing")
        for monitor in monitors.values():
            await asyncio.to_thread(monitor.wait_first, 3.0)
    snapshots = {role: monitors[role].snapshot for role in roles}
    for role in roles:
        # A member that cannot be reached (or read: no Secret, bad kubeconfig) gets an Event
        # when that starts and when it ends, from the first check on.
        error = snapshots[role].error or ""
        cluster = _cluster_of(spec, role)
        if error != ctl.member_errors.get(cluster, ""):
            if error:
                _post_event(body, "Warning", "MemberUnavailable", f"{_who(role, cluster)}: {error}")
            elif cluster in ctl.member_errors:
                _post_event(
                    body, "Normal", "MemberAvailable", f"{_who(role, cluster)} answers again"
                )
            ctl.member_errors[cluster] = error
    health: dict[Role, Health] = {
        role: cluster_health(snapshots[role], spec.member(role).namespace, ctl.name)
        for role in roles
    }
    if spec.failover.health_query:
        checked = await asyncio.gather(*(_with_query(spec, role, health[role]) for role in roles))
        health = dict(zip(roles, checked, strict=True))
    requested = _role_of(spec, annotations.get(SWITCH_ANNOTATION))
    decision = ctl.state.observe(spec, now, health, requested)
    for role in roles:
        metrics.HEALTH_CHECKS.labels(
            ctl.namespace, ctl.name, _cluster_of(spec, role),
            "ok" if health[role].healthy else "failed",
        ).inc()  # fmt: skip

    if _ending(meta, stopped):
        return 1.0  # the deletion handler cleans up; kopf stops this daemon
    # Member objects, sized for the decision (a failover scales the standby up first).
    for role in roles:
        error = await _reconcile_member(
            ctl, spec, role, snapshots[role],
            replicas_for(spec, role, decision.full_size), annotations,
        )  # fmt: skip
        cluster = _cluster_of(spec, role)
        if error and ctl.reconcile_error.get(cluster) != error:
            _post_event(body, "Warning", "ReconcileFailed", error)
        ctl.reconcile_error[cluster] = error
    if all(h.healthy for h in health.values()) and not any(ctl.reconcile_error.values()):
        await _remove_stale(ctl, spec, body)

    if _ending(meta, stopped):
        return 1.0
    # Traffic.
    provider_ok = spec.traffic.provider in operator_config.current().traffic_providers
    last_failover: dict[str, Any] | None = None
    if not provider_ok:
        ctl.traffic_error = (
            f"traffic provider {spec.traffic.provider} is not enabled in this operator "
            "(helm value rbac.trafficProviders)"
        )
    elif decision.switch is not None:
        switch = decision.switch
        to_snapshot = snapshots[switch.to]
        target = TrafficTarget(
            active_cluster=_cluster_of(spec, switch.to),
            primary_cluster=spec.clusters.primary.cluster,
            standby_cluster=spec.clusters.standby.cluster,
            addresses=to_snapshot.ready_addresses.get(
                (spec.member(switch.to).namespace, ctl.name), ()
            ),
            port=spec.runtime.port,
            reason=switch.reason,
            extra={"previousCluster": _cluster_of(spec, ctl.state.active)},
        )
        try:
            await _switch_traffic(ctl, spec, target)
        except TrafficError as exc:
            ctl.traffic_error = str(exc)
            _post_event(
                body, "Warning", "SwitchFailed", f"switch to {target.active_cluster}: {exc}"
            )
        else:
            switched = datetime.now(UTC)
            from_cluster = _cluster_of(spec, ctl.state.active)
            ctl.state.switched(switch.to)
            ctl.last_target, ctl.traffic_error = target, ""
            last_failover = {
                "from": from_cluster,
                "to": target.active_cluster,
                "reason": switch.reason[:1024],
                "automatic": switch.trigger != "manual",
                "switchedTime": iso(switched, precise=True),
            }
            if switch.failure_time and switch.detected_time:
                detection = (switch.detected_time - switch.failure_time).total_seconds()
                total = (switched - switch.failure_time).total_seconds()
                last_failover |= {
                    "failureTime": iso(switch.failure_time, precise=True),
                    "detectedTime": iso(switch.detected_time, precise=True),
                    "detectionSeconds": round(detection, 3),
                    "switchSeconds": round((switched - switch.detected_time).total_seconds(), 3),
                    "totalSeconds": round(total, 3),
                }
                metrics.FAILOVER_SECONDS.observe(total)
            metrics.FAILOVERS.labels(
                ctl.namespace, ctl.name, from_cluster, target.active_cluster, switch.trigger
            ).inc()
            kind = {"automatic": "FailedOver", "manual": "Switched", "failback": "FailedBack"}
            _post_event(
                body, "Warning" if switch.trigger == "automatic" else "Normal",
                kind[switch.trigger],
                f"traffic switched from {from_cluster} to {target.active_cluster}: {switch.reason}",
            )  # fmt: skip
    else:
        active = ctl.state.active
        snapshot = snapshots[active]
        addresses = snapshot.ready_addresses.get((spec.member(active).namespace, ctl.name), ())
        target = TrafficTarget(
            active_cluster=_cluster_of(spec, active),
            primary_cluster=spec.clusters.primary.cluster,
            standby_cluster=spec.clusters.standby.cluster,
            addresses=addresses
            if snapshot.ok
            else (ctl.last_target.addresses if ctl.last_target else ()),
            port=spec.runtime.port,
            reason="ready endpoints changed",
        )
        # Mirror the active cluster's ready pods; while it is unreachable keep what clients
        # have (the failover replaces it) instead of publishing an empty set. The last target
        # is written again every STATUS_REFRESH_S: a hand-deleted hub object comes back.
        changed = (snapshot.ok or ctl.last_target is None) and target != ctl.last_target
        due = time.monotonic() - ctl.last_traffic_write > STATUS_REFRESH_S
        if not changed and due and ctl.last_target is not None:
            target, changed = ctl.last_target, True
        if changed:
            try:
                await _switch_traffic(ctl, spec, target)
                ctl.last_target, ctl.traffic_error = target, ""
            except TrafficError as exc:
                if ctl.traffic_error != str(exc):
                    _post_event(body, "Warning", "TrafficUpdateFailed", str(exc))
                ctl.traffic_error = str(exc)

    # A satisfied switch request is removed so that it does not linger.
    if requested is not None and requested == ctl.state.active and SWITCH_ANNOTATION in annotations:
        await asyncio.to_thread(_remove_switch_annotation, ctl)

    ctl.restored = True
    await _update_status(ctl, body, spec, decision, snapshots, health, now, generation,
                         status_raw, last_failover)  # fmt: skip
    interval = ctl.state.next_interval(spec)
    return min(interval, 1.0) if decision.failing_over or decision.waiting else interval


async def _with_query(spec: ModelDeploymentSpec, role: Role, health: Health) -> Health:
    """Add the PromQL part to a passing check (a failing one needs no query)."""
    if not health.healthy or not spec.failover.health_query:
        return health
    cluster = _cluster_of(spec, role)
    url = await asyncio.to_thread(_prometheus_url, cluster)
    if not url:
        return Health(True, f"{health.reason}; health query skipped: no prometheus-url for "
                      f"{cluster}", health.ready_replicas)  # fmt: skip
    expression = promql.render_query(
        spec.failover.health_query, cluster, spec.member(role).namespace
    )
    result = await asyncio.to_thread(promql.evaluate, url, expression)
    if result.passed is False:
        return Health(False, result.message, health.ready_replicas)
    return Health(True, f"{health.reason}; {result.message}", health.ready_replicas)


def _prometheus_url(cluster: str) -> str | None:
    """Blocking: the member Secret's prometheus-url (None when the member is unusable)."""
    try:
        return runtime().members.get(cluster).prometheus_url
    except MemberError:
        return None


def _remove_switch_annotation(ctl: Controller) -> None:
    client.CustomObjectsApi(runtime().hub).patch_namespaced_custom_object(
        GROUP, VERSION, ctl.namespace, PLURAL, ctl.name,
        {"metadata": {"annotations": {SWITCH_ANNOTATION: None}}},
        _request_timeout=(2, 5),
    )  # fmt: skip


async def _update_status(
    ctl: Controller,
    body: kopf.Body,
    spec: ModelDeploymentSpec,
    decision: Decision,
    snapshots: dict[Role, Snapshot],
    health: dict[Role, Health],
    now: datetime,
    generation: int,
    status_raw: Any,
    last_failover: dict[str, Any] | None,
) -> None:
    active: Role = ctl.state.active
    standby = other(active)
    product = spec.resources.gpu_product
    per_cluster = {
        role: cluster_status(
            _cluster_of(spec, role),
            snapshots[role],
            health[role],
            spec.member(role).namespace,
            ctl.name,
            replicas_for(spec, role, decision.full_size),
            product,
        )
        for role in ("primary", "standby")
    }
    if standby == "standby":
        mode = spec.clusters.standby.mode
        missing = spec.replicas - spec.standby_replicas()
    else:
        mode, missing = "hot", 0  # the primary always runs full size
    can_fail_over, why = failover_ready(
        mode, health[standby], snapshots[standby], missing, spec.resources.gpus_per_replica, product
    )
    serving = health[active].healthy and ctl.last_target is not None and not ctl.traffic_error
    active_ready = per_cluster[active]["readyReplicas"]
    reconcile_errors = [e for e in ctl.reconcile_error.values() if e]
    degraded_reasons = []
    if not can_fail_over:
        degraded_reasons.append(why)
    if serving and active_ready < spec.replicas:
        degraded_reasons.append(
            f"{active_ready}/{spec.replicas} replicas ready in {_cluster_of(spec, active)}"
        )
    degraded_reasons += reconcile_errors
    if decision.failing_back:
        phase = "FailingBack"
    elif decision.failing_over:
        phase = "FailingOver"
    elif serving:
        phase = "Degraded" if degraded_reasons else "Ready"
    elif not ctl.state.armed:
        phase = "Progressing" if snapshots[active].deployments else "Pending"
    else:
        phase = "Failed"

    conditions: list[dict[str, Any]] = list((status_raw or {}).get("conditions") or [])
    changes: list[tuple[str, bool, str, str]] = [
        ("Ready", serving, "Serving" if serving else "NotServing",
         f"{_cluster_of(spec, active)}: {health[active].reason}"
         + (f"; traffic: {ctl.traffic_error}" if ctl.traffic_error else "")),
        ("PrimaryReady", health["primary"].healthy, "Healthy" if health["primary"].healthy
         else "Unhealthy", health["primary"].reason),
        ("StandbyReady", health["standby"].healthy, "Healthy" if health["standby"].healthy
         else "Unhealthy", health["standby"].reason),
        ("FailoverReady", can_fail_over, "StandbyCanTakeOver" if can_fail_over
         else "StandbyCannotTakeOver", why),
        ("FailedOver", active != "primary", "ActiveIsStandby" if active != "primary"
         else "ActiveIsPrimary", f"traffic goes to {_cluster_of(spec, active)}"),
        ("Degraded", bool(degraded_reasons), "Degraded" if degraded_reasons else "AsDesired",
         "; ".join(degraded_reasons)[:2000] or "all replicas ready, standby as its mode asks"),
        ("Reconciled", not reconcile_errors, "Applied" if not reconcile_errors
         else "ApplyFailed", "; ".join(reconcile_errors)[:2000] or "member objects match the spec"),
    ]  # fmt: skip
    if decision.waiting:
        changes.append(("SwitchPending", True, "Waiting", decision.waiting))
    else:
        changes.append(("SwitchPending", False, "NoSwitchPending", "no switch is waiting"))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "activeCluster": _cluster_of(spec, active),
        "primary": per_cluster["primary"],
        "standby": per_cluster["standby"],
    }
    if last_failover is not None:
        # A merge patch keeps keys it does not mention: null the previous failover's timings.
        status["lastFailover"] = {key: None for key in LAST_FAILOVER_KEYS} | last_failover
    elif (status_raw or {}).get("lastFailover"):
        status["lastFailover"] = dict(status_raw["lastFailover"])
    for event_type, reason, message in decision.events:
        _post_event(body, event_type, reason, message)
    await _write_status(ctl, body, status, changes, now, generation, status_raw, conditions)

    labels = ctl.labels()
    metrics.SERVING.labels(**labels).set(1 if serving else 0)
    metrics.FAILOVER_READY.labels(**labels).set(1 if can_fail_over else 0)
    for role in ("primary", "standby"):
        metrics.ACTIVE_CLUSTER.labels(ctl.namespace, ctl.name, _cluster_of(spec, role)).set(
            1 if role == active else 0
        )


async def _write_status(
    ctl: Controller,
    body: kopf.Body,
    status: dict[str, Any],
    changes: list[tuple[str, bool, str, str]],
    now: datetime,
    generation: int,
    status_raw: Any,
    conditions: list[dict[str, Any]] | None = None,
) -> None:
    conditions = list(
        conditions if conditions is not None else (status_raw or {}).get("conditions") or []
    )
    for type_, value, reason, message in changes:
        conditions, flipped = set_condition(
            conditions, type_, value, reason, message, now, generation
        )
        if flipped:
            bad = value if type_ in NEGATIVE_CONDITIONS else not value
            _post_event(body, "Warning" if bad else "Normal", f"{type_}{value}", message)
    status["conditions"] = conditions
    comparable = without_times(status)
    comparable["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions
    ]
    due = time.monotonic() - ctl.last_status_write > STATUS_REFRESH_S
    if comparable == ctl.last_status and not due:
        return
    try:
        await asyncio.to_thread(
            client.CustomObjectsApi(runtime().hub).patch_namespaced_custom_object_status,
            GROUP, VERSION, ctl.namespace, PLURAL, ctl.name, {"status": status},
            _request_timeout=(2, 10),
        )  # fmt: skip
    except client.ApiException as exc:
        if exc.status != 404:  # deleted meanwhile
            log.warning(
                "%s/%s: status write failed: %s %s", ctl.namespace, ctl.name, exc.status, exc.reason
            )
        return
    ctl.last_status, ctl.last_status_write = comparable, time.monotonic()


def _not_paused(annotations: kopf.Annotations, **_: Any) -> bool:
    return annotations.get(PAUSED_ANNOTATION, "").lower() != "true"


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0, when=_not_paused)
async def modeldeployment_daemon(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    uid: str,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    assert namespace is not None  # ModelDeployment is namespaced
    ctl = Controller(namespace, name, uid, writes=_writes(memo))
    wake = _wake_event(memo)
    loop = asyncio.get_running_loop()

    def wake_soon() -> None:  # called from the pollers' threads
        with contextlib.suppress(RuntimeError):  # the loop is closed: the operator stops
            loop.call_soon_threadsafe(wake.set)

    ctl.wake = wake_soon
    try:
        while not stopped:
            wake.clear()
            try:
                delay = await _tick(ctl, body, spec, meta, status, stopped)
            except Closing:
                return  # deleted: the deletion handler has taken over
            except Exception:
                log.exception("%s/%s: tick failed; retrying", namespace, name)
                delay = 5.0
            await _sleep(delay, wake, stopped)
    finally:
        for cluster, key in ctl.watching:
            runtime().monitors.unwatch(cluster, key, wake_soon)


async def _sleep(delay: float, wake: asyncio.Event, stopped: kopf.DaemonStopped) -> None:
    """Until the next tick, a change of the object, or kopf stopping the daemon (deletion,
    shutdown): stopping promptly lets the deletion handler run without waiting out a tick."""

    async def until_stopped() -> None:
        await stopped.wait()

    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@kopf.on.delete(GROUP, VERSION, PLURAL)
def modeldeployment_deleted(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Remove the member objects (retrying while a member is unreachable: nothing leaks).

    First waits for a daemon write in flight and stops further ones (`Writes`). Deletes in
    the spec's namespace of each spec cluster and in every other namespace where the
    cluster's snapshot shows objects with this ModelDeployment's owner labels; a cluster the
    last status names but the spec no longer does is cleaned the same way, best-effort.
    """
    assert namespace is not None
    _writes(memo).close()
    rt = runtime()
    parsed = ModelDeploymentSpec.parse(spec)
    placement = {parsed.member(role).cluster: parsed.member(role).namespace for role in ROLES}
    former = _status_clusters(status) - set(placement)
    for cluster in [*placement, *sorted(former)]:
        monitor = rt.monitors.get(cluster)
        monitor.wait_first(3.0)
        snapshot = monitor.snapshot
        if cluster not in placement and not snapshot.ok:
            logger.warning("%s (named by the last status, no longer by the spec) cannot be "
                           "read: %s; objects left there are not removed", cluster,
                           snapshot.error)  # fmt: skip
            continue
        namespaces = {placement[cluster]} if cluster in placement else set()
        if snapshot.ok:
            namespaces |= snapshot.owned_namespaces(name, namespace)
        try:
            deleted = sum(
                _delete_member_objects(cluster, member_ns, name, namespace)
                for member_ns in sorted(namespaces)
            )
        except Exception as exc:
            if isinstance(exc, client.ApiException):
                why = f"cleanup in {cluster} failed: {exc.status} {exc.reason}"
            elif isinstance(exc, MemberError):
                why = str(exc)
            else:
                why = f"cleanup in {cluster} failed (unreachable?): {type(exc).__name__}"
            if cluster not in placement:
                logger.warning("%s; not retried: the spec no longer uses %s", why, cluster)
                continue
            raise kopf.TemporaryError(f"{why}; will retry", delay=10) from None
        logger.info("deleted %d objects of %s/%s in %s", deleted, namespace, name, cluster)
        monitor.wake()
    try:
        _provider(parsed.traffic.provider).cleanup(rt.hub, Owner(namespace, name, uid), parsed)
    except TrafficError as exc:
        raise kopf.TemporaryError(f"traffic cleanup: {exc}", delay=10) from None
    metrics.forget(namespace, name)
