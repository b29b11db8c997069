"""A run's report data as the renderers read it: the operator's report document
(modeldr.drills.report, kept in the run's ConfigMap), or, for a run without one (it ended
before this version, or its report could not be written), the DrillRun object alone (no
timeline). Pure: no cluster access here.

Derived here, once for every format: the fault windows (journal appliedAt to undoneAt), the
traffic switches (the cluster that answered most requests changing from one second to a
later one: failover to the standby, failback to the primary), and the checks: each part of
the run as the verdict reads it from the status (drills.verdict.assessed, the engine's own
reading), a step's expectations shown one by one against its measured values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import (
    AbortConditionStatus,
    DrillRunStatus,
    FaultRecord,
    GateStatus,
    ModelCheckStatus,
    StepStatus,
)
from modeldr.api.phase import Phase
from modeldr.drills.timeline import Point, ReplicaPoint
from modeldr.drills.verdict import Entry, Part, assessed


@dataclass(frozen=True)
class FaultWindow:
    record: FaultRecord
    start: datetime
    end: datetime | None  # None: not undone (the report says so loudly)


@dataclass(frozen=True)
class Switch:
    at: float  # Unix seconds
    from_cluster: str
    to_cluster: str
    kind: str  # "failover" (to the standby), "failback" (to the primary), "switch"


@dataclass(frozen=True)
class HistoryEntry:
    name: str
    phase: str
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    rto_seconds: float | None
    dry_run: bool
    # The worst step's figures (the lowest F1 of the model checks after steps); None: not
    # measured (an older run, a plan without model checks).
    time_to_correct_seconds: float | None = None
    error_ratio: float | None = None
    p99_latency_ms: float | None = None
    f1: float | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Check:
    """One test case of the report: a step expectation, a steady state, a gate, an abort
    condition or a model check. `outcome`: passed, failed, error (could not be judged or
    the drill failed to test it) or skipped (never reached)."""

    group: str  # the JUnit classname: steps.<step>, gates, modelChecks, ...
    name: str
    outcome: str
    message: str
    seconds: float | None = None


@dataclass
class ReportData:
    namespace: str
    name: str
    plan_name: str
    status: DrillRunStatus
    plan: DrillPlanSpec | None
    clusters: dict[str, str] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    # The target's ready replicas per role over the run (a report from before: none).
    replicas: list[ReplicaPoint] = field(default_factory=list)
    resolution_seconds: float = 1.0
    timeline_truncated: bool = False
    history: list[HistoryEntry] = field(default_factory=list)
    from_config_map: bool = True

    @property
    def phase(self) -> Phase:
        return self.status.phase

    @property
    def dry_run(self) -> bool:
        return self.status.dry_run is not None

    @property
    def duration_seconds(self) -> float | None:
        s = self.status
        if s.started_at is None or s.finished_at is None:
            return None
        return (s.finished_at - s.started_at).total_seconds()

    def fault_windows(self) -> list[FaultWindow]:
        out = []
        for record in self.status.faults:
            # From the journal entry, written just before the inject call: the fault can
            # bite from then on (appliedAt comes after the provider or agents confirmed).
            start = record.recorded_at or record.applied_at
            if start is not None:
                out.append(FaultWindow(record, start, record.undone_at))
        return out

    def step_windows(self) -> list[tuple[StepStatus, datetime, datetime | None]]:
        return [(s, s.started_at, s.finished_at) for s in self.status.steps if s.started_at]

    def switches(self) -> list[Switch]:
        primary, standby = self.clusters.get("primary"), self.clusters.get("standby")
        out: list[Switch] = []
        last: str | None = None
        for point in self.points:
            if point.cluster is None:
                continue
            if last is not None and point.cluster != last:
                kind = (
                    "failover"
                    if point.cluster == standby
                    else "failback"
                    if point.cluster == primary
                    else "switch"
                )
                out.append(Switch(point.t, last, point.cluster, kind))
            last = point.cluster
        return out

    def checks(self) -> list[Check]:
        return judge(self)


def parse_document(doc: dict[str, Any]) -> ReportData:
    run = doc.get("run") or {}
    timeline = doc.get("timeline") or {}
    plan_raw = doc.get("plan")
    return ReportData(
        namespace=str(run.get("namespace", "")),
        name=str(run.get("name", "")),
        plan_name=str(run.get("plan", "")),
        status=DrillRunStatus.parse(doc.get("status")),
        plan=DrillPlanSpec.parse(plan_raw) if plan_raw else None,
        clusters={str(k): str(v) for k, v in (doc.get("clusters") or {}).items()},
        points=[Point.from_row(row) for row in timeline.get("points") or []],
        replicas=[
            ReplicaPoint.from_row(row) for row in (doc.get("replicas") or {}).get("points") or []
        ],
        resolution_seconds=float(timeline.get("resolutionSeconds") or 1.0),
        timeline_truncated=bool(timeline.get("truncated")),
        history=[history_entry(h) for h in doc.get("history") or []],
    )


def from_run_object(run: dict[str, Any], history: list[dict[str, Any]]) -> ReportData:
    """A run with no report ConfigMap: what its object says (no timeline)."""
    spec = run.get("spec") or {}
    plan_raw = spec.get("plan")
    return ReportData(
        namespace=str(run["metadata"].get("namespace", "")),
        name=str(run["metadata"]["name"]),
        plan_name=str((spec.get("planRef") or {}).get("name", "")),
        status=DrillRunStatus.parse(run.get("status")),
        plan=DrillPlanSpec.parse(plan_raw) if plan_raw else None,
        history=[history_entry(h) for h in history],
        from_config_map=False,
    )


def history_entry(raw: dict[str, Any]) -> HistoryEntry:
    def when(key: str) -> datetime | None:
        value = raw.get(key)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None

    def number(key: str) -> float | None:
        value = raw.get(key)
        return float(value) if isinstance(value, int | float) else None

    return HistoryEntry(
        name=str(raw.get("name", "")),
        phase=str(raw.get("phase") or "Pending"),
        reason=raw.get("reason"),
        started_at=when("startedAt"),
        finished_at=when("finishedAt"),
        rto_seconds=number("rtoSeconds"),
        dry_run=bool(raw.get("dryRun")),
        time_to_correct_seconds=number("timeToCorrectSeconds"),
        error_ratio=number("errorRatio"),
        p99_latency_ms=number("p99LatencyMs"),
        f1=number("f1"),
    )


# ----------------------------------------------------------------------------- checks

OUTCOME_OF_PHASE = {
    Phase.PASSED: "passed",
    Phase.FAILED: "failed",
    Phase.ABORTED: "failed",
    Phase.ERROR: "error",
    Phase.INCONCLUSIVE: "error",
    Phase.PENDING: "skipped",
    Phase.RUNNING: "skipped",
    Phase.PLANNED: "skipped",
}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _fmt(value: float | None, digits: int = 3) -> str:
    return "unmeasured" if value is None else f"{value:.{digits}g}"


def judge(data: ReportData) -> list[Check]:
    """Every check of the run, in the order the run met them. The outcome of each part the
    verdict counts is the one the engine counted (`assessed`: the same reading of the same
    status), so the report and the verdict never disagree on what passed; what the verdict
    does not count (not reached, cut short by the run's interrupt) keeps its own phase."""
    status = data.status
    parts: dict[int, Part] = {id(entry): part for entry, part in assessed(status)}

    def outcome_of(entry: Entry) -> str:
        part = parts.get(id(entry))
        return OUTCOME_OF_PHASE[part.phase if part is not None else entry.phase]

    checks = _steady_state_checks(status, outcome_of)
    plan_steps = {s.name: s for s in data.plan.steps} if data.plan else {}
    for step in status.steps:
        checks.extend(_step_checks(step, plan_steps.get(step.name), parts.get(id(step))))
    checks += [_gate_check(gate, outcome_of(gate)) for gate in status.gates]
    checks += [_abort_check(abort, outcome_of(abort)) for abort in status.abort_conditions]
    checks += [_model_check(check, outcome_of(check)) for check in status.model_checks]
    checks.append(_verdict_check(status, data.duration_seconds))
    return checks


def _steady_state_checks(status: DrillRunStatus, outcome_of: Callable[[Entry], str]) -> list[Check]:
    checks = []
    steady = status.steady_state
    for when, window in (
        ("before", steady.before if steady else None),
        ("after", steady.after if steady else None),
    ):
        if window is None:
            checks.append(Check("steadyState", when, "skipped", "not reached"))
            continue
        checks.append(
            Check(
                "steadyState",
                when,
                outcome_of(window),
                window.message or window.phase.value,
                _seconds(window.started_at, window.finished_at),
            )
        )
    return checks


def _gate_check(gate: GateStatus, outcome: str) -> Check:
    values = ", ".join(
        f"{m.phase} {m.value if m.value is not None else m.message or ''}".strip()
        for m in gate.measurements
    )
    message = gate.message or gate.phase.value
    if values:
        message += f"; measurements: {values}"
    counts = (
        f" ({gate.successful} successful, {gate.failed} failed, {gate.inconclusive} "
        f"inconclusive, {gate.error} error)"
    )
    return Check(
        "gates", gate.name, outcome, message + counts, _seconds(gate.started_at, gate.finished_at)
    )


def _abort_check(abort: AbortConditionStatus, outcome: str) -> Check:
    message = abort.message or abort.phase.value
    if abort.last_value is not None:
        message += f"; last value {abort.last_value} after {abort.evaluations} evaluations"
    return Check("abortConditions", abort.name, outcome, message)


def _model_check(check: ModelCheckStatus, outcome: str) -> Check:
    figures = ", ".join(
        f"{name} {value:.3f}"
        for name, value in (
            ("agreement", check.agreement),
            ("accuracy", check.accuracy),
            ("precision", check.precision),
            ("recall", check.recall),
            ("F1", check.f1),
        )
        if value is not None
    )
    where = f"{check.cluster}: " if check.cluster else ""
    message = f"{where}{figures}" + (f"; {check.message}" if check.message else "")
    return Check("modelChecks", check.name, outcome, message)


def _verdict_check(status: DrillRunStatus, duration_seconds: float | None) -> Check:
    # The verdict itself, so that a run refused before any step (or stopped by hand) is a
    # failed or errored test in CI too, never a suite of skipped ones.
    outcome = "passed" if status.phase is Phase.PLANNED else OUTCOME_OF_PHASE[status.phase]
    verdict = f"{status.phase}" + (f" ({status.reason})" if status.reason else "")
    return Check(
        "run", "verdict", outcome, f"{verdict}: {status.message or ''}".strip(), duration_seconds
    )


def _step_checks(step: StepStatus, planned: Any, part: Part | None) -> list[Check]:
    """The step's checks: one per expectation of the plan, judged against the measured
    values; never better than the step's part (the engine's assessment, which may fail on
    more than the expectations: a fault's own observation), which gets a check of its own
    when no expectation shows its outcome."""
    group = f"steps.{step.name}"
    seconds = _seconds(step.started_at, step.finished_at)
    if part is None or not part.phase.is_final:  # not reached, or cut short while running
        return [Check(group, "step", "skipped", step.message or "not run")]
    phase = part.phase
    if phase in (Phase.ERROR, Phase.ABORTED) or (
        phase is Phase.INCONCLUSIVE and part.reason != "ActiveClusterUnknown"
    ):
        outcome = OUTCOME_OF_PHASE[phase]
        return [Check(group, "step", outcome, f"{step.reason}: {step.message}", seconds)]
    expect = planned.expect if planned is not None else None
    out: list[Check] = []
    if expect is None:
        return [Check(group, "step", OUTCOME_OF_PHASE[phase], step.message or "", seconds)]
    if expect.active_cluster is not None:
        label = f"activeCluster {expect.active_cluster}"
        text = step.message or ""
        if part.reason == "ActiveClusterUnknown":
            out.append(Check(group, "activeCluster", "error", text, seconds))
        elif phase is Phase.FAILED and label in text:
            out.append(Check(group, "activeCluster", "failed", text, seconds))
        else:
            out.append(
                Check(
                    group,
                    "activeCluster",
                    "passed",
                    f"{label}: {step.active_cluster} served at the end",
                    seconds,
                )
            )
    out.extend(_limit_checks(group, expect, step, seconds))
    out.extend(_serving_checks(group, expect, step, seconds))
    outcome = OUTCOME_OF_PHASE[phase]
    if not out:
        out.append(Check(group, "step", outcome, step.message or "", seconds))
    elif outcome != "passed" and outcome not in {c.outcome for c in out}:
        out.append(Check(group, "step", outcome, f"{step.reason}: {step.message}", seconds))
    return out


def _serving_checks(
    group: str, expect: Any, step: StepStatus, seconds: float | None
) -> list[Check]:
    """activeClusters (who answered at the step's end) and minReplicas (ready replicas)."""
    out: list[Check] = []
    if expect.active_clusters is not None:
        answering = step.answering_clusters or []
        wanted = 2 if expect.active_clusters == "both" else 1
        what = f"{expect.active_clusters}: answering at the end {', '.join(answering) or 'none'}"
        outcome = "error" if not answering else "passed" if len(answering) == wanted else "failed"
        out.append(Check(group, "activeClusters", outcome, what, seconds))
    minimums = expect.min_replicas.model_dump(exclude_none=True) if expect.min_replicas else {}
    for role, wanted in sorted(minimums.items()):
        have = (step.ready_replicas or {}).get(role)
        what = f"{role}: {_fmt(have)} ready, min {wanted}"
        outcome = "error" if have is None else "passed" if have >= wanted else "failed"
        out.append(Check(group, "minReplicas", outcome, what, seconds))
    return out


def _limit_checks(group: str, expect: Any, step: StepStatus, seconds: float | None) -> list[Check]:
    """One check per numeric limit the step's `expect` sets, against its measured value."""
    out: list[Check] = []
    for name, limit, measured, unit in (
        ("maxRTOSeconds", expect.max_rto_seconds, step.rto_seconds, "s"),
        ("maxErrorRatio", expect.max_error_ratio, step.error_ratio, ""),
        ("maxP99LatencyMs", expect.max_p99_latency_ms, step.p99_latency_ms, "ms"),
        (
            "maxTimeToCorrectSeconds",
            expect.max_time_to_correct_seconds,
            step.time_to_correct_seconds,
            "s",
        ),
        ("maxWrongAnswerRatio", expect.max_wrong_answer_ratio, step.wrong_answer_ratio, ""),
    ):
        if limit is None:
            continue
        unit = f" {unit}" if unit else ""
        what = f"measured {_fmt(measured)}{unit}, max {_fmt(limit)}{unit}"
        if name == "maxErrorRatio" and step.requests is not None:
            what += f" ({step.failed_requests or 0} of {step.requests} requests failed)"
        failed = measured is None or measured > limit
        if measured is None and name != "maxP99LatencyMs":
            out.append(Check(group, name, "error", f"{what}: nothing measured", seconds))
        else:
            out.append(Check(group, name, "failed" if failed else "passed", what, seconds))
    return out
