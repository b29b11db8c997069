"""Member writes of one ModelDeployment: apply what drifted, remove what a placement change
left behind, delete everything on deletion. Blocking calls run in worker threads inside the
object's write guard (`Writes`), so they never overlap the deletion handler's cleanup."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import kopf
from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import ROLES, Role
from modeldr.kube.errors import Closing, ConflictError, MemberError
from modeldr.kube.events import post_event
from modeldr.operator import apply, metrics, render
from modeldr.operator.daemonstate import DaemonState
from modeldr.operator.monitor import Snapshot
from modeldr.operator.runtime import Runtime

log = logging.getLogger(__name__)
# The kinds of a member, as the snapshot holds them.
OBSERVED_KINDS = ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")


def drifted_objects(
    desired: list[dict[str, Any]], snapshot: Snapshot, namespace: str, name: str
) -> list[dict[str, Any]]:
    """The desired objects that are missing from the member or differ from the spec."""
    observed = observed_objects(snapshot)
    drifted = []
    for obj in desired:
        actual = observed[obj["kind"]].get((namespace, name))
        if actual is None or not render.is_subset(
            {"metadata": {"labels": obj["metadata"]["labels"]}, "spec": obj["spec"]}, actual
        ):
            drifted.append(obj)
    return drifted


def observed_objects(snapshot: Snapshot) -> dict[str, dict[Any, dict[str, Any]]]:
    return dict(
        zip(
            OBSERVED_KINDS,
            (snapshot.deployments, snapshot.services, snapshot.pdbs, snapshot.hpas),
            strict=True,
        )
    )


async def reconcile_member(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    role: Role,
    snapshot: Snapshot,
    replicas: int,
    annotations: dict[str, str],
) -> str:
    """Apply what drifted in one member; returns an error message or ''."""
    cluster = spec.member(role).cluster
    if not snapshot.ok:
        return ""  # unreachable: the health check says so; retried next tick
    namespace = spec.member(role).namespace
    desired = render.member_objects(ctl.name, ctl.namespace, spec, role, replicas, annotations)
    drifted = drifted_objects(desired, snapshot, namespace, ctl.name)
    error = await apply_drifted(ctl, cluster, namespace, drifted, snapshot) if drifted else ""
    if not error and spec.autoscaling is not None:
        error = await scale_now(ctl, cluster, namespace, snapshot, replicas)
    if not error and spec.autoscaling is None and (namespace, ctl.name) in snapshot.hpas:
        # spec.autoscaling removed: the HPA goes, or it would fight the fixed replicas.
        api = ctl.runtime.members.get(cluster).api
        remove = functools.partial(apply.delete_hpa, api, namespace, ctl.name, ctl.namespace)
        try:
            await asyncio.to_thread(ctl.writes.run, remove)
        except Closing:
            raise
        except Exception as exc:
            error = _apply_failure(exc, cluster)[1]
    return error


async def scale_now(
    ctl: DaemonState, cluster: str, namespace: str, snapshot: Snapshot, floor: int
) -> str:
    """A Deployment below its HPA's floor (a cluster that took over its failed peer's
    load) is scaled at once, not at the autoscaler's next sync; an error message or ''."""
    deployment = snapshot.deployments.get((namespace, ctl.name))
    if deployment is None or int(deployment["spec"].get("replicas") or 0) >= floor:
        return ""
    rt = ctl.runtime
    write = functools.partial(
        apply.scale_up_to, rt.members.get(cluster).api, namespace, ctl.name, floor
    )
    try:
        if await asyncio.to_thread(ctl.writes.run, write):
            log.info("%s/%s: scaled %s up to %d now", ctl.namespace, ctl.name, cluster, floor)
            rt.monitors.get(cluster).wake()
    except Closing:
        raise
    except Exception as exc:
        return _apply_failure(exc, cluster)[1]
    return ""


