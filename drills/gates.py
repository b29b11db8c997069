"""Prometheus gates: one measurement from one query, and a gate's phase from its measurements.

Argo Rollouts' analysis model (interval, count, successCondition/failureCondition,
failureLimit, inconclusiveLimit, consecutiveErrorLimit) without its false successes
(argo-rollouts #4479, #4393, #2158, #1329), as DRILLS.md fixes:

- an empty result, a NaN sample, an unreachable Prometheus, a 5xx or a timeout is an
  Inconclusive measurement (the evidence is missing), decided before any condition runs, so
  `result[0] > 0` never meets an empty list and `result.all(x, x < 1)` never passes on one;
- a query Prometheus rejects, or a condition that does not evaluate, is an Error measurement
  (the gate is wrong);
- a gate is Passed only once it took at least one Successful measurement and exceeded no
  limit; a gate whose windows ended without one is never Passed.

Everything here is pure: the engine does the HTTP and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from modeldr.api.phase import Phase
from modeldr.drills.conditions import CompiledCondition, ConditionEvalError
from modeldr.drills.probe_stats import AbortCheck, AbortState
from modeldr.kube.promql import QueryOutcome, QueryRejected, QueryUnavailable

# What status keeps: the newest measurements of a gate, and the first values of each.
MAX_MEASUREMENTS_KEPT = 10
MAX_VALUES_KEPT = 10


class MeasurementPhase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


# --- one measurement --------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    phase: MeasurementPhase
    values: tuple[float, ...]  # the first MAX_VALUES_KEPT sample values
    message: str
    at: datetime

    def to_status(self) -> dict[str, str]:
        # Status is JSON, which has no NaN or Inf: values are written as Prometheus does.
        return {
            "phase": str(self.phase),
            "value": format_values(self.values),
            "message": self.message,
            "measuredAt": self.at.isoformat().replace("+00:00", "Z"),
        }


def classify_measurement(
    outcome: QueryOutcome,
    *,
    success: CompiledCondition | None,
    failure: CompiledCondition | None,
    at: datetime,
) -> Measurement:
    """One measurement's phase (Argo's rules, with missing evidence never a success):

    - unavailable → Inconclusive; rejected → Error;
    - empty result or any NaN → Inconclusive, before any condition is evaluated;
    - a condition that does not evaluate → Error;
    - failure condition true → Failed (it wins over the success condition);
    - success condition given: true → Successful; false → Failed when there is no failure
      condition, else Inconclusive (neither holds);
    - only a failure condition, false → Successful;
    - no condition at all: Successful (Argo's "the query returned data"); there is data here.
    """
    if isinstance(outcome, QueryUnavailable):
        return _measured(MeasurementPhase.INCONCLUSIVE, f"no evidence: {outcome.message}", at)
    if isinstance(outcome, QueryRejected):
        return _measured(MeasurementPhase.ERROR, outcome.message, at)
    values = outcome.values
    # Missing evidence is settled before any condition runs (see the module's docstring).
    missing = _missing_evidence(values)
    if missing is not None:
        return _measured(MeasurementPhase.INCONCLUSIVE, missing, at, values)
    try:
        phase, message = _judge_conditions(values, success=success, failure=failure)
    except ConditionEvalError as exc:
        return _measured(MeasurementPhase.ERROR, str(exc), at, values)
    return _measured(phase, message, at, values)


def _measured(
    phase: MeasurementPhase, message: str, at: datetime, values: Sequence[float] = ()
) -> Measurement:
    # Status keeps only the first values: a vector of thousands of series must not bloat it.
    return Measurement(phase, tuple(values[:MAX_VALUES_KEPT]), message, at)


def _missing_evidence(values: tuple[float, ...]) -> str | None:
    """Why the samples are no evidence (an empty result, a NaN among them), else None.

    Prometheus answers an empty vector when the series does not exist (a typo in a label, a
    target not scraped) and NaN for 0/0 (a rate over no requests): neither says the service
    is healthy, so neither may reach a condition that could call it Successful."""
    if not values:
        return "no evidence: the query returned no samples"
    if any(math.isnan(v) for v in values):
        return f"no evidence: the result holds NaN: {format_values(values)}"
    return None


def _judge_conditions(
    values: tuple[float, ...],
    *,
    success: CompiledCondition | None,
    failure: CompiledCondition | None,
) -> tuple[MeasurementPhase, str]:
    """The phase and message of a measurement with evidence, from its conditions.

    Raises ConditionEvalError when either condition does not evaluate. Both are evaluated
    before either is judged, so a broken success condition is an Error even when the failure
    condition holds: a gate that is wrong is reported as wrong, not hidden by the other."""
    failed = failure.evaluate(values) if failure else None
    succeeded = success.evaluate(values) if success else None
    shown = format_values(values)
    if failure and failed:
        return (
            MeasurementPhase.FAILED,
            f"failureCondition {failure.expression!r} holds for {shown}",
        )
    if success:
        if succeeded:
            return (
                MeasurementPhase.SUCCESSFUL,
                f"successCondition {success.expression!r} holds for {shown}",
            )
        if failure is None:
            return (
                MeasurementPhase.FAILED,
                f"successCondition {success.expression!r} does not hold for {shown}",
            )
        # Both conditions given and neither holds: the value is between them, no verdict.
        return (
            MeasurementPhase.INCONCLUSIVE,
            f"neither successCondition {success.expression!r} nor failureCondition"
            f" {failure.expression!r} holds for {shown}",
        )
    if failure:
        return (
            MeasurementPhase.SUCCESSFUL,
            f"failureCondition {failure.expression!r} does not hold for {shown}",
        )
    return MeasurementPhase.SUCCESSFUL, f"the query returned {shown}"


def format_values(values: Sequence[float], total: int | None = None) -> str:
    """`[0.5, NaN, +Inf]`, Prometheus's spelling of the special values."""
    total = len(values) if total is None else total
    shown = ", ".join(_format_value(v) for v in values[:MAX_VALUES_KEPT])
    more = f", … {total} in all" if total > MAX_VALUES_KEPT else ""
    return f"[{shown}{more}]"


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.6g}"


