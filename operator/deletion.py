"""Deleting a ModelDeployment: remove its member objects and its traffic objects, retrying
while a member is unreachable, so nothing leaks."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import ROLES
from modeldr.kube.errors import MemberError, TrafficError
from modeldr.operator import metrics
from modeldr.operator.daemonstate import Writes, status_clusters
from modeldr.operator.reconcile import delete_member_objects
from modeldr.operator.runtime import Runtime
from modeldr.operator.traffic.base import Owner

RETRY_S = 10


def delete_modeldeployment(
    rt: Runtime,
    writes: Writes,
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """First waits for a daemon write in flight and stops further ones (`Writes`). Deletes in
    the spec's namespace of each spec cluster and in every other namespace where the
    cluster's snapshot shows objects with this ModelDeployment's owner labels; a cluster the
    last status names but the spec no longer does is cleaned the same way, best-effort.
    """
    writes.close()
    parsed = ModelDeploymentSpec.parse(spec)
    placement = {parsed.member(role).cluster: parsed.member(role).namespace for role in ROLES}
    former = status_clusters(status) - set(placement)
    for cluster in [*placement, *sorted(former)]:
        delete_in_cluster(rt, cluster, placement, name, namespace, logger)
    try:
        rt.provider(parsed.traffic.provider).cleanup(rt.hub, Owner(namespace, name, uid), parsed)
    except TrafficError as exc:
        raise kopf.TemporaryError(f"traffic cleanup: {exc}", delay=RETRY_S) from None
    metrics.forget(namespace, name)


def delete_in_cluster(
    rt: Runtime,
    cluster: str,
    placement: dict[str, str],
    name: str,
    namespace: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Delete in one cluster; a TemporaryError (kopf retries) while a spec cluster fails."""
    monitor = rt.monitors.get(cluster)
    monitor.wait_first(3.0)
    snapshot = monitor.snapshot
    if cluster not in placement and not snapshot.ok:
        logger.warning(
            "%s (named by the last status, no longer by the spec) cannot be "
            "read: %s; objects left there are not removed",
            cluster,
            snapshot.error,
        )
        return
    namespaces = {placement[cluster]} if cluster in placement else set()
    if snapshot.ok:
        namespaces |= snapshot.owned_namespaces(name, namespace)
    try:
        deleted = sum(
            delete_member_objects(rt, cluster, member_ns, name, namespace)
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
            return
        raise kopf.TemporaryError(f"{why}; will retry", delay=RETRY_S) from None
    logger.info("deleted %d objects of %s/%s in %s", deleted, namespace, name, cluster)
    monitor.wake()
