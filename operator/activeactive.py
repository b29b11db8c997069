"""Active-active weights: which share of the requests each cluster gets this round.

Pure logic (no I/O). In `traffic.mode: activeActive` both clusters serve by their configured
`traffic.weights`; a cluster that fails a health check loses its weight at once (the check
that saw it is the bound on how long clients are sent to it), and gets it back only after it
has passed every check for `failover.failback.holdDownSeconds` (a cluster that has not served
yet, one still coming up, serves as soon as it passes), the same hold-down an
automatic failback waits (a cluster flapping between healthy and not must not pull clients
back and forth). Two safety rules, because taking weight away must never make things worse:
- when no healthy cluster with a configured weight is left serving, a healthy one still held
  down gets its weight back at once (a short hold-down is better than no service);
- when no cluster is healthy, every configured weight is kept (nothing better is known, and
  the load balancer's own server checks still route around dead servers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import ROLES, Role

# Cluster states in status.traffic.clusters[].state
SERVING = "Serving"
UNHEALTHY = "Unhealthy"
HELD_DOWN = "HeldDown"
NO_WEIGHT = "NoWeight"  # its configured weight is 0


@dataclass(frozen=True)
class ClusterShare:
    role: Role
    weight: int  # effective weight, 0..100
    state: str
    message: str = ""


@dataclass
class WeightState:
    """What one ModelDeployment's weighting remembers between rounds (monotonic seconds)."""

    # Roles that lost their weight and have not yet got it back.
    withdrawn: set[Role] = field(default_factory=set)
    # Since when a withdrawn role has passed every check (None: failing now).
    healthy_since: dict[Role, float | None] = field(default_factory=dict)
    # Roles that have served: a cluster still coming up for the first time (or after the
    # operator started) is not held down when it first passes, only one that served and
    # failed is.
    served: set[Role] = field(default_factory=set)


def weigh(
    spec: ModelDeploymentSpec, state: WeightState, healthy: dict[Role, bool], now: float
) -> dict[Role, ClusterShare]:
    """Each role's effective weight and state for this round; updates `state`."""
    hold_down = float(spec.failover.failback.hold_down_seconds)
    configured = {role: spec.traffic.weights.of(role) for role in ROLES}
    for role in ROLES:
        if not healthy[role]:
            if role in state.served:
                state.withdrawn.add(role)
            state.healthy_since[role] = None
        elif role in state.withdrawn:
            since = state.healthy_since.get(role)
            if since is None:
                state.healthy_since[role] = since = now
            if now - since >= hold_down:
                state.withdrawn.discard(role)
    shares = {
        role: _share(role, configured[role], state, healthy[role], now, hold_down) for role in ROLES
    }
    if not any(s.weight > 0 for s in shares.values()):
        shares = _fallback(shares, configured, state, healthy)
    state.served.update(role for role in ROLES if shares[role].state == SERVING)
    return shares


def _share(
    role: Role, configured: int, state: WeightState, healthy: bool, now: float, hold_down: float
) -> ClusterShare:
    if configured == 0:
        return ClusterShare(role, 0, NO_WEIGHT, "traffic.weights gives it 0")
    if not healthy:
        return ClusterShare(role, 0, UNHEALTHY, "failed its health check: weight withdrawn")
    if role in state.withdrawn:
        since = state.healthy_since.get(role) or now
        left = max(0.0, hold_down - (now - since))
        return ClusterShare(role, 0, HELD_DOWN, f"healthy again; weight back in {left:.0f} s")
    return ClusterShare(role, configured, SERVING)


def _fallback(
    shares: dict[Role, ClusterShare],
    configured: dict[Role, int],
    state: WeightState,
    healthy: dict[Role, bool],
) -> dict[Role, ClusterShare]:
    """No cluster would serve: the safety rules of the module docstring."""
    held = [r for r in ROLES if shares[r].state == HELD_DOWN]
    if held:
        for role in held:
            state.withdrawn.discard(role)
            shares[role] = ClusterShare(
                role,
                configured[role],
                SERVING,
                "weight back before its hold-down: no other cluster serves",
            )
        return shares
    if not any(healthy.values()):
        return {
            role: ClusterShare(
                role,
                configured[role],
                shares[role].state,
                "no cluster is healthy: configured weights kept",
            )
            if configured[role] > 0
            else shares[role]
            for role in ROLES
        }
    return shares