# --- a gate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateTally:
    """A gate's counts over all its measurements (what the limits are judged on) and its
    newest measurements (what status shows). Immutable: record() returns the next tally."""

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    last: tuple[Measurement, ...] = field(default=())

    def record(self, measurement: Measurement) -> GateTally:
        phase = measurement.phase
        return GateTally(
            count=self.count + 1,
            successful=self.successful + (phase is MeasurementPhase.SUCCESSFUL),
            failed=self.failed + (phase is MeasurementPhase.FAILED),
            inconclusive=self.inconclusive + (phase is MeasurementPhase.INCONCLUSIVE),
            error=self.error + (phase is MeasurementPhase.ERROR),
            # Argo's rule: any measurement that is not an Error ends a run of errors.
            consecutive_error=self.consecutive_error + 1 if phase is MeasurementPhase.ERROR else 0,
            last=(*self.last, measurement)[-MAX_MEASUREMENTS_KEPT:],
        )

    @classmethod
    def of(cls, measurements: Sequence[Measurement]) -> GateTally:
        tally = cls()
        for measurement in measurements:
            tally = tally.record(measurement)
        return tally

    def to_status(self) -> dict[str, object]:
        return {
            "count": self.count,
            "successful": self.successful,
            "failed": self.failed,
            "inconclusive": self.inconclusive,
            "error": self.error,
            "consecutiveError": self.consecutive_error,
            "measurements": [m.to_status() for m in self.last],
        }

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> GateTally:
        """The counts back from status (a new leader resumes a gate). Kept measurements are
        not needed to judge limits, so they come back empty of values."""
        last = tuple(
            Measurement(
                phase=MeasurementPhase(m["phase"]),
                values=(),
                message=str(m.get("message", "")),
                at=datetime.fromisoformat(str(m["measuredAt"]).replace("Z", "+00:00")),
            )
            for m in status.get("measurements") or ()
        )
        return cls(
            count=int(status.get("count", 0)),
            successful=int(status.get("successful", 0)),
            failed=int(status.get("failed", 0)),
            inconclusive=int(status.get("inconclusive", 0)),
            error=int(status.get("error", 0)),
            consecutive_error=int(status.get("consecutiveError", 0)),
            last=last[-MAX_MEASUREMENTS_KEPT:],
        )


