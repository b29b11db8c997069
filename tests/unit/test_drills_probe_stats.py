"""What clients saw: error ratio, p99, RTO, the active cluster, a step's expectations, the
steady state and probe-based abort conditions (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeldr.api.phase import Phase
from modeldr.drills.probe_stats import (
    AbortState,
    ExpectedCluster,
    ProbeSample,
    Roles,
    StepExpectation,
    StepMeasured,
    abort_due,
    assess_steady_state,
    assess_step,
    cluster_runs,
    error_ratio,
    fmt,
    measure_step,
    p99_latency_ms,
    reached_and_stayed,
    rto_seconds,
)

ROLES = Roles(primary="primary", standby="standby", active_at_start="primary")


def ok(at: float, cluster: str | None = "primary", latency: float = 0.01) -> ProbeSample:
    return ProbeSample(sent_at=at, latency=latency, ok=True, cluster=cluster)


def bad(at: float, latency: float = 2.0) -> ProbeSample:
    return ProbeSample(sent_at=at, latency=latency, ok=False, error="timeout")


def steady(
    start: float, end: float, cluster: str | None = "primary", every: float = 0.5
) -> list[ProbeSample]:
    n = round((end - start) / every)
    return [ok(start + i * every, cluster) for i in range(n)]


# --- error ratio ------------------------------------------------------------------------


def test_error_ratio_is_failed_over_sent_in_the_window() -> None:
    samples = [ok(0), bad(1), ok(2), bad(3), ok(10)]
    assert error_ratio(samples, 0, 4) == 0.5


def test_error_ratio_window_is_by_send_time_half_open() -> None:
    samples = [bad(-0.1), ok(0), bad(4)]
    assert error_ratio(samples, 0, 4) == 0.0


def test_error_ratio_of_an_empty_window_is_none_not_zero() -> None:
    assert error_ratio([ok(10)], 0, 4) is None


# --- p99 --------------------------------------------------------------------------------


def test_p99_is_the_nearest_rank_of_successful_latencies() -> None:
    samples = [ok(i * 0.01, latency=(i + 1) / 1000) for i in range(200)]  # 1..200 ms
    assert p99_latency_ms(samples, 0, 10) == pytest.approx(198.0)


def test_p99_of_few_samples_is_the_largest() -> None:
    samples = [ok(0, latency=0.010), ok(1, latency=0.300), ok(2, latency=0.020)]
    assert p99_latency_ms(samples, 0, 3) == pytest.approx(300.0)


def test_p99_ignores_failed_requests() -> None:
    samples = [ok(0, latency=0.010), bad(1, latency=2.0)]
    assert p99_latency_ms(samples, 0, 3) == pytest.approx(10.0)


def test_p99_without_a_success_is_none() -> None:
    assert p99_latency_ms([bad(0), bad(1)], 0, 3) is None


# --- RTO --------------------------------------------------------------------------------


def test_rto_is_the_longest_gap_between_successes() -> None:
    samples = [ok(0), ok(1), bad(2), bad(3), bad(4), ok(5.5), ok(6)]
    # successes arrive at 0.01, 1.01, 5.51, 6.01; the window is [0, 7]
    assert rto_seconds(samples, 0, 7) == pytest.approx(4.5)


def test_rto_counts_from_the_window_start_to_the_first_success() -> None:
    samples = [bad(0), bad(1), ok(3.0), ok(3.5)]
    assert rto_seconds(samples, 0, 4) == pytest.approx(3.01)


def test_rto_counts_from_the_last_success_to_the_window_end() -> None:
    samples = [ok(0), ok(0.5), bad(1), bad(2)]
    assert rto_seconds(samples, 0, 10) == pytest.approx(10 - 0.51)


def test_rto_of_a_window_without_success_is_the_whole_window() -> None:
    assert rto_seconds([bad(1), bad(2)], 0, 40) == 40


def test_rto_of_a_window_without_requests_is_none() -> None:
    assert rto_seconds([ok(50)], 0, 40) is None


def test_rto_success_time_is_when_the_answer_arrives() -> None:
    # Sent at 1, answered 1.9 s later: the client saw the service up only at 2.9.
    samples = [ok(0, latency=0.0), ok(1, latency=1.9), ok(3, latency=0.0)]
    assert rto_seconds(samples, 0, 3) == pytest.approx(2.9)


def test_rto_ignores_answers_after_the_window_end() -> None:
    samples = [ok(0, latency=0), ok(3.9, latency=0.5)]
    assert rto_seconds(samples, 0, 4) == pytest.approx(4.0)


def test_rto_of_a_healthy_window_is_the_request_spacing() -> None:
    assert rto_seconds(steady(0, 10, every=0.05), 0, 10) == pytest.approx(0.05, abs=1e-6)


# --- the active cluster -----------------------------------------------------------------


def test_cluster_runs_collapse_repeats_in_answer_order() -> None:
    samples = [ok(0, "primary"), ok(1, "primary"), bad(2), ok(3, "standby"), ok(4, "standby")]
    assert cluster_runs(samples, 0, 5) == ("primary", "standby")


def test_cluster_runs_order_by_answer_not_by_send() -> None:
    samples = [ok(0, "primary", latency=1.5), ok(1, "standby", latency=0.01)]
    assert cluster_runs(samples, 0, 5) == ("standby", "primary")


def test_cluster_runs_skip_answers_without_a_cluster() -> None:
    assert cluster_runs([ok(0, None), ok(1, "standby")], 0, 5) == ("standby",)


def test_reached_and_stayed() -> None:
    assert reached_and_stayed(("primary", "standby"), "standby")
    assert reached_and_stayed(("standby",), "standby")
    assert not reached_and_stayed(("standby", "primary"), "standby")
    assert not reached_and_stayed(("primary", "standby", "primary", "standby"), "standby")
    assert not reached_and_stayed((), "standby")


def test_measure_step_gathers_everything() -> None:
    samples = [*steady(0, 5, "primary"), bad(5), bad(6), *steady(8, 10, "standby"), ok(11)]
    measured = measure_step(samples, 0, 10)
    assert (measured.sent, measured.failed, measured.succeeded) == (16, 2, 14)
    assert measured.error_ratio == pytest.approx(2 / 16)
    assert measured.rto_seconds == pytest.approx(8.01 - 4.51)
    assert measured.active_cluster == "standby"
    assert measured.cluster_runs == ("primary", "standby")
    assert measured.p99_latency_ms == pytest.approx(10.0)


# --- a step's expectations --------------------------------------------------------------


def failover_samples() -> list[ProbeSample]:
    # primary answers until 5, nothing until 9, then the standby.
    return [*steady(0, 5, "primary"), bad(5), bad(6), bad(7), *steady(9, 40, "standby")]


def test_failover_within_its_rto_passes_with_its_figures() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY, max_rto_seconds=10)
    result = assess_step(expect, measure_step(failover_samples(), 0, 40), ROLES)
    assert (result.phase, result.reason) == (Phase.PASSED, "ExpectationsMet")
    assert "RTO 4.5 s" in result.message
    assert "active cluster standby" in result.message


def test_rto_over_its_max_fails_with_measured_and_limit() -> None:
    expect = StepExpectation(max_rto_seconds=3)
    result = assess_step(expect, measure_step(failover_samples(), 0, 40), ROLES)
    assert (result.phase, result.reason) == (Phase.FAILED, "ExpectationFailed")
    assert "RTO 4.5 s > max 3 s" in result.message


def test_rto_equal_to_its_max_passes() -> None:
    samples = [ok(0, latency=0), ok(3, latency=0), ok(4, latency=0)]
    result = assess_step(StepExpectation(max_rto_seconds=3), measure_step(samples, 0, 4), ROLES)
    assert result.phase is Phase.PASSED


def test_error_ratio_over_its_max_fails() -> None:
    samples = [*steady(0, 10), bad(10), bad(10.5)]
    result = assess_step(StepExpectation(max_error_ratio=0.02), measure_step(samples, 0, 11), ROLES)
    assert result.phase is Phase.FAILED
    assert "error ratio 0.091 (2 of 22 failed) > max 0.02" in result.message


def test_error_ratio_zero_max_allows_no_failure() -> None:
    samples = [*steady(0, 10), bad(10)]
    expect = StepExpectation(max_error_ratio=0.0)
    assert assess_step(expect, measure_step(samples, 0, 11), ROLES).phase is Phase.FAILED
    assert assess_step(expect, measure_step(steady(0, 10), 0, 11), ROLES).phase is Phase.PASSED


def test_p99_over_its_max_fails() -> None:
    samples = [ok(i, latency=0.8) for i in range(5)]
    expect = StepExpectation(max_p99_latency_ms=500)
    result = assess_step(expect, measure_step(samples, 0, 5), ROLES)
    assert result.phase is Phase.FAILED
    assert "p99 latency 800 ms > max 500 ms" in result.message


def test_p99_limit_with_no_success_fails_not_passes() -> None:
    expect = StepExpectation(max_p99_latency_ms=500)
    result = assess_step(expect, measure_step([bad(0), bad(1)], 0, 5), ROLES)
    assert result.phase is Phase.FAILED
    assert "none of 2 probe requests succeeded" in result.message


def test_a_window_without_probe_traffic_is_inconclusive_never_passed() -> None:
    for expect in (StepExpectation(), StepExpectation(max_error_ratio=1.0)):
        result = assess_step(expect, measure_step([], 0, 10), ROLES)
        assert (result.phase, result.reason) == (Phase.INCONCLUSIVE, "NoProbeTraffic")


def test_every_miss_is_reported() -> None:
    expect = StepExpectation(max_rto_seconds=1, max_error_ratio=0.01)
    result = assess_step(expect, measure_step(failover_samples(), 0, 40), ROLES)
    assert "RTO 4.5 s > max 1 s" in result.message
    assert "error ratio" in result.message and "> max 0.01" in result.message


def test_standby_expected_but_primary_still_serves_fails() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY)
    result = assess_step(expect, measure_step(steady(0, 10, "primary"), 0, 10), ROLES)
    assert result.phase is Phase.FAILED
    assert "activeCluster standby not reached: primary served at the end" in result.message


def test_reaching_the_standby_and_flapping_back_fails() -> None:
    samples = [*steady(0, 3, "primary"), *steady(3, 6, "standby"), *steady(6, 8, "primary")]
    samples += steady(8, 10, "standby")
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY)
    result = assess_step(expect, measure_step(samples, 0, 10), ROLES)
    assert result.phase is Phase.FAILED
    assert "did not stay" in result.message
    assert "primary → standby → primary → standby" in result.message


def test_unchanged_is_relative_to_the_active_cluster_at_the_step_start() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.UNCHANGED)
    on_standby = Roles(primary="primary", standby="standby", active_at_start="standby")
    measured = measure_step(steady(0, 10, "standby"), 0, 10)
    assert assess_step(expect, measured, on_standby).phase is Phase.PASSED
    result = assess_step(expect, measured, ROLES)
    assert result.phase is Phase.FAILED
    assert "activeCluster unchanged (primary)" in result.message


def test_unchanged_with_an_unknown_start_is_inconclusive() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.UNCHANGED)
    roles = Roles(primary="primary", standby="standby", active_at_start=None)
    result = assess_step(expect, measure_step(steady(0, 10), 0, 10), roles)
    assert result.phase is Phase.INCONCLUSIVE


def test_role_names_map_to_member_cluster_names() -> None:
    roles = Roles(primary="eu-west", standby="eu-north", active_at_start="eu-west")
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY)
    measured = measure_step(steady(0, 10, "eu-north"), 0, 10)
    assert assess_step(expect, measured, roles).phase is Phase.PASSED
    measured = measure_step(steady(0, 10, "eu-west"), 0, 10)
    assert assess_step(expect, measured, roles).phase is Phase.FAILED


def test_no_success_at_all_fails_a_cluster_expectation() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY)
    result = assess_step(expect, measure_step([bad(0), bad(2)], 0, 10), ROLES)
    assert result.phase is Phase.FAILED
    assert "no cluster served" in result.message


def test_answers_that_do_not_name_their_cluster_are_inconclusive_for_it() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY)
    result = assess_step(expect, measure_step(steady(0, 10, cluster=None), 0, 10), ROLES)
    assert (result.phase, result.reason) == (Phase.INCONCLUSIVE, "ActiveClusterUnknown")


def test_a_miss_wins_over_an_unknown() -> None:
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY, max_error_ratio=0.0)
    samples = [*steady(0, 10, cluster=None), bad(10)]
    assert assess_step(expect, measure_step(samples, 0, 11), ROLES).phase is Phase.FAILED


def test_the_active_cluster_the_engine_observed_is_used() -> None:
    # The engine may fill active_cluster from elsewhere when the answers do not name it.
    measured = StepMeasured(
        sent=10,
        failed=0,
        succeeded_unnamed=10,
        error_ratio=0.0,
        rto_seconds=0.5,
        p99_latency_ms=5.0,
        active_cluster="standby",
        cluster_runs=(),
    )
    expect = StepExpectation(active_cluster=ExpectedCluster.STANDBY)
    assert assess_step(expect, measured, ROLES).phase is Phase.PASSED


# --- steady state -----------------------------------------------------------------------


def test_steady_state_met() -> None:
    result = assess_steady_state(steady(0, 5), 0, 5, 0.0, before_faults=True)
    assert (result.phase, result.reason, result.error_ratio) == (Phase.PASSED, "SteadyStateMet", 0)


def test_steady_state_not_met_before_the_faults_is_error() -> None:
    result = assess_steady_state([*steady(0, 5), bad(4.9)], 0, 5, 0.0, before_faults=True)
    assert (result.phase, result.reason) == (Phase.ERROR, "SteadyStateNotMet")
    assert "1 of 11 failed" in result.message and "before the first fault" in result.message


def test_steady_state_without_traffic_before_the_faults_is_error() -> None:
    result = assess_steady_state([], 0, 5, 0.5, before_faults=True)
    assert (result.phase, result.reason) == (Phase.ERROR, "SteadyStateNotMet")


def test_not_recovering_after_the_last_step_is_failed() -> None:
    result = assess_steady_state([bad(0), ok(1)], 0, 5, 0.0, before_faults=False)
    assert (result.phase, result.reason) == (Phase.FAILED, "NotRecovered")


def test_no_traffic_after_the_last_step_is_inconclusive() -> None:
    result = assess_steady_state([], 0, 5, 0.0, before_faults=False)
    assert result.phase is Phase.INCONCLUSIVE


def test_steady_state_tolerates_up_to_its_max() -> None:
    samples = [*steady(0, 4.5), bad(4.6)]  # 1 of 10
    assert assess_steady_state(samples, 0, 5, 0.1, before_faults=True).phase is Phase.PASSED
    assert assess_steady_state(samples, 0, 5, 0.09, before_faults=True).phase is Phase.ERROR


# --- abort conditions -------------------------------------------------------------------


def test_abort_holds_over_its_max_in_the_last_window() -> None:
    samples = [*steady(0, 10), *[bad(10 + i * 0.5) for i in range(20)]]
    check = abort_due("everything-failing", samples, window_seconds=10, max_error_ratio=0.9, now=20)
    assert check.state is AbortState.HOLDS and check.holds
    assert "'everything-failing' holds" in check.message
    assert "error ratio 1 (20 of 20 failed) over the last 10 s > max 0.9" in check.message


def test_abort_only_looks_at_the_last_window() -> None:
    samples = [*[bad(i * 0.5) for i in range(20)], *steady(10, 20)]
    check = abort_due("x", samples, window_seconds=5, max_error_ratio=0.9, now=20)
    assert check.state is AbortState.CLEAR and not check.holds


def test_abort_at_exactly_its_max_does_not_hold() -> None:
    samples = [bad(1), ok(2)]
    assert abort_due("x", samples, window_seconds=5, max_error_ratio=0.5, now=3).state is (
        AbortState.CLEAR
    )


def test_abort_without_samples_cannot_be_evaluated() -> None:
    check = abort_due("x", [ok(0)], window_seconds=5, max_error_ratio=0.5, now=30)
    assert check.state is AbortState.UNKNOWN
    assert "no probe request in the last 5 s" in check.message


def test_abort_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        abort_due("x", [], window_seconds=0, max_error_ratio=0.5, now=3)


# --- figures as people read them --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(4.2, "4.2"), (3, "3"), (10.0, "10"), (0.0, "0"), (0.02, "0.02"), (812.4, "812")],
)
def test_fmt(value: float, text: str) -> None:
    assert fmt(value) == text


# --- activeClusters and minReplicas (active-active) ---------------------------------------


def interleaved(start: float, end: float) -> list[ProbeSample]:
    """Both clusters answering in turn, a request every 0.5 s."""
    return [
        ok(start + i * 0.5, ("primary", "standby")[i % 2]) for i in range(int((end - start) * 2))
    ]


def test_answering_clusters_are_those_of_the_windows_last_seconds() -> None:
    # Both until 20 s, then only the standby: at the end one answers.
    samples = interleaved(0, 20) + steady(20, 30, cluster="standby")
    assert measure_step(samples, 0, 30).answering == ("standby",)
    assert measure_step(samples, 0, 20).answering == ("primary", "standby")
    # A window shorter than the tail: all of it.
    assert measure_step(interleaved(0, 3), 0, 3).answering == ("primary", "standby")


def test_active_clusters_both_passes_when_both_answer_at_the_end() -> None:
    measured = measure_step(interleaved(0, 30), 0, 30)
    result = assess_step(StepExpectation(active_clusters="both"), measured, ROLES)
    assert result.phase is Phase.PASSED, result
    assert "answering at the end: primary, standby" in result.message


def test_active_clusters_both_fails_when_one_carries_everything() -> None:
    samples = interleaved(0, 20) + steady(20, 30, cluster="standby")
    result = assess_step(
        StepExpectation(active_clusters="both"), measure_step(samples, 0, 30), ROLES
    )
    assert result.phase is Phase.FAILED and result.reason == "ExpectationFailed"
    assert "activeClusters both not reached: answering at the end standby" in result.message
    one = assess_step(StepExpectation(active_clusters="one"), measure_step(samples, 0, 30), ROLES)
    assert one.phase is Phase.PASSED, one


def test_active_clusters_without_named_answers_is_inconclusive_and_without_answers_fails() -> None:
    unnamed = steady(0, 30, cluster=None)
    result = assess_step(
        StepExpectation(active_clusters="one"), measure_step(unnamed, 0, 30), ROLES
    )
    assert result.phase is Phase.INCONCLUSIVE, result
    failed = [bad(i * 0.5) for i in range(60)]
    result = assess_step(StepExpectation(active_clusters="one"), measure_step(failed, 0, 30), ROLES)
    assert result.phase is Phase.FAILED and "no cluster served" in result.message


def test_min_replicas_is_checked_per_role_and_unknown_when_unread() -> None:
    measured = measure_step(steady(0, 10), 0, 10)
    expect = StepExpectation(min_replicas={"standby": 2})
    have_one = replace(measured, ready_replicas={"primary": 2, "standby": 1})
    result = assess_step(expect, have_one, ROLES)
    assert result.phase is Phase.FAILED and "standby ready replicas 1 < min 2" in result.message
    have_two = replace(measured, ready_replicas={"primary": 2, "standby": 2})
    passed = assess_step(expect, have_two, ROLES)
    assert passed.phase is Phase.PASSED and "ready replicas primary 2, standby 2" in passed.message
    assert assess_step(expect, measured, ROLES).phase is Phase.INCONCLUSIVE
