"""When to switch the active cluster: the failover and failback state machine.

Pure logic (no I/O), driven by one health observation of each cluster per tick, so every
rule is unit-tested: a threshold of consecutive failed checks before failing over, never a
switch to a cluster that is not ready, automatic failback only after the primary has been
healthy for the whole hold-down (any failed check restarts it), manual switches on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modeldr.operator.spec import ModelDeploymentSpec

Role = Literal["primary", "standby"]
Trigger = Literal["automatic", "manual", "failback"]

# After a failed check, the next checks come this often (at most) until the cluster is
# healthy again or declared down, like HAProxy's `fastinter`: a dead cluster is confirmed in
# seconds without checking a healthy one more often.
FAST_INTERVAL_S = 1.0
# Fraction of the interval two counted checks must be apart (timer jitter tolerance).
MIN_SPACING = 0.8


def other(role: Role) -> Role:
    return "standby" if role == "primary" else "primary"


@dataclass(frozen=True)
class Health:
    """One check of one cluster for one ModelDeployment."""

    healthy: bool
    reason: str  # why not healthy, or a short "ok" summary
    ready_replicas: int = 0


@dataclass(frozen=True)
class Switch:
    to: Role
    trigger: Trigger
    reason: str
    failure_time: datetime | None
    detected_time: datetime | None


@dataclass
class Decision:
    switch: Switch | None = None
    # Roles that must run spec.replicas now (the rest run their idle size).
    full_size: set[Role] = field(default_factory=set)
    failing_over: bool = False
    failing_back: bool = False
    # Why a wanted switch is not happening yet (empty when none is wanted).
    waiting: str = ""
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


@dataclass
class FailoverState:
    active: Role = "primary"
    streak: int = 0
    first_failure: datetime | None = None
    detected: datetime | None = None
    primary_healthy_since: datetime | None = None
    # False until the active cluster has passed a check: a ModelDeployment that is still
    # rolling out has nothing to fail over from (whichever cluster got ready first would win).
    armed: bool = False
    # Consecutive passed checks per cluster: a cluster that was failing becomes a switch target
    # only after `failureThreshold` passes in a row (hysteresis both ways; after an outage the
    # restored control plane briefly reports the pods' stale Ready state).
    passes: dict[str, int] = field(default_factory=dict)
    last_counted: datetime | None = None

    def next_interval(self, spec: ModelDeploymentSpec) -> float:
        interval = float(spec.failover.health_interval_seconds)
        return min(interval, FAST_INTERVAL_S) if self.streak else interval

    def observe(
        self,
        spec: ModelDeploymentSpec,
        now: datetime,
        health: dict[Role, Health],
        requested: Role | None = None,
    ) -> Decision:
        """Advance by one tick. `requested` is a manual switch request (annotation)."""
        decision = Decision(full_size={"primary", self.active})
        active, standby = self.active, other(self.active)
        active_health, standby_health = health[active], health[standby]
        # Ticks also come when the object changes (our own status writes included) and when
        # a member's poller sees a change; only checks at least about the fast interval apart
        # count (toward a failure streak, and as passes), so that `failureThreshold`
        # consecutive failed checks always span about (threshold - 1) fast intervals. The
        # first failed check of the active cluster counts at once (the poller wakes the
        # daemon right after a failure): the streak, and the spacing after it, start there.
        spacing = MIN_SPACING * min(float(spec.failover.health_interval_seconds), FAST_INTERVAL_S)
        spaced = self.last_counted is None or (now - self.last_counted).total_seconds() >= spacing
        first_failure = self.armed and not active_health.healthy and self.streak == 0
        counted = spaced or first_failure
        if spaced:
            for role in ("primary", "standby"):
                self.passes[role] = self.passes.get(role, 0) + 1 if health[role].healthy else 0
        elif first_failure:
            self.passes[active] = 0
        if counted:
            self.last_counted = now
        if active_health.healthy:
            self.armed = True

        # The active cluster's failure streak (once it has served).
        if not self.armed or not counted:
            pass
        elif active_health.healthy:
            if self.detected is not None:
                decision.events.append(
                    ("Normal", "FailoverCancelled", f"{active} is healthy again before the switch")
                )
            self.streak, self.first_failure, self.detected = 0, None, None
        else:
            self.streak += 1
            if self.first_failure is None:
                self.first_failure = now
                decision.events.append(
                    (
                        "Warning",
                        "HealthCheckFailed",
                        f"{active} failed a health check: {active_health.reason}",
                    )
                )
            if self.streak >= spec.failover.failure_threshold and self.detected is None:
                self.detected = now
                decision.events.append(
                    (
                        "Warning",
                        "ActiveClusterDown",
                        f"{active} failed {self.streak} consecutive checks: {active_health.reason}",
                    )
                )

        # The primary's healthy run, for automatic failback.
        if health["primary"].healthy:
            if self.primary_healthy_since is None:
                self.primary_healthy_since = now
        else:
            self.primary_healthy_since = None

        threshold = spec.failover.failure_threshold

        def ready(role: Role) -> bool:
            return health[role].healthy and self.passes.get(role, 0) >= threshold

        # 1. A manual request wins (it is how a person fails back, or moves traffic).
        if requested is not None and requested != active:
            if ready(requested):
                return self._switch(
                    decision, requested, "manual", f"requested switch to {requested}", now
                )
            decision.waiting = (
                f"requested switch to {requested} waits: {requested} is not ready "
                f"({health[requested].reason}; {self.passes.get(requested, 0)}/{threshold} passed "
                "checks in a row)"
            )

        # 2. Automatic failover once the threshold is reached.
        if self.detected is not None and spec.failover.automatic:
            decision.failing_over = True
            decision.full_size.add(standby)  # scale a warm or cold standby up now
            if ready(standby):
                return self._switch(
                    decision,
                    standby,
                    "automatic",
                    f"{active} down: {active_health.reason}",
                    now,
                )
            decision.waiting = (
                f"failover from {active} waits: {standby} is not ready ({standby_health.reason})"
            )
            return decision
        if self.detected is not None:
            decision.waiting = (
                f"{active} is down but spec.failover.automatic is false: switch by hand "
                f"(annotation modeldr.io/switch-to={standby})"
            )

        # 3. Automatic failback after the hold-down.
        failback = spec.failover.failback
        if active == "standby" and failback.mode == "automatic" and active_health.healthy:
            since = self.primary_healthy_since
            if since is not None:
                healthy_for = (now - since).total_seconds()
                if healthy_for >= failback.hold_down_seconds:
                    decision.failing_back = True
                    return self._switch(
                        decision,
                        "primary",
                        "failback",
                        f"primary healthy for {healthy_for:.0f}s (hold-down "
                        f"{failback.hold_down_seconds}s)",
                        now,
                    )
        return decision

    def _switch(
        self, decision: Decision, to: Role, trigger: Trigger, reason: str, now: datetime
    ) -> Decision:
        decision.switch = Switch(
            to=to,
            trigger=trigger,
            reason=reason,
            failure_time=self.first_failure if trigger == "automatic" else None,
            detected_time=self.detected if trigger == "automatic" else None,
        )
        decision.full_size.add(to)
        decision.waiting = ""
        return decision

    def switched(self, to: Role) -> None:
        """The traffic provider confirmed the switch: `to` is active now."""
        self.active = to
        self.streak, self.first_failure, self.detected = 0, None, None


def replicas_for(spec: ModelDeploymentSpec, role: Role, full_size: set[Role]) -> int:
    if role in full_size:
        return spec.replicas
    return spec.replicas if role == "primary" else spec.standby_replicas()
