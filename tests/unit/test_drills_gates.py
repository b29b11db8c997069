"""Gates: CEL conditions, one measurement, a gate's phase, the measurement schedule (pure).

The false successes of Argo Rollouts' analysis (empty results, NaN, errors and an unreachable
Prometheus counted as success: argo-rollouts #4479, #4393, #2158, #1329) each have a case
here that must not give Successful or Passed.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from modeldr.api.phase import Phase
from modeldr.drills.conditions import (
    MAX_SAMPLES,
    ConditionError,
    ConditionEvalError,
    compile_condition,
)
from modeldr.drills.gates import (
    MAX_MEASUREMENTS_KEPT,
    GateTally,
    Measurement,
    MeasurementPhase,
    assess_gate,
    check_abort_query,
    classify_measurement,
    format_values,
    measurement_due,
    next_measurement_at,
)
from modeldr.drills.probe_stats import AbortState
from modeldr.kube.promql import (
    QueryRejected,
    QueryUnavailable,
    QueryValues,
    parse_prometheus_response,
)

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
M = MeasurementPhase


def measure(
    outcome: QueryValues | QueryUnavailable | QueryRejected,
    success: str | None = "result[0] > 0",
    failure: str | None = None,
) -> Measurement:
    return classify_measurement(
        outcome,
        success=compile_condition(success) if success else None,
        failure=compile_condition(failure) if failure else None,
        at=AT,
    )


def values(*v: float) -> QueryValues:
    return QueryValues(tuple(v))


def m(phase: MeasurementPhase) -> Measurement:
    return Measurement(phase, (), f"a {phase} measurement", AT)


# --- conditions -------------------------------------------------------------------------


def test_condition_true_and_false() -> None:
    condition = compile_condition("result[0] > 0")
    assert condition.evaluate([1.0]) is True
    assert condition.evaluate([0.0]) is False


def test_condition_over_all_samples() -> None:
    condition = compile_condition("size(result) > 0 && result.all(x, x < 0.05)")
    assert condition.evaluate([0.01, 0.02]) is True
    assert condition.evaluate([0.01, 0.5]) is False


def test_condition_int_literal_compares_with_double_samples() -> None:
    assert compile_condition("result[0] >= 2").evaluate([2.0]) is True


def test_condition_that_does_not_parse_is_refused_with_its_text() -> None:
    with pytest.raises(ConditionError, match="does not parse") as caught:
        compile_condition("result[0] >")
    assert caught.value.expression == "result[0] >"
    assert "does not parse" in caught.value.problem


def test_condition_naming_an_unknown_variable_is_refused_at_compile_time() -> None:
    with pytest.raises(ConditionError, match="unknown name 'results'"):
        compile_condition("results[0] > 0")


def test_macro_variables_are_not_unknown_names_but_typos_inside_macros_are() -> None:
    compile_condition("result.exists(sample, sample > 1.0)")
    with pytest.raises(ConditionError, match="unknown name 'threshold'"):
        compile_condition("result.exists(sample, sample > threshold)")


def test_type_names_are_known() -> None:
    assert compile_condition("type(result[0]) == double").evaluate([1.0]) is True


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_condition_is_refused(text: str) -> None:
    with pytest.raises(ConditionError, match="empty"):
        compile_condition(text)


def test_overlong_condition_is_refused() -> None:
    with pytest.raises(ConditionError, match="longer than"):
        compile_condition("result[0] > 0 && " * 400 + "true")


@pytest.mark.parametrize(
    "text",
    ["result.all(x, result.exists(y, y > x))", "result.exists(x, result.filter(y, y > x) == [])"],
)
def test_a_macro_in_the_body_of_another_is_refused_its_cost_is_quadratic(text: str) -> None:
    with pytest.raises(ConditionError, match="square of the samples"):
        compile_condition(text)


def test_chained_macros_stay_linear_and_are_allowed() -> None:
    condition = compile_condition("result.map(x, x * 2.0).all(y, y < 1.0)")
    assert condition.evaluate([0.1, 0.2]) is True and condition.evaluate([0.6]) is False


def test_a_result_beyond_the_sample_cap_does_not_evaluate() -> None:
    condition = compile_condition("result.all(x, x < 1.0)")
    assert condition.evaluate([0.5] * MAX_SAMPLES) is True
    with pytest.raises(ConditionEvalError, match=f"at most {MAX_SAMPLES}"):
        condition.evaluate([0.5] * (MAX_SAMPLES + 1))


def test_type_error_at_run_time_names_the_expression() -> None:
    condition = compile_condition("result[0] > 'a'")
    with pytest.raises(ConditionEvalError, match=r"result\[0\] > 'a'.*does not evaluate"):
        condition.evaluate([1.0])


@pytest.mark.parametrize("text", ["result", "result[0]", "size(result)"])
def test_condition_that_is_not_a_bool_does_not_evaluate(text: str) -> None:
    with pytest.raises(ConditionEvalError, match="not a bool"):
        compile_condition(text).evaluate([1.0])


def test_index_out_of_range_does_not_evaluate() -> None:
    with pytest.raises(ConditionEvalError, match="out of range"):
        compile_condition("result[1] > 0").evaluate([1.0])


def test_condition_error_message_does_not_dump_celpy_internals() -> None:
    # Undeclared names that slip past the static check (a function) still read shortly.
    condition = compile_condition("result.greatest() > 0")
    with pytest.raises(ConditionEvalError) as caught:
        condition.evaluate([1.0])
    assert "Activation" not in str(caught.value) and len(str(caught.value)) < 400


# --- one measurement: the false successes -----------------------------------------------


def test_empty_result_is_inconclusive_even_for_a_condition_on_result_0() -> None:
    measurement = measure(values())
    assert measurement.phase is M.INCONCLUSIVE
    assert "no samples" in measurement.message


def test_empty_result_is_inconclusive_for_a_vacuously_true_all() -> None:
    # result.all(...) is true on an empty list: the case that passes Argo.
    assert measure(values(), success="result.all(x, x < 0.05)").phase is M.INCONCLUSIVE


def test_empty_result_is_inconclusive_with_only_a_failure_condition() -> None:
    assert measure(values(), success=None, failure="result.exists(x, x > 1)").phase is (
        M.INCONCLUSIVE
    )


def test_nan_sample_is_inconclusive_not_evaluated() -> None:
    # NaN > 0 is false, NaN < 0.05 is false: either way a condition would decide on no data.
    measurement = measure(values(1.0, math.nan), success=None, failure="result[0] > 5")
    assert measurement.phase is M.INCONCLUSIVE
    assert "NaN" in measurement.message


def test_prometheus_unreachable_is_inconclusive() -> None:
    measurement = measure(QueryUnavailable("connection refused"))
    assert measurement.phase is M.INCONCLUSIVE
    assert "connection refused" in measurement.message


def test_no_condition_at_all_still_needs_data() -> None:
    assert measure(values(), success=None).phase is M.INCONCLUSIVE
    assert measure(values(3.0), success=None).phase is M.SUCCESSFUL


def test_rejected_query_is_error() -> None:
    measurement = measure(QueryRejected("bad_data: parse error at char 5"))
    assert measurement.phase is M.ERROR
    assert "parse error" in measurement.message


def test_condition_type_error_is_error_not_success() -> None:
    assert measure(values(1.0), success="result[0] > 'a'").phase is M.ERROR


def test_condition_index_out_of_range_on_non_empty_result_is_error() -> None:
    assert measure(values(1.0), success="result[1] > 0").phase is M.ERROR


# --- one measurement: the conditions ----------------------------------------------------


def test_success_condition_true_is_successful() -> None:
    measurement = measure(values(3.5))
    assert measurement.phase is M.SUCCESSFUL
    assert measurement.values == (3.5,)
    assert measurement.at == AT
    assert "[3.5]" in measurement.message


def test_success_condition_false_without_failure_condition_is_failed() -> None:
    measurement = measure(values(0.0))
    assert measurement.phase is M.FAILED
    assert "does not hold for [0]" in measurement.message


def test_failure_condition_true_is_failed_even_when_success_holds() -> None:
    measurement = measure(values(10.0), success="result[0] > 0", failure="result[0] > 5")
    assert measurement.phase is M.FAILED
    assert "failureCondition" in measurement.message


def test_neither_condition_holding_is_inconclusive() -> None:
    outcome = values(3.0)
    assert measure(outcome, success="result[0] > 5", failure="result[0] < 1").phase is (
        M.INCONCLUSIVE
    )


def test_both_conditions_success_holds_failure_does_not() -> None:
    assert measure(values(7.0), success="result[0] > 5", failure="result[0] < 1").phase is (
        M.SUCCESSFUL
    )


def test_only_failure_condition_false_is_successful() -> None:
    assert measure(values(0.5), success=None, failure="result[0] > 1").phase is M.SUCCESSFUL
    assert measure(values(2.0), success=None, failure="result[0] > 1").phase is M.FAILED


def test_infinity_is_a_value_the_condition_judges() -> None:
    # +Inf is a real answer (a histogram quantile in the +Inf bucket), not missing evidence.
    assert measure(values(math.inf), success="result[0] < 0.5").phase is M.FAILED


def test_measurement_keeps_a_bounded_number_of_values() -> None:
    measurement = measure(values(*range(1, 50)), success="size(result) == 49")
    assert measurement.phase is M.SUCCESSFUL
    assert len(measurement.values) == 10
    assert "49 in all" in measurement.message


def test_measurement_status_spells_special_values_as_prometheus_does() -> None:
    status = Measurement(M.INCONCLUSIVE, (math.nan, math.inf, 0.25), "x", AT).to_status()
    assert status == {
        "phase": "Inconclusive",
        "value": "[NaN, +Inf, 0.25]",
        "message": "x",
        "measuredAt": "2025-01-02T03:04:05Z",
    }
    json.dumps(status, allow_nan=False)


def test_format_values_of_negative_infinity() -> None:
    assert format_values([-math.inf]) == "[-Inf]"


# --- Prometheus answers -----------------------------------------------------------------


def vector_body(*samples: str) -> str:
    result = [{"metric": {"cluster": "standby"}, "value": [1700000000.1, s]} for s in samples]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def test_vector_answer_gives_its_values() -> None:
    assert parse_prometheus_response(200, vector_body("1.5", "0")) == values(1.5, 0.0)


def test_empty_vector_gives_no_values() -> None:
    assert parse_prometheus_response(200, vector_body()) == values()


def test_special_sample_values_are_read() -> None:
    outcome = parse_prometheus_response(200, vector_body("NaN", "+Inf", "-Inf"))
    assert isinstance(outcome, QueryValues)
    assert math.isnan(outcome.values[0]) and outcome.values[1:] == (math.inf, -math.inf)


def test_scalar_answer_gives_one_value() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}})
    assert parse_prometheus_response(200, body.encode()) == values(3.0)


def test_bad_data_is_a_rejected_query() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"})
    outcome = parse_prometheus_response(400, body)
    assert isinstance(outcome, QueryRejected)
    assert "bad_data: parse error" in outcome.message


def test_execution_error_is_a_rejected_query() -> None:
    body = json.dumps({"status": "error", "errorType": "execution", "error": "many-to-many"})
    assert isinstance(parse_prometheus_response(422, body), QueryRejected)


@pytest.mark.parametrize(
    ("code", "error_type"), [(503, "timeout"), (503, "unavailable"), (500, "internal")]
)
def test_server_side_errors_are_unavailable(code: int, error_type: str) -> None:
    body = json.dumps({"status": "error", "errorType": error_type, "error": "busy"})
    assert isinstance(parse_prometheus_response(code, body), QueryUnavailable)


def test_a_server_error_is_unavailable_whatever_its_error_type() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "from a proxy"})
    assert isinstance(parse_prometheus_response(502, body), QueryUnavailable)


@pytest.mark.parametrize(
    ("code", "body"), [(502, "<html>Bad Gateway</html>"), (200, ""), (404, "")]
)
def test_an_answer_that_is_not_prometheus_json_is_unavailable(code: int, body: str) -> None:
    assert isinstance(parse_prometheus_response(code, body), QueryUnavailable)


def test_range_vector_is_a_rejected_query() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})
    outcome = parse_prometheus_response(200, body)
    assert isinstance(outcome, QueryRejected) and "matrix" in outcome.message


def test_malformed_vector_is_unavailable_not_values() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{}]}})
    assert isinstance(parse_prometheus_response(200, body), QueryUnavailable)


# --- a gate -----------------------------------------------------------------------------


def test_gate_with_enough_successful_measurements_passes() -> None:
    result = assess_gate([m(M.SUCCESSFUL)] * 4, count=4)
    assert (result.phase, result.reason) == (Phase.PASSED, "GatePassed")
    assert "4 measurements (4 successful)" in result.message


def test_gate_runs_until_count_measurements() -> None:
    result = assess_gate([m(M.SUCCESSFUL)] * 3, count=4)
    assert result.phase is Phase.RUNNING
    assert "3 of 4" in result.message


def test_gate_without_measurements_is_running_then_inconclusive() -> None:
    assert assess_gate([], count=4).phase is Phase.RUNNING
    result = assess_gate([], count=4, windows_over=True)
    assert (result.phase, result.reason) == (Phase.INCONCLUSIVE, "MetricsMissing")


def test_failed_measurement_over_default_limit_fails_the_gate_at_once() -> None:
    result = assess_gate([m(M.SUCCESSFUL), m(M.FAILED)], count=4)
    assert (result.phase, result.reason) == (Phase.FAILED, "GateFailed")
    assert "1 of 2 measurements failed (failureLimit 0)" in result.message


def test_failures_within_the_limit_do_not_fail_the_gate() -> None:
    ms = [m(M.FAILED), m(M.SUCCESSFUL), m(M.FAILED), m(M.SUCCESSFUL)]
    assert assess_gate(ms, count=4, failure_limit=2).phase is Phase.PASSED
    assert assess_gate([*ms, m(M.FAILED)], count=5, failure_limit=2).phase is Phase.FAILED


def test_inconclusive_over_the_limit_is_inconclusive() -> None:
    result = assess_gate([m(M.SUCCESSFUL), m(M.INCONCLUSIVE)], count=4)
    assert (result.phase, result.reason) == (Phase.INCONCLUSIVE, "MetricsMissing")
    assert "inconclusiveLimit 0" in result.message


def test_inconclusive_within_the_limit_still_needs_a_success() -> None:
    ms = [m(M.INCONCLUSIVE), m(M.INCONCLUSIVE)]
    result = assess_gate(ms, count=2, inconclusive_limit=2)
    assert result.phase is Phase.INCONCLUSIVE
    assert "no successful measurement" in result.message
    assert assess_gate([*ms, m(M.SUCCESSFUL)], count=3, inconclusive_limit=2).phase is (
        Phase.PASSED
    )


def test_every_measurement_empty_never_passes() -> None:
    # The Argo false success, end to end: an empty result each time, a limit that tolerates it.
    empty = measure(values())
    result = assess_gate([empty] * 4, count=4, inconclusive_limit=10)
    assert result.phase is Phase.INCONCLUSIVE
    assert "no samples" in result.message


def test_prometheus_down_the_whole_run_never_passes() -> None:
    down = measure(QueryUnavailable("timed out after 2 s"))
    result = assess_gate([down] * 2, count=None, inconclusive_limit=5, windows_over=True)
    assert result.phase is Phase.INCONCLUSIVE


def test_one_error_is_more_than_the_default_consecutive_error_limit() -> None:
    result = assess_gate([m(M.SUCCESSFUL), m(M.ERROR)], count=4)
    assert (result.phase, result.reason) == (Phase.ERROR, "GateError")
    assert "consecutiveErrorLimit 0" in result.message


def test_errors_count_only_in_a_row() -> None:
    ms = [m(M.ERROR), m(M.ERROR), m(M.SUCCESSFUL), m(M.ERROR), m(M.ERROR)]
    assert assess_gate(ms, count=6, consecutive_error_limit=2).phase is Phase.RUNNING
    assert assess_gate([*ms, m(M.ERROR)], count=7, consecutive_error_limit=2).phase is (Phase.ERROR)


def test_only_errors_within_the_limit_end_in_error_not_passed() -> None:
    ms = [m(M.ERROR), m(M.INCONCLUSIVE)]
    result = assess_gate(ms, count=2, consecutive_error_limit=1, inconclusive_limit=1)
    assert (result.phase, result.reason) == (Phase.ERROR, "GateError")


def test_only_failures_within_the_limit_end_failed_not_passed() -> None:
    result = assess_gate([m(M.FAILED)] * 2, count=2, failure_limit=3)
    assert (result.phase, result.reason) == (Phase.FAILED, "GateFailed")
    assert "no successful measurement" in result.message


def test_failed_wins_over_error_and_inconclusive() -> None:
    result = assess_gate([m(M.INCONCLUSIVE), m(M.ERROR), m(M.FAILED)], count=4)
    assert result.phase is Phase.FAILED


def test_error_wins_over_inconclusive() -> None:
    assert assess_gate([m(M.INCONCLUSIVE), m(M.ERROR)], count=4).phase is Phase.ERROR


def test_gate_without_count_runs_until_its_windows_are_over() -> None:
    ms = [m(M.SUCCESSFUL)] * 20
    assert assess_gate(ms, count=None).phase is Phase.RUNNING
    assert assess_gate(ms, count=None, windows_over=True).phase is Phase.PASSED


def test_windows_over_before_count_with_a_success_passes() -> None:
    assert assess_gate([m(M.SUCCESSFUL)], count=4, windows_over=True).phase is Phase.PASSED


def test_gate_message_names_the_last_measurement() -> None:
    last = measure(values(0.0))
    result = assess_gate([m(M.SUCCESSFUL), last], count=4)
    assert last.message in result.message


@pytest.mark.parametrize("which", range(3))
def test_negative_limits_are_refused(which: int) -> None:
    limits = [0, 0, 0]
    limits[which] = -1
    failure, inconclusive, consecutive_error = limits
    with pytest.raises(ValueError, match="must be >= 0"):
        assess_gate(
            [],
            count=1,
            failure_limit=failure,
            inconclusive_limit=inconclusive,
            consecutive_error_limit=consecutive_error,
        )


def test_zero_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        assess_gate([], count=0)


def test_tally_keeps_the_newest_measurements_but_counts_all() -> None:
    ms = [m(M.SUCCESSFUL)] * 25 + [m(M.FAILED)]
    tally = GateTally.of(ms)
    assert len(tally.last) == MAX_MEASUREMENTS_KEPT
    assert tally.last[-1].phase is M.FAILED
    assert (tally.count, tally.successful, tally.failed) == (26, 25, 1)
    # The limits are judged on the counts, not on the kept window.
    assert assess_gate(tally, count=30, failure_limit=0).phase is Phase.FAILED


def test_tally_consecutive_errors_reset_on_any_other_phase() -> None:
    tally = GateTally.of([m(M.ERROR), m(M.ERROR), m(M.INCONCLUSIVE), m(M.ERROR)])
    assert (tally.error, tally.consecutive_error) == (3, 1)


def test_tally_round_trips_through_status() -> None:
    tally = GateTally.of([measure(values(1.0)), measure(values()), measure(values(0.0))])
    status = tally.to_status()
    json.dumps(status, allow_nan=False)
    back = GateTally.from_status(status)
    assert (back.count, back.successful, back.failed, back.inconclusive) == (3, 1, 1, 1)
    assert [x.phase for x in back.last] == [M.SUCCESSFUL, M.INCONCLUSIVE, M.FAILED]
    assert back.last[0].at == AT


# --- when the next measurement is due ---------------------------------------------------


def test_first_measurement_after_the_initial_delay() -> None:
    due = next_measurement_at(
        window_start=100.0,
        window_end=140.0,
        last_measured_at=None,
        taken=0,
        interval_seconds=5,
        count=4,
        initial_delay_seconds=3,
    )
    assert due == 103.0
    assert not measurement_due(102.9, due)
    assert measurement_due(103.0, due)


def test_next_measurement_an_interval_after_the_last() -> None:
    due = next_measurement_at(
        window_start=100.0,
        window_end=140.0,
        last_measured_at=108.5,
        taken=2,
        interval_seconds=5,
        count=4,
        initial_delay_seconds=3,
    )
    assert due == 113.5


def test_no_measurement_once_count_is_taken() -> None:
    due = next_measurement_at(
        window_start=0, window_end=None, last_measured_at=20, taken=4, interval_seconds=5, count=4
    )
    assert due is None
    assert not measurement_due(1e9, due)


def test_no_measurement_at_or_after_the_window_end() -> None:
    def due(last: float) -> float | None:
        return next_measurement_at(
            window_start=0.0,
            window_end=40.0,
            last_measured_at=last,
            taken=1,
            interval_seconds=5.0,
            count=None,
        )

    assert due(35.0) is None
    assert due(34.9) == pytest.approx(39.9)


def test_a_new_window_starts_with_its_initial_delay_again() -> None:
    due = next_measurement_at(
        window_start=200.0,
        window_end=240.0,
        last_measured_at=150.0,  # measured in an earlier window
        taken=2,
        interval_seconds=5,
        count=None,
        initial_delay_seconds=2,
    )
    assert due == 202.0


def test_schedule_refuses_a_zero_interval() -> None:
    with pytest.raises(ValueError, match="intervalSeconds"):
        next_measurement_at(
            window_start=0,
            window_end=None,
            last_measured_at=None,
            taken=0,
            interval_seconds=0,
            count=1,
        )


# --- abort conditions on Prometheus -----------------------------------------------------


def test_abort_query_holds_when_its_condition_is_true() -> None:
    check = check_abort_query("errors", values(0.7), compile_condition("result[0] > 0.5"))
    assert check.state is AbortState.HOLDS and check.holds
    assert "'errors'" in check.message


def test_abort_query_clear_when_false() -> None:
    check = check_abort_query("errors", values(0.1), compile_condition("result[0] > 0.5"))
    assert check.state is AbortState.CLEAR and not check.holds


@pytest.mark.parametrize(
    "outcome",
    [
        QueryValues(()),
        QueryValues((math.nan,)),
        QueryUnavailable("connection refused"),
        QueryRejected("bad_data"),
    ],
)
def test_abort_query_without_evidence_is_unknown(
    outcome: QueryValues | QueryUnavailable | QueryRejected,
) -> None:
    check = check_abort_query("errors", outcome, compile_condition("result[0] > 0.5"))
    assert check.state is AbortState.UNKNOWN


def test_abort_query_whose_condition_does_not_evaluate_is_unknown() -> None:
    check = check_abort_query("errors", values(1.0), compile_condition("result[0] > 'x'"))
    assert check.state is AbortState.UNKNOWN
