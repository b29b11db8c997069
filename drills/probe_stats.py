"""What clients saw: step measurements from the traffic probe's samples, and their assessment
against a step's `expect`, the steady state and probe-based abort conditions. Pure.

Definitions (DRILLS.md leaves the fine print to us):

- A sample belongs to a window when it was *sent* in [start, end): a request sent just before
  a step ends counts for that step even if it is answered after.
- A success happens when its answer *arrives* (sent_at + latency): that is when a client
  knows the service is up again.
- errorRatio: failed / sent over the samples of the window (None when none was sent).
- p99LatencyMs: nearest-rank 99th percentile (the ceil(0.99·n)-th smallest) of the latencies
  of the window's successful requests; None when none succeeded. Failed requests are not
  latencies (a timeout's latency is the client's timeout, not the service's).
- rtoSeconds: the longest stretch inside [start, end] with no successful answer: the largest
  gap between consecutive successes arriving in the window, counting start → first success
  and last success → end. A window with samples and no success at all: the whole window.
  A window in which no request was sent: None (no evidence, never 0).
- activeCluster: the cluster that gave the window's last successful answer.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from modeldr.api.phase import Phase


@dataclass(frozen=True)
class ProbeSample:
    sent_at: float  # seconds on the probe's monotonic clock
    latency: float  # seconds until the answer (or the failure)
    ok: bool
    cluster: str | None = None  # the member cluster that answered, when it said so
    error: str | None = None
    # Which of the probe's inputs it sent, and the label answered (a classifier's answer);
    # judged against the baseline by drills/answers.py.
    input_index: int | None = None
    answer: str | None = None

    @property
    def answered_at(self) -> float:
        return self.sent_at + self.latency


def in_window(samples: Iterable[ProbeSample], start: float, end: float) -> list[ProbeSample]:
    return [s for s in samples if start <= s.sent_at < end]


def error_ratio(samples: Iterable[ProbeSample], start: float, end: float) -> float | None:
    window = in_window(samples, start, end)
    if not window:
        return None
    return sum(1 for s in window if not s.ok) / len(window)


def p99_latency_ms(samples: Iterable[ProbeSample], start: float, end: float) -> float | None:
    latencies = sorted(s.latency for s in in_window(samples, start, end) if s.ok)
    if not latencies:
        return None
    rank = math.ceil(0.99 * len(latencies))  # nearest rank, 1-based
    return latencies[rank - 1] * 1000.0


def rto_seconds(samples: Iterable[ProbeSample], start: float, end: float) -> float | None:
    window = in_window(samples, start, end)
    if not window:
        return None
    arrivals = sorted(s.answered_at for s in window if s.ok and s.answered_at <= end)
    points = [start, *arrivals, end]
    return max(b - a for a, b in itertools.pairwise(points))


def cluster_runs(samples: Iterable[ProbeSample], start: float, end: float) -> tuple[str, ...]:
    """The clusters that answered successfully, in the order of their answers, repeats
    collapsed: ("primary", "standby") for a clean failover, ("primary", "standby",
    "primary", "standby") for a flap. Answers that did not name a cluster are skipped."""
    answers = sorted(
        (s for s in in_window(samples, start, end) if s.ok and s.cluster),
        key=lambda s: s.answered_at,
    )
    runs: list[str] = []
    for sample in answers:
        assert sample.cluster is not None
        if not runs or runs[-1] != sample.cluster:
            runs.append(sample.cluster)
    return tuple(runs)


# activeClusters is judged on the answers of the window's last seconds: by then a cluster
# that lost its weight no longer answers, one that got it back does again.
ANSWERING_TAIL_S = 5.0


def answering_clusters(samples: Iterable[ProbeSample], start: float, end: float) -> tuple[str, ...]:
    """The clusters that answered successfully in the window's last ANSWERING_TAIL_S (the
    whole window when it is shorter), sorted."""
    tail = max(start, end - ANSWERING_TAIL_S)
    return tuple(sorted({s.cluster for s in in_window(samples, tail, end) if s.ok and s.cluster}))


@dataclass(frozen=True)
class StepMeasured:
    sent: int
    failed: int
    succeeded_unnamed: int  # successful answers that did not say which cluster served them
    error_ratio: float | None
    rto_seconds: float | None
    p99_latency_ms: float | None
    active_cluster: str | None  # who gave the last successful answer that named a cluster
    cluster_runs: tuple[str, ...]
    # The answers judged against the baseline (drills/answers.py); unset: not judged.
    judged: int = 0
    wrong: int = 0
    wrong_answer_ratio: float | None = None
    time_to_correct_seconds: float | None = None
    answering: tuple[str, ...] = ()  # answering_clusters of the window
    # Ready replicas per role at the step's end; None: not read.
    ready_replicas: dict[str, int] | None = None

    @property
    def succeeded(self) -> int:
        return self.sent - self.failed


def measure_step(samples: Sequence[ProbeSample], start: float, end: float) -> StepMeasured:
    """A step's window is from its start to the next step's start (or the run's final
    steady state)."""
    window = in_window(samples, start, end)
    runs = cluster_runs(window, start, end)
    return StepMeasured(
        sent=len(window),
        failed=sum(1 for s in window if not s.ok),
        succeeded_unnamed=sum(1 for s in window if s.ok and not s.cluster),
        error_ratio=error_ratio(window, start, end),
        rto_seconds=rto_seconds(window, start, end),
        p99_latency_ms=p99_latency_ms(window, start, end),
        active_cluster=runs[-1] if runs else None,
        cluster_runs=runs,
        answering=answering_clusters(window, start, end),
    )


def reached_and_stayed(runs: Sequence[str], cluster: str) -> bool:
    """The answers reached `cluster` and none came from elsewhere afterwards: it is the last
    run and appears in no earlier one (primary → standby → primary → standby did not stay)."""
    return bool(runs) and runs[-1] == cluster and cluster not in runs[:-1]


# --- a step's expectations --------------------------------------------------------------


class ExpectedCluster(StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class StepExpectation:
    """`expect` of a step; None: not checked."""

    active_cluster: ExpectedCluster | None = None
    max_rto_seconds: float | None = None
    max_error_ratio: float | None = None
    max_p99_latency_ms: float | None = None
    max_time_to_correct_seconds: float | None = None
    max_wrong_answer_ratio: float | None = None
    active_clusters: str | None = None  # "both" or "one"
    min_replicas: dict[str, int] | None = None  # role -> ready replicas wanted


@dataclass(frozen=True)
class Roles:
    """Cluster names as the probe reports them: the primary's and the standby's, and the
    active one when the step started (status.activeCluster; None if unknown)."""

    primary: str
    standby: str
    active_at_start: str | None


@dataclass(frozen=True)
class StepAssessment:
    phase: Phase  # Passed, Failed or Inconclusive
    reason: str
    message: str


def expected_cluster(expect: ExpectedCluster, roles: Roles) -> str | None:
    if expect is ExpectedCluster.PRIMARY:
        return roles.primary
    if expect is ExpectedCluster.STANDBY:
        return roles.standby
    return roles.active_at_start


def assess_step(expect: StepExpectation, measured: StepMeasured, roles: Roles) -> StepAssessment:
    """Every expectation is checked and reported. Failed when any was not met (reason
    ExpectationFailed, each miss with its measured value and limit); otherwise Inconclusive
    when one could not be judged (no probe request sent in the window: NoProbeTraffic; no
    answer said which cluster served it); otherwise Passed. The message carries the measured
    values either way.

    When requests were sent but none succeeded, what clients saw is judged, not excused: the
    RTO is the whole window, no cluster was serving, and a p99 limit is missed.
    """
    if measured.sent == 0:
        return StepAssessment(
            Phase.INCONCLUSIVE,
            "NoProbeTraffic",
            "no probe request was sent in the step's window, so nothing was measured",
        )
    misses: list[str] = []
    unknowns: list[str] = []
    figures: list[str] = []
    # Each check adds its measured figure and, when its limit is missed, the miss; the order
    # here is the order the message reads.
    _check_rto(expect, measured, figures, misses)
    _check_error_ratio(expect, measured, figures, misses)
    _check_p99_latency(expect, measured, figures, misses)
    unjudged: list[str] = []
    _check_answers(expect, measured, figures, misses, unjudged)
    if measured.active_cluster is not None:
        figures.append(f"active cluster {measured.active_cluster}")
    if expect.active_cluster is not None:
        _check_cluster(expect.active_cluster, measured, roles, misses, unknowns)
    _check_active_clusters(expect, measured, figures, misses, unknowns)
    _check_replicas(expect, measured, figures, misses, unknowns)
    if unknowns:
        return _step_verdict(misses, unknowns + unjudged, figures, "ActiveClusterUnknown")
    return _step_verdict(misses, unjudged, figures, "AnswersNotJudged")


def _check_rto(
    expect: StepExpectation, measured: StepMeasured, figures: list[str], misses: list[str]
) -> None:
    if measured.rto_seconds is not None:
        figures.append(f"RTO {fmt(measured.rto_seconds)} s")
        limit = expect.max_rto_seconds
        if limit is not None and measured.rto_seconds > limit:
            misses.append(f"RTO {fmt(measured.rto_seconds)} s > max {fmt(limit)} s")


def _check_error_ratio(
    expect: StepExpectation, measured: StepMeasured, figures: list[str], misses: list[str]
) -> None:
    if measured.error_ratio is not None:
        ratio = (
            f"error ratio {fmt(measured.error_ratio)} ({measured.failed} of {measured.sent} failed)"
        )
        figures.append(ratio)
        limit = expect.max_error_ratio
        if limit is not None and measured.error_ratio > limit:
            misses.append(f"{ratio} > max {fmt(limit)}")


def _check_p99_latency(
    expect: StepExpectation, measured: StepMeasured, figures: list[str], misses: list[str]
) -> None:
    if measured.p99_latency_ms is not None:
        figures.append(f"p99 latency {fmt(measured.p99_latency_ms)} ms")
    if expect.max_p99_latency_ms is not None:
        limit = expect.max_p99_latency_ms
        # No request succeeded, so there is no latency to compare: the limit is missed, not
        # skipped (clients saw no answer at all, which is worse than a slow one).
        if measured.p99_latency_ms is None:
            misses.append(
                f"p99 latency unmeasurable: none of {measured.sent} probe requests succeeded"
                f" (max {fmt(limit)} ms)"
            )
        elif measured.p99_latency_ms > limit:
            misses.append(f"p99 latency {fmt(measured.p99_latency_ms)} ms > max {fmt(limit)} ms")


def _check_answers(
    expect: StepExpectation,
    measured: StepMeasured,
    figures: list[str],
    misses: list[str],
    unknowns: list[str],
) -> None:
    """Correct answers, not only answers: the time until answers agree with the baseline
    again, and the share of answers that did not."""
    ttc = measured.time_to_correct_seconds
    if ttc is not None:
        figures.append(f"time to correct answers {fmt(ttc)} s")
    limit = expect.max_time_to_correct_seconds
    if limit is not None:
        if ttc is None:
            unknowns.append(
                "time to correct answers unmeasurable: no baseline answers to judge against"
            )
        elif ttc > limit:
            misses.append(f"time to correct answers {fmt(ttc)} s > max {fmt(limit)} s")
    ratio = measured.wrong_answer_ratio
    text = None
    if ratio is not None:
        text = (
            f"wrong answer ratio {fmt(ratio)} ({measured.wrong} of {measured.judged} answers"
            " differ from the baseline)"
        )
        figures.append(text)
    limit = expect.max_wrong_answer_ratio
    if limit is not None:
        if ratio is None:
            unknowns.append(
                "wrong answer ratio unmeasurable: no answer judged against the baseline"
            )
        elif ratio > limit:
            misses.append(f"{text} > max {fmt(limit)}")


def _check_active_clusters(
    expect: StepExpectation,
    measured: StepMeasured,
    figures: list[str],
    misses: list[str],
    unknowns: list[str],
) -> None:
    answering = measured.answering
    if answering:
        figures.append(f"answering at the end: {', '.join(answering)}")
    wanted = expect.active_clusters
    if wanted is None:
        return
    count = 2 if wanted == "both" else 1
    label = f"activeClusters {wanted}"
    if measured.succeeded == 0:
        misses.append(f"{label} not reached: no probe request succeeded, no cluster served")
    elif not answering:
        unknowns.append(f"{label}: no answer in the step's last seconds said which cluster served")
    elif len(answering) != count:
        misses.append(f"{label} not reached: answering at the end {', '.join(answering)}")


def _check_replicas(
    expect: StepExpectation,
    measured: StepMeasured,
    figures: list[str],
    misses: list[str],
    unknowns: list[str],
) -> None:
    ready = measured.ready_replicas
    if ready is not None:
        figures.append("ready replicas " + ", ".join(f"{r} {n}" for r, n in sorted(ready.items())))
    for role, wanted in sorted((expect.min_replicas or {}).items()):
        have = None if ready is None else ready.get(role)
        if have is None:
            unknowns.append(f"minReplicas {role} {wanted}: the {role}'s ready replicas unknown")
        elif have < wanted:
            misses.append(f"{role} ready replicas {have} < min {wanted}")


def _step_verdict(
    misses: list[str], unknowns: list[str], figures: list[str], unknown_reason: str
) -> StepAssessment:
    # A miss outweighs an unknown: what was measured already fails the step.
    measured_text = ", ".join(figures)
    if misses:
        return StepAssessment(
            Phase.FAILED, "ExpectationFailed", "; ".join(misses) + f" (measured: {measured_text})"
        )
    if unknowns:
        return StepAssessment(
            Phase.INCONCLUSIVE, unknown_reason, "; ".join(unknowns) + f" ({measured_text})"
        )
    return StepAssessment(Phase.PASSED, "ExpectationsMet", measured_text)


def _check_cluster(
    expect: ExpectedCluster,
    measured: StepMeasured,
    roles: Roles,
    misses: list[str],
    unknowns: list[str],
) -> None:
    wanted = expected_cluster(expect, roles)
    label = f"activeCluster {expect}" + (f" ({wanted})" if wanted and wanted != expect else "")
    at_end = measured.active_cluster
    runs = measured.cluster_runs
    if wanted is None:
        unknowns.append(f"{label}: the active cluster at the step's start is unknown")
    elif measured.succeeded == 0:
        misses.append(f"{label} not reached: no probe request succeeded, no cluster served")
    elif at_end is None:
        unknowns.append(f"{label}: no successful answer said which cluster served it")
    elif at_end != wanted:
        misses.append(f"{label} not reached: {at_end} served at the end")
    elif runs and not reached_and_stayed(runs, wanted):
        misses.append(f"{label} reached but did not stay: answers came from {' → '.join(runs)}")


# --- steady state -----------------------------------------------------------------------


@dataclass(frozen=True)
class SteadyStateAssessment:
    phase: Phase  # Passed, or Error (before the faults), Failed/Inconclusive (after them)
    reason: str
    message: str
    error_ratio: float | None


def assess_steady_state(
    samples: Sequence[ProbeSample],
    start: float,
    end: float,
    max_error_ratio: float,
    *,
    before_faults: bool,
) -> SteadyStateAssessment:
    """Steady state holds when requests were sent in [start, end) and their error ratio is
    at most maxErrorRatio. Before the first fault, not holding (no traffic included) means
    the drill cannot start honestly: Error, SteadyStateNotMet. After the last step it means
    the system did not recover: Failed, NotRecovered; no traffic then is Inconclusive."""
    window = in_window(samples, start, end)
    ratio = error_ratio(window, start, end)
    when = "before the first fault" if before_faults else "after the last step"
    if ratio is None:
        message = f"no probe request was sent in the steady-state window {when}"
        if before_faults:
            return SteadyStateAssessment(Phase.ERROR, "SteadyStateNotMet", message, None)
        return SteadyStateAssessment(Phase.INCONCLUSIVE, "NoProbeTraffic", message, None)
    failed = sum(1 for s in window if not s.ok)
    figures = f"error ratio {fmt(ratio)} ({failed} of {len(window)} failed)"
    if ratio > max_error_ratio:
        message = f"steady state not met {when}: {figures} > max {fmt(max_error_ratio)}"
        if before_faults:
            return SteadyStateAssessment(Phase.ERROR, "SteadyStateNotMet", message, ratio)
        return SteadyStateAssessment(Phase.FAILED, "NotRecovered", message, ratio)
    return SteadyStateAssessment(
        Phase.PASSED,
        "SteadyStateMet",
        f"steady state {when}: {figures}, max {fmt(max_error_ratio)}",
        ratio,
    )


# --- probe-based abort conditions -------------------------------------------------------


class AbortState(StrEnum):
    HOLDS = "Holds"  # abort now
    CLEAR = "Clear"
    UNKNOWN = "Unknown"  # could not be evaluated: the run cannot end Passed


@dataclass(frozen=True)
class AbortCheck:
    state: AbortState
    message: str

    @property
    def holds(self) -> bool:
        return self.state is AbortState.HOLDS


def abort_due(
    name: str,
    samples: Sequence[ProbeSample],
    *,
    window_seconds: float,
    max_error_ratio: float,
    now: float,
) -> AbortCheck:
    """A probe-based abort condition: HOLDS when the error ratio of the requests sent in the
    last windowSeconds (sent in [now - window, now]) exceeds maxErrorRatio; UNKNOWN when no
    request was sent in that window."""
    if window_seconds <= 0:
        raise ValueError(f"windowSeconds must be > 0, got {window_seconds}")
    window = [s for s in samples if now - window_seconds <= s.sent_at <= now]
    if not window:
        return AbortCheck(
            AbortState.UNKNOWN,
            f"abort condition {name!r}: no probe request in the last {fmt(window_seconds)} s",
        )
    failed = sum(1 for s in window if not s.ok)
    ratio = failed / len(window)
    figures = (
        f"error ratio {fmt(ratio)} ({failed} of {len(window)} failed)"
        f" over the last {fmt(window_seconds)} s"
    )
    if ratio > max_error_ratio:
        return AbortCheck(
            AbortState.HOLDS,
            f"abort condition {name!r} holds: {figures} > max {fmt(max_error_ratio)}",
        )
    return AbortCheck(
        AbortState.CLEAR, f"abort condition {name!r}: {figures}, max {fmt(max_error_ratio)}"
    )


def fmt(value: float) -> str:
    """A measured figure as people read it: 4.2, 10, 0.0213, 812."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 0.001 or value == 0:
        text = f"{value:.3f}"
    else:
        return f"{value:.2g}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def failure_summary(samples: Iterable[ProbeSample], start: float, end: float) -> str:
    """What the failed requests of a window said, most frequent first ('' when none failed):
    a verdict that says only "error ratio 1" leaves the user guessing why."""
    errors = Counter(s.error or "failed" for s in in_window(samples, start, end) if not s.ok)
    if not errors:
        return ""
    shown = ", ".join(f"{error!r} x{n}" for error, n in errors.most_common(3))
    return f"failures: {shown}"
