"""When to switch the active cluster: the failover and failback state machine.

Pure logic (no I/O), driven by one health observation of each cluster per tick, so every
rule is unit-tested: a threshold of consecutive failed checks before failing over, never a
switch to a cluster that is not ready, automatic failback only after the primary has been
healthy for the whole hold-down (any failed check restarts it), manual switches on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import ROLES, SWITCH_ANNOTATION, Role
from modeldr.kube.times import iso

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
    # Why, as a word for the Ready condition's reason: Healthy, Unreachable, NotObserved,
    # NoDeployment, NoReadyEndpoints, ServersNotAnswering, HealthQueryFailed,
    # CredentialsRejected (never counted toward a failover: see _track_streak).
    code: str = "Healthy"
    # "answered/asked" of the client probe's last check ("" when it did not run).
    answering: str = ""


# The member's apiserver answered 401/403: it is up and our credentials are refused. Nothing
# says its servers stopped serving, so it never counts toward a failover; it is reported.
CREDENTIALS_REJECTED = "CredentialsRejected"


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
    # The requested switch waited SWITCH_WAIT_S in vain: remove the request.
    drop_request: bool = False
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
    # When the requested switch that is waiting began to wait (None: none waits).
    request_waiting_since: datetime | None = None
    # The active cluster's apiserver refuses our credentials (reported once, never a failure).
    credentials_rejected: bool = False

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
        counted = self._count(spec, now, health)
        if self.armed and counted:
            self._track_streak(spec, now, health[self.active], decision)
        # The primary's healthy run, for automatic failback.
        if health["primary"].healthy:
            if self.primary_healthy_since is None:
                self.primary_healthy_since = now
        else:
            self.primary_healthy_since = None
        return self._choose(spec, now, health, requested, decision)

    def _count(self, spec: ModelDeploymentSpec, now: datetime, health: dict[Role, Health]) -> bool:
        """Whether this tick's checks count, updating the passes; arms on a healthy active."""
        active_health = health[self.active]
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
            for role in ROLES:
                self.passes[role] = self.passes.get(role, 0) + 1 if health[role].healthy else 0
        elif first_failure:
            self.passes[self.active] = 0
        if counted:
            self.last_counted = now
        if active_health.healthy:
            self.armed = True
        return counted

    def _track_streak(
        self, spec: ModelDeploymentSpec, now: datetime, active_health: Health, decision: Decision
    ) -> None:
        """The active cluster's failure streak (once it has served), on a counted check."""
        active = self.active
        rejected = active_health.code == CREDENTIALS_REJECTED
        newly_rejected = rejected and not self.credentials_rejected
        self.credentials_rejected = rejected
        if rejected:
            if newly_rejected:
                decision.events.append(
                    (
                        "Warning",
                        CREDENTIALS_REJECTED,
                        f"{active}'s apiserver answers but refuses the operator's credentials "
                        f"({active_health.reason}): not a failure of the cluster, no failover",
                    )
                )
            self.streak, self.first_failure, self.detected = 0, None, None
            return
        if active_health.healthy:
            if self.detected is not None:
                decision.events.append(
                    ("Normal", "FailoverCancelled", f"{active} is healthy again before the switch")
                )
            self.streak, self.first_failure, self.detected = 0, None, None
            return
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

    def _choose(
        self,
        spec: ModelDeploymentSpec,
        now: datetime,
        health: dict[Role, Health],
        requested: Role | None,
        decision: Decision,
    ) -> Decision:
        """Which switch, if any: a manual request, then failover, then automatic failback."""
        active, standby = self.active, other(self.active)
        threshold = spec.failover.failure_threshold

        def ready(role: Role) -> bool:
            return health[role].healthy and self.passes.get(role, 0) >= threshold

        # 1. A manual request wins (it is how a person fails back, or moves traffic).
        if requested is None or requested == active:
            self.request_waiting_since = None
        elif ready(requested):
            self.request_waiting_since = None
            return self._switch(
                decision, requested, "manual", f"requested switch to {requested}", now
            )
        else:
            wait_s = float(spec.failover.switch_wait_seconds)
            self._wait_for(requested, health[requested], threshold, wait_s, now, decision)

        # 2. Automatic failover once the threshold is reached.
        if self.detected is not None and spec.failover.automatic:
            decision.failing_over = True
            decision.full_size.add(standby)  # scale a warm or cold standby up now
            if ready(standby):
                reason = f"{active} down: {health[active].reason}"
                return self._switch(decision, standby, "automatic", reason, now)
            decision.waiting = (
                f"failover from {active} waits: {standby} is not ready ({health[standby].reason})"
            )
            return decision
        if self.detected is not None:
            decision.waiting = (
                f"{active} is down but spec.failover.automatic is false: switch by hand "
                f"(annotation {SWITCH_ANNOTATION}={standby})"
            )
        return self._failback(spec, now, health, decision)

    def _wait_for(
        self,
        requested: Role,
        health: Health,
        threshold: int,
        wait_s: float,
        now: datetime,
        decision: Decision,
    ) -> None:
        """A requested switch whose target does not answer yet: say what it waits for (an
        Event when the wait begins), and drop the request after `wait_s`
        (failover.switchWaitSeconds): never kept forever."""
        what = (
            f"{requested} to answer ({health.reason}; {self.passes.get(requested, 0)}/"
            f"{threshold} passed checks in a row)"
        )
        if self.request_waiting_since is None:
            self.request_waiting_since = now
            decision.events.append(
                ("Normal", "SwitchWaiting", f"requested switch to {requested} waits for {what}")
            )
        waited = (now - self.request_waiting_since).total_seconds()
        if waited >= wait_s:
            self.request_waiting_since = None
            decision.drop_request = True
            decision.events.append(
                (
                    "Warning",
                    "SwitchAbandoned",
                    f"requested switch to {requested} dropped after "
                    f"{waited:.0f}s: {requested} never answered ({health.reason})"[:1024],
                )
            )
            return
        # No running time in it: a steady wait gives a steady status (no write per check).
        decision.waiting = (
            f"requested switch to {requested} waits (at most {wait_s:.0f}s) for {what}"
        )

    def _failback(
        self,
        spec: ModelDeploymentSpec,
        now: datetime,
        health: dict[Role, Health],
        decision: Decision,
    ) -> Decision:
        """3. Automatic failback after the hold-down."""
        failback = spec.failover.failback
        since = self.primary_healthy_since
        if self.active != "standby" or failback.mode != "automatic" or since is None:
            return decision
        if not health[self.active].healthy:
            return decision
        healthy_for = (now - since).total_seconds()
        if healthy_for < failback.hold_down_seconds:
            return decision
        decision.failing_back = True
        reason = f"primary healthy for {healthy_for:.0f}s (hold-down {failback.hold_down_seconds}s)"
        return self._switch(decision, "primary", "failback", reason, now)

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