@dataclass(frozen=True)
class GateAssessment:
    phase: Phase  # Running, or a verdict: Passed, Failed, Error, Inconclusive
    reason: str
    message: str


def assess_gate(
    measurements: GateTally | Sequence[Measurement],
    *,
    count: int | None,
    failure_limit: int = 0,
    inconclusive_limit: int = 0,
    consecutive_error_limit: int = 0,
    windows_over: bool = False,
) -> GateAssessment:
    """The gate's phase now.

    Limits are "more than": failed > failureLimit → Failed; more than consecutiveErrorLimit
    errors in a row → Error; inconclusive > inconclusiveLimit → Inconclusive (checked in the
    run-verdict precedence, Failed before Error before Inconclusive). Otherwise the gate runs
    until `count` measurements were taken (count None: until its windows are over) or its
    windows are over; then it is Passed only with at least one Successful measurement, and
    otherwise takes the worst phase among its measurements (a gate that only ever failed
    within its failureLimit has not passed), or Inconclusive when it took none.
    """
    _check_gate_settings(count, failure_limit, inconclusive_limit, consecutive_error_limit)
    tally = measurements if isinstance(measurements, GateTally) else GateTally.of(measurements)
    last = f"; last: {tally.last[-1].message}" if tally.last else ""
    exceeded = _limit_exceeded(
        tally,
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        consecutive_error_limit=consecutive_error_limit,
        last=last,
    )
    if exceeded is not None:
        return exceeded
    done = windows_over or (count is not None and tally.count >= count)
    if not done:
        wanted = f" of {count}" if count is not None else ""
        return GateAssessment(
            Phase.RUNNING,
            "Measuring",
            f"{tally.count}{wanted} measurements taken: {_summary(tally)}",
        )
    return _gate_verdict(tally, last)


def _check_gate_settings(
    count: int | None, failure_limit: int, inconclusive_limit: int, consecutive_error_limit: int
) -> None:
    """ValueError for settings no gate can have. The plan's model (api.drillplan.Gate)
    refuses them already; this keeps a caller that bypassed it from judging with them."""
    for name, limit in (
        ("failureLimit", failure_limit),
        ("inconclusiveLimit", inconclusive_limit),
        ("consecutiveErrorLimit", consecutive_error_limit),
    ):
        if limit < 0:
            raise ValueError(f"{name} must be >= 0, got {limit}")
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1, got {count}")


def _limit_exceeded(
    tally: GateTally,
    *,
    failure_limit: int,
    inconclusive_limit: int,
    consecutive_error_limit: int,
    last: str,
) -> GateAssessment | None:
    """The verdict of the first limit exceeded, else None. The order is the run verdict's
    precedence (Failed before Error before Inconclusive): a gate over two limits reports the
    worse one."""
    if tally.failed > failure_limit:
        return GateAssessment(
            Phase.FAILED,
            "GateFailed",
            f"{tally.failed} of {tally.count} measurements failed"
            f" (failureLimit {failure_limit}){last}",
        )
    if tally.consecutive_error > consecutive_error_limit:
        return GateAssessment(
            Phase.ERROR,
            "GateError",
            f"{tally.consecutive_error} measurements in a row were errors"
            f" (consecutiveErrorLimit {consecutive_error_limit}){last}",
        )
    if tally.inconclusive > inconclusive_limit:
        return GateAssessment(
            Phase.INCONCLUSIVE,
            "MetricsMissing",
            f"{tally.inconclusive} of {tally.count} measurements were inconclusive"
            f" (inconclusiveLimit {inconclusive_limit}){last}",
        )
    return None