async def apply_drifted(
    ctl: DaemonState,
    cluster: str,
    namespace: str,
    drifted: list[dict[str, Any]],
    snapshot: Snapshot,
) -> str:
    """Apply the drifted objects; an error message or ''."""
    observed = observed_objects(snapshot)
    known = ctl.known.setdefault(cluster, set())
    known &= {k for k, objs in observed.items() if (namespace, ctl.name) in objs}
    started = time.monotonic()
    write = functools.partial(
        apply_member, ctl.runtime, cluster, drifted, ctl.name, ctl.namespace, set(known)
    )
    try:
        written = await asyncio.to_thread(ctl.writes.run, write)
    except Closing:
        raise
    except Exception as exc:
        reason, message = _apply_failure(exc, cluster)
        metrics.RECONCILE_ERRORS.labels(ctl.namespace, ctl.name, cluster, reason).inc()
        metrics.RECONCILES.labels(ctl.namespace, ctl.name, "error").inc()
        return message
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    metrics.RECONCILES.labels(ctl.namespace, ctl.name, "applied").inc()
    known.update(written)
    created = any((namespace, ctl.name) not in observed[o["kind"]] for o in drifted)
    log.info(
        "%s/%s: applied %s to %s (%s)",
        ctl.namespace,
        ctl.name,
        ", ".join(o["kind"] for o in drifted),
        cluster,
        "created" if created else "differed from the spec",
    )
    ctl.runtime.monitors.get(cluster).wake()
    return ""


def _apply_failure(exc: Exception, cluster: str) -> tuple[str, str]:
    """(metric reason, message) for a failed member write."""
    if isinstance(exc, ConflictError | MemberError):
        return ("conflict" if isinstance(exc, ConflictError) else "member"), str(exc)
    if isinstance(exc, client.ApiException):
        body = (exc.body or "")[:300] if isinstance(exc.body, str) else ""
        return str(
            exc.status
        ), f"applying to {cluster} failed: {exc.status} {exc.reason} {body}".strip()
    return "unreachable", f"applying to {cluster} failed: {type(exc).__name__}: {exc}"[:500]


def apply_member(
    rt: Runtime,
    cluster: str,
    objects: list[dict[str, Any]],
    name: str,
    hub_namespace: str,
    known: set[str],
) -> list[str]:
    """Blocking: the member's client (may re-read the hub Secrets) and the writes."""
    return apply.apply_objects(
        rt.members.get(cluster).api, objects, name, hub_namespace, known=known
    )


def delete_member_objects(
    rt: Runtime, cluster: str, namespace: str, name: str, hub_namespace: str
) -> int:
    """Blocking: delete this ModelDeployment's objects in one member namespace."""
    return apply.delete_objects(rt.members.get(cluster).api, namespace, name, hub_namespace)


async def remove_stale(ctl: DaemonState, spec: ModelDeploymentSpec, body: kopf.Body) -> None:
    """Remove this ModelDeployment's member objects outside the spec's placement: left behind
    when `clusters.<role>.namespace` or `.cluster` changed. Only objects with its owner labels
    (managed by modeldr, this name and hub namespace), found in the snapshots of the spec's
    clusters and of the clusters it named before; the caller runs it only while both clusters
    pass their checks, so nothing is removed while the new placement is not serving."""
    monitors = ctl.runtime.monitors
    desired = {spec.member(role).cluster: spec.member(role).namespace for role in ROLES}
    for cluster in sorted(set(desired) | ctl.former):
        snapshot = monitors.get(cluster).snapshot
        if not snapshot.ok:
            continue  # retried next tick
        stale = snapshot.owned_namespaces(ctl.name, ctl.namespace) - {desired.get(cluster, "")}
        if not stale and cluster not in desired:
            ctl.former.discard(cluster)
        for namespace in sorted(stale):
            delete = functools.partial(
                delete_member_objects, ctl.runtime, cluster, namespace, ctl.name, ctl.namespace
            )
            try:
                deleted = await asyncio.to_thread(ctl.writes.run, delete)
            except Closing:
                raise
            except Exception as exc:  # retried next tick
                log.warning(
                    "%s/%s: removing old objects in %s namespace %s failed: %s",
                    ctl.namespace,
                    ctl.name,
                    cluster,
                    namespace,
                    exc,
                )
                continue
            monitors.get(cluster).wake()
            if deleted:
                message = (
                    f"removed {deleted} objects from {cluster} namespace {namespace}: no longer "
                    "where the spec places this model"
                )
                log.info("%s/%s: %s", ctl.namespace, ctl.name, message)
                post_event(body, "Normal", "StaleObjectsRemoved", message)


def watch(ctl: DaemonState, spec: ModelDeploymentSpec) -> None:
    """Register the daemon's wake-up with the pollers of the spec's clusters."""
    if ctl.wake is None:
        return
    monitors = ctl.runtime.monitors
    wanted = {
        (spec.member(role).cluster, (spec.member(role).namespace, ctl.name)) for role in ROLES
    }
    for cluster, key in ctl.watching - wanted:
        monitors.unwatch(cluster, key, ctl.wake)
    for cluster, key in wanted - ctl.watching:
        monitors.get(cluster).watch(key, ctl.wake)
    ctl.watching = wanted
