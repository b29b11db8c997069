"""One health check of one member cluster for one ModelDeployment, from its snapshot.

Healthy means: the member's apiserver answered within the last few seconds, and the model
Service there has at least one ready, non-terminating endpoint (a pod whose server says
/v2/health/ready, i.e. model loaded, digest verified, warmed up, not draining). These are
the member's own signals; the client probe (`tick.with_probe`, on by default) then asks the
servers themselves, because a control plane that has just restarted reports its pods'
stale Ready state. A member whose apiserver answers 401 or 403 is up and refuses our
credentials: `CredentialsRejected`, which the failover decision never counts as a failure.
"""

from __future__ import annotations

from modeldr.operator.failover import CREDENTIALS_REJECTED, Health
from modeldr.operator.monitor import TICK_S, Snapshot

# A snapshot older than this is no observation at all (the poller is stuck or slow).
MAX_SNAPSHOT_AGE_S = 5 * TICK_S


def cluster_health(snapshot: Snapshot, namespace: str, name: str) -> Health:
    if not snapshot.ok:
        if snapshot.credentials_rejected:
            return Health(
                False, snapshot.error or "credentials rejected", code=CREDENTIALS_REJECTED
            )
        return Health(False, snapshot.error or "unreachable", code="Unreachable")
    age = snapshot.age()
    if age > MAX_SNAPSHOT_AGE_S:
        return Health(
            False, f"no fresh observation of {snapshot.cluster} for {age:.0f}s", code="NotObserved"
        )
    deployment = snapshot.deployments.get((namespace, name))
    if deployment is None:
        return Health(False, f"Deployment {namespace}/{name} does not exist", code="NoDeployment")
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    addresses = snapshot.ready_addresses.get((namespace, name), ())
    if not addresses:
        return Health(
            False, f"no ready endpoints for Service {namespace}/{name}", ready, "NoReadyEndpoints"
        )
    return Health(True, f"{len(addresses)} ready endpoints", ready)