# Every key of status.lastFailover: a merge patch keeps keys it does not mention, so a
# failover without timings must null the previous one's.
LAST_FAILOVER_KEYS = (
    "from",
    "to",
    "reason",
    "automatic",
    "failureTime",
    "detectedTime",
    "switchedTime",
    "detectionSeconds",
    "switchSeconds",
    "totalSeconds",
    "evaluation",
)


def failover_record(
    switch: Switch, from_cluster: str, to_cluster: str, switched: datetime
) -> dict[str, Any]:
    """status.lastFailover for a switch the provider confirmed at `switched`; timings only for
    an automatic failover (it knows when the failure started and when it was detected)."""
    record: dict[str, Any] = {
        "from": from_cluster,
        "to": to_cluster,
        "reason": switch.reason[:1024],
        "automatic": switch.trigger != "manual",
        "switchedTime": iso(switched, precise=True),
    }
    if switch.failure_time and switch.detected_time:
        detection = (switch.detected_time - switch.failure_time).total_seconds()
        total = (switched - switch.failure_time).total_seconds()
        record |= {
            "failureTime": iso(switch.failure_time, precise=True),
            "detectedTime": iso(switch.detected_time, precise=True),
            "detectionSeconds": round(detection, 3),
            "switchSeconds": round((switched - switch.detected_time).total_seconds(), 3),
            "totalSeconds": round(total, 3),
        }
    return record
