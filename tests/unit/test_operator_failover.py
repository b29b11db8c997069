"""The failover/failback state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import Role
from modeldr.operator.failover import (
    CREDENTIALS_REJECTED,
    Decision,
    FailoverState,
    Health,
    replicas_for,
)
from tests.specs import minimal_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UP = Health(True, "2 ready endpoints", 2)
DOWN = Health(False, "apiserver unreachable: connection refused")
REJECTED = Health(
    False, "credentials rejected: apiserver answered 401 Unauthorized", code=CREDENTIALS_REJECTED
)


def spec(mode: str = "hot", **failover: Any) -> ModelDeploymentSpec:
    standby: dict[str, Any] = {"cluster": "standby", "namespace": "ml", "mode": mode}
    if mode == "warm":
        standby["replicas"] = 1
    return minimal_spec(
        replicas=3,
        clusters={"primary": {"cluster": "primary", "namespace": "ml"}, "standby": standby},
        failover={"healthIntervalSeconds": 5, "failureThreshold": 3, **failover},
    )


def tick(
    state: FailoverState,
    s: ModelDeploymentSpec,
    n: int,
    primary: Health,
    standby: Health,
    requested: Any = None,
) -> Decision:
    health: dict[Role, Health] = {"primary": primary, "standby": standby}
    return state.observe(s, T0 + timedelta(seconds=n), health, requested)


def test_fails_over_after_threshold_consecutive_failures_with_timings() -> None:
    s, state = spec(), FailoverState(armed=True)
    assert tick(state, s, 0, UP, UP).switch is None
    assert tick(state, s, 1, DOWN, UP).switch is None
    assert tick(state, s, 2, DOWN, UP).switch is None
    decision = tick(state, s, 3, DOWN, UP)
    assert decision.switch is not None and decision.switch.to == "standby"
    assert decision.switch.trigger == "automatic"
    assert decision.switch.failure_time == T0 + timedelta(seconds=1)
    assert decision.switch.detected_time == T0 + timedelta(seconds=3)
    reasons = [e[1] for e in decision.events]
    assert "ActiveClusterDown" in reasons
    state.switched("standby")
    assert state.active == "standby" and state.streak == 0


def test_rejected_credentials_never_fail_over_are_reported_once_and_end_a_streak() -> None:
    s, state = spec(), FailoverState(armed=True)
    tick(state, s, 1, DOWN, UP)
    tick(state, s, 2, DOWN, UP)  # one check from the threshold
    decisions = [tick(state, s, n, REJECTED, UP) for n in range(3, 20)]
    assert all(d.switch is None and not d.failing_over for d in decisions)
    events = [e for d in decisions for e in d.events]
    assert [e[1] for e in events] == [CREDENTIALS_REJECTED]  # once, not per check
    assert "no failover" in events[0][2] and "401" in events[0][2]
    assert state.streak == 0 and state.detected is None
    # The apiserver then really goes away: a fresh streak, and the failover it warrants.
    assert tick(state, s, 20, DOWN, UP).switch is None
    assert tick(state, s, 21, DOWN, UP).switch is None
    decision = tick(state, s, 22, DOWN, UP)
    assert decision.switch is not None and decision.switch.to == "standby"


def test_a_standby_that_rejects_the_credentials_is_no_switch_target() -> None:
    s, state = spec(), FailoverState(armed=True)
    decisions = [tick(state, s, n, DOWN, REJECTED) for n in range(1, 10)]
    assert all(d.switch is None for d in decisions)
    assert "standby is not ready" in decisions[-1].waiting


def test_a_success_resets_the_streak() -> None:
    s, state = spec(), FailoverState(armed=True)
    tick(state, s, 1, DOWN, UP)
    tick(state, s, 2, DOWN, UP)
    tick(state, s, 3, UP, UP)
    assert tick(state, s, 4, DOWN, UP).switch is None
    assert tick(state, s, 5, DOWN, UP).switch is None


def test_never_switches_to_a_standby_that_is_not_ready_and_keeps_trying() -> None:
    s, state = spec("warm"), FailoverState(armed=True)
    for n in range(1, 4):
        decision = tick(state, s, n, DOWN, DOWN)
    assert decision.switch is None
    assert decision.failing_over and "standby is not ready" in decision.waiting
    # The warm standby is scaled to full size while the failover waits for it.
    assert replicas_for(s, "standby", decision.full_size) == 3
    # A standby that was failing must pass `failureThreshold` checks in a row first.
    assert tick(state, s, 4, DOWN, UP).switch is None
    assert tick(state, s, 5, DOWN, UP).switch is None
    decision = tick(state, s, 6, DOWN, UP)
    assert decision.switch is not None and decision.switch.to == "standby"


def test_idle_standby_sizes() -> None:
    assert replicas_for(spec("hot"), "standby", {"primary"}) == 3
    assert replicas_for(spec("warm"), "standby", {"primary"}) == 1
    assert replicas_for(spec("cold"), "standby", {"primary"}) == 0
    assert replicas_for(spec("cold"), "primary", set()) == 3


def test_manual_failback_needs_a_ready_primary() -> None:
    s, state = spec(), FailoverState(active="standby", armed=True)
    decision = tick(state, s, 1, DOWN, UP, requested="primary")
    assert decision.switch is None and "waits (at most 300s) for primary to answer" in (
        decision.waiting
    )
    # Back from an outage, the primary must pass 3 checks in a row (stale Ready after restore).
    decision = tick(state, s, 2, UP, UP, requested="primary")
    assert decision.switch is None and "1/3 passed checks in a row" in decision.waiting
    tick(state, s, 3, UP, UP, requested="primary")
    decision = tick(state, s, 4, UP, UP, requested="primary")
    assert decision.switch is not None
    assert (decision.switch.to, decision.switch.trigger) == ("primary", "manual")


def test_manual_failover_when_automatic_is_off() -> None:
    s, state = spec(automatic=False), FailoverState(armed=True)
    for n in range(1, 5):
        decision = tick(state, s, n, DOWN, UP)
    assert decision.switch is None and "automatic is false" in decision.waiting
    decision = tick(state, s, 5, DOWN, UP, requested="standby")
    assert decision.switch is not None and decision.switch.trigger == "manual"


def test_automatic_failback_only_after_the_whole_hold_down_without_flapping() -> None:
    s = spec(failback={"mode": "automatic", "holdDownSeconds": 60})
    state = FailoverState(active="standby", armed=True)
    assert tick(state, s, 0, UP, UP).switch is None
    assert tick(state, s, 30, UP, UP).switch is None
    tick(state, s, 40, DOWN, UP)  # a flap restarts the hold-down
    assert tick(state, s, 41, UP, UP).switch is None
    assert tick(state, s, 100, UP, UP).switch is None
    decision = tick(state, s, 101, UP, UP)
    assert decision.switch is not None
    assert (decision.switch.to, decision.switch.trigger) == ("primary", "failback")


def test_manual_failback_mode_stays_on_standby() -> None:
    s, state = spec(), FailoverState(active="standby", armed=True)
    for n in range(0, 1000, 100):
        assert tick(state, s, n, UP, UP).switch is None


def test_fast_interval_after_a_failure() -> None:
    s, state = spec(), FailoverState(armed=True)
    assert state.next_interval(s) == 5.0
    tick(state, s, 1, DOWN, UP)
    assert state.next_interval(s) == 1.0


def test_failed_standby_while_active_fails_over_back_to_primary() -> None:
    s, state = spec(), FailoverState(active="standby", armed=True)
    for n in range(1, 4):
        decision = tick(state, s, n, UP, DOWN)
    assert decision.switch is not None and decision.switch.to == "primary"


def test_no_failover_before_the_active_cluster_has_ever_served() -> None:
    # A fresh ModelDeployment: the standby happens to get ready first; that is a rollout,
    # not an outage, and traffic must not start on the standby.
    s, state = spec(), FailoverState()
    for n in range(1, 10):
        decision = tick(state, s, n, DOWN, UP)
        assert decision.switch is None and not decision.failing_over
    assert tick(state, s, 10, UP, UP).switch is None
    for n in range(11, 13):
        assert tick(state, s, n, DOWN, UP).switch is None
    assert tick(state, s, 13, DOWN, UP).switch is not None


def test_checks_closer_than_an_interval_do_not_count_toward_the_threshold() -> None:
    # Extra ticks (the object changed, e.g. our own status write) must not shorten detection.
    s, state = spec(), FailoverState(armed=True)
    tick(state, s, 0, UP, UP)
    t0 = T0 + timedelta(seconds=10)
    health: dict[Role, Health] = {"primary": DOWN, "standby": UP}
    for offset in (0.0, 0.05, 0.1, 0.2, 0.5):
        decision = state.observe(s, t0 + timedelta(seconds=offset), health)
        assert decision.switch is None
    assert state.streak == 1
    state.observe(s, t0 + timedelta(seconds=1.0), health)
    decision = state.observe(s, t0 + timedelta(seconds=2.0), health)
    assert decision.switch is not None
    assert decision.switch.detected_time == t0 + timedelta(seconds=2.0)


def test_the_first_failed_check_counts_at_once_even_right_after_a_passed_one() -> None:
    # The member poller wakes the daemon right after a failure: that check counts even
    # when the last counted (passed) check was a moment ago; the next ones must be spaced.
    s, state = spec(), FailoverState(armed=True)
    tick(state, s, 0, UP, UP)
    t0 = T0 + timedelta(seconds=0.3)
    health: dict[Role, Health] = {"primary": DOWN, "standby": UP}
    decision = state.observe(s, t0, health)
    assert state.streak == 1 and state.first_failure == t0
    assert [e[1] for e in decision.events] == ["HealthCheckFailed"]
    assert state.next_interval(s) == 1.0
    state.observe(s, t0 + timedelta(seconds=0.5), health)  # too close: not counted
    assert state.streak == 1
    state.observe(s, t0 + timedelta(seconds=1.0), health)
    decision = state.observe(s, t0 + timedelta(seconds=2.0), health)
    assert decision.switch is not None and decision.switch.to == "standby"
    assert decision.switch.failure_time == t0
    assert decision.switch.detected_time == t0 + timedelta(seconds=2.0)


def test_an_early_first_failure_does_not_add_passes_to_the_standby() -> None:
    # Only spaced checks count as passes (the hysteresis of a recovering cluster).
    s, state = spec(), FailoverState(armed=True)
    tick(state, s, 0, UP, UP)
    passes = dict(state.passes)
    state.observe(s, T0 + timedelta(seconds=0.3), {"primary": DOWN, "standby": UP})
    assert state.passes == {**passes, "primary": 0}


LOADING = Health(
    False,
    "2 ready endpoints; client probe (readiness, from its ready endpoints): 0 of 2 answered "
    "within 1000 ms, below the 50% needed; failures: HTTP 503: model is loading x2",
    2,
    "ServersNotAnswering",
    "0/2",
)


def test_a_requested_failback_waits_for_answers_says_so_once_and_gives_up_bounded() -> None:
    s, state = spec(), FailoverState(active="standby", armed=True)
    first = tick(state, s, 1, LOADING, UP, requested="primary")
    assert first.switch is None and not first.drop_request
    assert [e[1] for e in first.events] == ["SwitchWaiting"]
    assert "HTTP 503: model is loading x2" in first.waiting
    # The same wait: the same message (no status write per check), no second Event.
    again = tick(state, s, 2, LOADING, UP, requested="primary")
    assert again.waiting == first.waiting and again.events == []
    late = tick(state, s, 1 + 300, LOADING, UP, requested="primary")  # switchWaitSeconds
    assert late.switch is None and late.drop_request and not late.waiting
    assert [e[:2] for e in late.events] == [("Warning", "SwitchAbandoned")]
    assert "never answered" in late.events[0][2]
    assert state.active == "standby"


def test_the_wait_bound_is_the_specs() -> None:
    s, state = spec(switchWaitSeconds=10), FailoverState(active="standby", armed=True)
    assert "(at most 10s)" in tick(state, s, 1, LOADING, UP, requested="primary").waiting
    assert not tick(state, s, 10, LOADING, UP, requested="primary").drop_request
    assert tick(state, s, 11, LOADING, UP, requested="primary").drop_request


def test_a_wait_that_ends_in_a_switch_starts_afresh_next_time() -> None:
    s, state = spec(), FailoverState(active="standby", armed=True)
    tick(state, s, 1, LOADING, UP, requested="primary")
    for n in (2, 3, 4):
        decision = tick(state, s, n, UP, UP, requested="primary")
    assert decision.switch is not None and state.request_waiting_since is None
    state.switched("primary")
    decision = tick(state, s, 5, UP, LOADING, requested="standby")
    assert [e[1] for e in decision.events] == ["SwitchWaiting"]
