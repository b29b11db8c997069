"""Autoscaling of the model server per member cluster (spec.autoscaling): the
HorizontalPodAutoscaler the operator renders, and the floor it keeps under it.

The HPA scales on the server's own load (the custom metric INFLIGHT_METRIC, per pod). The
floor is its minReplicas: the role's own minimum, the idle size of a standby that does not
serve, and, for a cluster that serves while its peer has failed, the replicas the peer ran
when it was last healthy, so that the survivor carries the whole load at once instead of
waiting for its own metric to climb (the autoscaler needs a metric window and a sync
period to react, during which an undersized survivor queues or drops requests). The carry
lasts while the peer is unhealthy and for the scale-down stabilization window after: then
the autoscaler alone decides, so two clusters never ratchet each other up. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldr.api.modeldeployment import Autoscaling, ModelDeploymentSpec
from modeldr.kube.constants import Role

#: The custom metric (pods) the HPA targets: served by prometheus-adapter with the rule in
#: docs/traffic.md, or the sandbox's adapter (sandbox/metrics_adapter.py).
INFLIGHT_METRIC = "modeldr_inflight_requests"


def peer(role: Role) -> Role:
    return "standby" if role == "primary" else "primary"


@dataclass
class ScaleMemory:
    """What the floor remembers between ticks: each role's replicas while it was healthy,
    and when it was last seen unhealthy (monotonic seconds)."""

    replicas_when_healthy: dict[Role, int] = field(default_factory=dict)
    last_unhealthy: dict[Role, float] = field(default_factory=dict)

    def observe(
        self, role: Role, healthy: bool, replicas: int | None, now: float, window_s: float
    ) -> None:
        """One tick's look at `role`. Within `window_s` after its last failure its remembered
        replicas only grow: what a recovering cluster runs is not what it carried."""
        if not healthy:
            self.last_unhealthy[role] = now
            return
        if replicas is None:
            return
        failed_at = self.last_unhealthy.get(role)
        if failed_at is not None and now - failed_at <= window_s:
            replicas = max(replicas, self.replicas_when_healthy.get(role, 0))
        self.replicas_when_healthy[role] = replicas

    def carried(self, role: Role, window_s: float, now: float) -> int:
        """The replicas `role` carries for its peer: what the peer ran when last healthy,
        while the peer is unhealthy or failed within `window_s`; else 0."""
        other = peer(role)
        failed_at = self.last_unhealthy.get(other)
        if failed_at is None or now - failed_at > window_s:
            return 0
        return self.replicas_when_healthy.get(other, 0)


def floor(
    scaling: Autoscaling,
    spec: ModelDeploymentSpec,
    role: Role,
    serving: bool,
    memory: ScaleMemory,
    now: float,
) -> int:
    """The HPA's minReplicas for `role` now (within the role's range)."""
    scale = scaling.range_of(role)
    if not serving:
        # An idle standby keeps its mode's size (warm: standby.replicas; hot: its minimum).
        warm = spec.clusters.standby.mode == "warm"
        wanted = spec.standby_replicas() if warm else scale.min_replicas
    else:
        carried = memory.carried(role, scaling.scale_down_stabilization_seconds, now)
        wanted = max(scale.min_replicas, carried)
    return max(1, min(scale.max_replicas, wanted))


def horizontal_pod_autoscaler(
    name: str,
    namespace: str,
    labels: dict[str, str],
    scaling: Autoscaling,
    role: Role,
    min_replicas: int,
) -> dict[str, Any]:
    """The member's HPA for the model server's Deployment (same name)."""
    target = f"{round(scaling.target_inflight_per_pod * 1000)}m"
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": scaling.range_of(role).max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": INFLIGHT_METRIC},
                        "target": {"type": "AverageValue", "averageValue": target},
                    },
                }
            ],
            "behavior": {
                # Up at once (a load step must not wait); down only after the window.
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    # The larger of: double, or 4 more, every 5 s.
                    "policies": [
                        {"type": "Percent", "value": 100, "periodSeconds": 5},
                        {"type": "Pods", "value": 4, "periodSeconds": 5},
                    ],
                    "selectPolicy": "Max",
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds
                },
            },
        },
    }