def _gate_verdict(tally: GateTally, last: str) -> GateAssessment:
    """The verdict of a gate that is done within its limits. Passed needs a Successful
    measurement: measurements that all failed, erred or missed evidence within the limits
    are not a pass, and neither is a gate whose windows ended before it measured at all."""
    summary = _summary(tally)
    if tally.successful:
        return GateAssessment(Phase.PASSED, "GatePassed", f"{summary}{last}")
    if tally.count == 0:
        return GateAssessment(
            Phase.INCONCLUSIVE, "MetricsMissing", "no measurement was taken in the gate's windows"
        )
    # The worst phase among the measurements, in the run verdict's precedence.
    if tally.failed:
        return GateAssessment(
            Phase.FAILED, "GateFailed", f"no successful measurement: {summary}{last}"
        )
    if tally.error:
        return GateAssessment(
            Phase.ERROR, "GateError", f"no successful measurement: {summary}{last}"
        )
    return GateAssessment(
        Phase.INCONCLUSIVE, "MetricsMissing", f"no successful measurement: {summary}{last}"
    )


def _summary(tally: GateTally) -> str:
    parts = [
        f"{n} {name}"
        for n, name in (
            (tally.successful, "successful"),
            (tally.failed, "failed"),
            (tally.inconclusive, "inconclusive"),
            (tally.error, "error"),
        )
        if n
    ]
    return f"{tally.count} measurements ({', '.join(parts)})" if parts else "0 measurements"


def next_measurement_at(
    *,
    window_start: float,
    window_end: float | None,
    last_measured_at: float | None,
    taken: int,
    interval_seconds: float,
    count: int | None,
    initial_delay_seconds: float = 0.0,
) -> float | None:
    """When the next measurement is due, on whatever clock the caller passes (seconds), or
    None when the gate needs none: `count` taken, or the next one would fall at or after
    the window's end.

    The first measurement of each window the gate measures in is due initialDelaySeconds
    after the window starts (a fault needs a moment to show in a rate); each later one
    intervalSeconds after the previous one (Argo counts the interval from the last
    measurement, so a slow query delays, never bunches, the next).
    """
    if interval_seconds <= 0:
        raise ValueError(f"intervalSeconds must be > 0, got {interval_seconds}")
    if initial_delay_seconds < 0:
        raise ValueError(f"initialDelaySeconds must be >= 0, got {initial_delay_seconds}")
    if count is not None and taken >= count:
        return None
    if last_measured_at is None or last_measured_at < window_start:
        due = window_start + initial_delay_seconds
    else:
        due = last_measured_at + interval_seconds
    if window_end is not None and due >= window_end:
        return None
    return due


def measurement_due(now: float, due_at: float | None) -> bool:
    return due_at is not None and now >= due_at


# --- an abort condition on Prometheus ---------------------------------------------------


def check_abort_query(name: str, outcome: QueryOutcome, condition: CompiledCondition) -> AbortCheck:
    """An abort condition over a Prometheus query: HOLDS when its condition is true; UNKNOWN
    when it cannot be evaluated (no answer, empty, NaN, a rejected query, a condition that
    does not evaluate), which keeps the run from ending Passed; CLEAR otherwise."""
    if isinstance(outcome, QueryUnavailable | QueryRejected):
        return AbortCheck(AbortState.UNKNOWN, f"abort condition {name!r}: {outcome.message}")
    values = outcome.values
    shown = format_values(values)
    if not values:
        return AbortCheck(AbortState.UNKNOWN, f"abort condition {name!r}: no samples")
    if any(math.isnan(v) for v in values):
        return AbortCheck(AbortState.UNKNOWN, f"abort condition {name!r}: NaN in {shown}")
    try:
        holds = condition.evaluate(values)
    except ConditionEvalError as exc:
        return AbortCheck(AbortState.UNKNOWN, f"abort condition {name!r}: {exc}")
    if holds:
        return AbortCheck(
            AbortState.HOLDS,
            f"abort condition {name!r}: {condition.expression!r} holds for {shown}",
        )
    return AbortCheck(
        AbortState.CLEAR,
        f"abort condition {name!r}: {condition.expression!r} does not hold for {shown}",
    )
