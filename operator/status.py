"""Status of a ModelDeployment: conditions (metav1.Condition), per-cluster status, phase.

Pure functions; the daemon writes the result through the status subresource only when it
changed, and posts an Event for every condition that changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modeldr.operator.failover import Health
from modeldr.operator.monitor import Snapshot
from modeldr.operator.render import DIGEST_ANNOTATION


def iso(moment: datetime | None, *, precise: bool = False) -> str | None:
    """RFC 3339; milliseconds for failover timings (seconds elsewhere, like Kubernetes)."""
    if moment is None:
        return None
    if precise:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
) -> dict[str, Any]:
    deployment = snapshot.deployments.get((namespace, name))
    out: dict[str, Any] = {
        "cluster": cluster,
        "reachable": snapshot.ok,
        "replicas": wanted_replicas,
        "readyReplicas": int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0),
        "lastCheckTime": iso(snapshot.time),
        "message": health.reason[:1024],
    }
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
