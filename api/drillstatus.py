"""The statuses of DrillRun and DrillPlan: what the engine and the plan's handler write back
(steps, gates, abort conditions, model checks, the fault journal, the dry run's plan, the
verdict's conditions, the plan's last run).

Lenient (modeldr.api.base.StatusModel): they parse what an older or newer engine wrote,
timestamps as strings included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import Field, StringConstraints

from modeldr.api.base import Message, StatusModel
from modeldr.api.drillplan import (
    MAX_ABORT_CONDITIONS,
    MAX_CONDITIONS,
    MAX_FAULT_RECORDS,
    MAX_GATES,
    MAX_MEASUREMENTS,
    MAX_MODEL_CHECKS,
    MAX_PREFLIGHT,
    MAX_STEPS,
    MAX_TARGETS,
    NAME_MAX,
    REASON,
    FaultMode,
    FaultState,
    FaultType,
    MeasurementPhase,
)
from modeldr.api.phase import Phase
from modeldr.api.schema import Int64, OpenAPI

# Journal states whose fault may be in force: Recorded too (the operator may have died
# mid-inject). A run that ends with one of them names it in its message.
OUTSTANDING: Final[tuple[FaultState, ...]] = ("Recorded", "Applied")

# ------------------------------------------------------------------------- status models
# Each field's description and each model's docstring is the CRD's (`kubectl explain`). No
# defaults go into the CRD (modeldr.api.schema.schema_of): the engine writes what it means.

Reason = Annotated[
    str,
    StringConstraints(max_length=64, pattern=REASON),
    OpenAPI(description="One CamelCase word."),
]
StatusMessage = Annotated[Message, OpenAPI(description="A sentence with the measured values.")]
Name = Annotated[str, StringConstraints(max_length=NAME_MAX)]
# A pod, a node, a cluster, a ConfigMap (DNS-1123 subdomains).
ObjectName = Annotated[str, StringConstraints(max_length=253)]
Conditions = Annotated[
    list["Condition"],
    Field(max_length=MAX_CONDITIONS, description="metav1.Conditions."),
    OpenAPI({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
]


class Condition(StatusModel):
    """metav1.Condition."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"]
    observed_generation: Int64 | None = Field(default=None, ge=0)
    last_transition_time: datetime
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    message: str = Field(max_length=32768)  # required, possibly empty


class WindowStatus(StatusModel):
    """What the probe measured in one window: a step (from its start to the next step's start)
    or a steady-state period."""

    phase: Phase = Phase.PENDING
    reason: Reason | None = None
    message: StatusMessage | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rto_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Longest stretch in the window with no successful probe request.",
    )
    error_ratio: float | None = Field(
        default=None, ge=0, le=1, description="Failed / sent probe requests in the window."
    )
    p99_latency_ms: float | None = Field(
        default=None, ge=0, description="p99 latency of the probe's requests."
    )
    active_cluster: Name | None = Field(
        default=None, description="Cluster serving at the end of the window."
    )
    requests: Int64 | None = Field(
        default=None, ge=0, description="Probe requests sent in the window."
    )
    failed_requests: Int64 | None = Field(default=None, ge=0)
    interrupted: bool | None = Field(
        default=None,
        description=(
            "The run's interrupt (status.interrupt) cut the window short, or came before it "
            "could measure: its phase, reason and message are the interrupt's. A steady-state "
            "window cut short is not assessed; a step cut short counts, Aborted."
        ),
    )


class StepStatus(WindowStatus):
    name: Name
    answering_clusters: list[Name] | None = Field(
        default=None,
        max_length=2,
        description="The clusters that answered the probe in the step's last 5 seconds.",
    )
    ready_replicas: dict[str, int] | None = Field(
        default=None,
        description="Ready replicas per role (primary, standby) at the step's end, from the "
        "ModelDeployment's status.",
    )
    wrong_answer_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Successful probe answers that differ from the baseline model check's "
        "answer for the same golden text / answers judged (plans with modelChecks).",
    )
    time_to_correct_seconds: float | None = Field(
        default=None,
        ge=0,
        description="From the step's start until every second's answers agree with the "
        "baseline at modelChecks.minAgreement (plans with modelChecks); beside rtoSeconds, "
        "which counts any answer.",
    )
    answer_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Successful probe answers equal to their golden label / answers "
        "(plans with modelChecks).",
    )
    restore_seconds: float | None = Field(
        default=None,
        ge=0,
        description="ModelStoreLoss: how long the undo's restore of the model from its backup "
        "took, verified (the provider's undo call, end to end).",
    )


class SteadyStateStatus(StatusModel):
    before: WindowStatus | None = Field(default=None, description="Before the first step.")
    after: WindowStatus | None = Field(default=None, description="After the last step.")


class Measurement(StatusModel):
    phase: MeasurementPhase
    measured_at: datetime
    value: str | None = Field(
        default=None,
        max_length=1024,
        description="The result as text (NaN and empty results are not JSON numbers).",
    )
    message: str | None = Field(default=None, max_length=1024)


class GateStatus(StatusModel):
    name: Name
    phase: Phase = Phase.PENDING
    reason: Reason | None = None
    message: StatusMessage | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    successful: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    inconclusive: int = Field(default=0, ge=0)
    error: int = Field(default=0, ge=0)
    consecutive_errors: int = Field(default=0, ge=0)
    measurements: list[Measurement] = Field(
        default_factory=list,
        max_length=MAX_MEASUREMENTS,
        description="The last measurements, oldest first.",
    )


class AbortConditionStatus(StatusModel):
    """Passed: it never held; Aborted: it held (and stopped the run); Inconclusive: it could
    not be evaluated (which keeps the run from ending Passed). While the run goes on,
    `message` is the last evaluation's; once the run ended, phase, reason and message are the
    condition's conclusion (what the verdict reads)."""

    name: Name
    phase: Phase = Phase.PENDING
    reason: str | None = Field(
        default=None,
        max_length=64,
        pattern=REASON,
        description=(
            "AbortConditionMet (it held), MetricsMissing (it could not be evaluated), NotMet."
        ),
    )
    message: StatusMessage | None = None
    evaluations: Int64 = Field(default=0, ge=0)
    last_value: str | None = Field(default=None, max_length=1024)
    last_evaluated_at: datetime | None = None


class ModelCheckStatus(StatusModel):
    """The golden set answered by one cluster: the baseline (before the first fault) or after
    a step."""

    name: Name = Field(description="baseline, or the step's name.")
    step: Name | None = None
    cluster: Name | None = None
    phase: Phase = Phase.PENDING
    reason: Reason | None = None
    message: StatusMessage | None = None
    checked_at: datetime | None = None
    examples: int | None = Field(default=None, ge=0)
    agreement: float | None = Field(
        default=None, ge=0, le=1, description="Same label as the baseline."
    )
    accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Against the golden labels."
    )
    precision: float | None = Field(default=None, ge=0, le=1, description="Macro.")
    recall: float | None = Field(default=None, ge=0, le=1, description="Macro.")
    f1: float | None = Field(default=None, ge=0, le=1, description="Macro.")
    served_digest: str | None = Field(default=None, max_length=71)
    expected_digest: str | None = Field(default=None, max_length=71)


class FaultRecord(StatusModel):
    """One journal entry: written before the fault is applied, kept after it is undone."""

    id: str = Field(max_length=128)
    step: Name
    type: FaultType
    cluster: Name = Field(description="The member cluster, resolved.")
    role: Literal["primary", "standby"] | None = None
    mode: FaultMode | None = None
    value: int | None = Field(default=None, ge=0)
    seed: Int64 | None = None
    targets: list[ObjectName] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description="Pods, nodes or the cluster chosen.",
    )
    provider: Name | None = Field(
        default=None,
        description="Who makes and undoes it: member-api, agent, or the infrastructure "
        "provider's name.",
    )
    state: FaultState = Field(
        default="Recorded",
        description="Recorded (not yet known applied: undo anyway), Applied, Undone, Abandoned "
        "(its cluster is gone for good), Forged (not written by the operator: its seal does not "
        "verify; never acted on).",
    )
    recorded_at: datetime | None = None
    applied_at: datetime | None = None
    undone_at: datetime | None = None
    undo_attempts: int = Field(default=0, ge=0)
    message: StatusMessage | None = None
    # Grace period, node, a taint's value, ...
    parameters: dict[str, Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=dict, max_length=16, description="What undo needs beyond the above."
    )
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="The operator's seal over what undo acts on (HMAC-SHA256 under a key only "
        "the operator holds): undo acts only on an entry whose seal verifies.",
    )


class ProbeLiveStatus(StatusModel):
    """What the traffic probe saw over the last windowSeconds, refreshed every few seconds
    while the run goes on (the CLI's live display)."""

    at: datetime | None = None
    window_seconds: float | None = Field(default=None, ge=0)
    sent: Int64 = Field(default=0, ge=0)
    succeeded: Int64 = Field(default=0, ge=0)
    success_ratio: float | None = Field(default=None, ge=0, le=1, description="Succeeded / sent.")
    p99_latency_ms: float | None = Field(default=None, ge=0)
    cluster: Name | None = Field(
        default=None, description="Member cluster of the last successful answer."
    )


class PlannedStep(StatusModel):
    """A dry run's finding for one step: what it would touch, where, and who would act."""

    step: Name
    kind: Literal["fault", "action"]
    # Its type: PodKill, Failover, ...
    type: Name
    cluster: Name | None = None
    role: Literal["primary", "standby"] | None = None
    provider: Name | None = Field(
        default=None, description="member-api, the infrastructure provider, or operator."
    )
    targets: list[ObjectName] = Field(default_factory=list, max_length=MAX_TARGETS)
    seed: Int64 | None = None
    # Set when the step could not be made as planned (the real run's step would end Error).
    reason: Reason | None = None
    message: StatusMessage | None = None


class PreflightFinding(StatusModel):
    check: Name
    ok: bool = Field(description="The check found nothing in the way.")
    reason: Reason | None = None
    message: StatusMessage | None = None


class InterruptStatus(StatusModel):
    """Why the run stopped early, the first reason: an abort condition held, it was stopped
    by hand or deleted, the operator stopped or restarted mid-run, the deadline passed, a
    fault could not be undone, the target never served, or the engine failed. The verdict
    counts it as the run's own part."""

    phase: Phase
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None
    at: datetime | None = None


class DryRunStatus(StatusModel):
    """A dry run's findings: what each step would touch, where, who would act, and the
    preflight."""

    # The active cluster when the dry run resolved `cluster: active`.
    active_cluster: Name | None = None
    steps: list[PlannedStep] = Field(default_factory=list, max_length=MAX_STEPS)
    preflight: list[PreflightFinding] = Field(default_factory=list, max_length=MAX_PREFLIGHT)


class DrillRunStatus(StatusModel):
    """The whole record of the run, written by the operator only (status subresource); a new
    leader continues or rolls back a run in flight from it."""

    observed_generation: Int64 | None = None
    phase: Phase = Field(
        default=Phase.PENDING,
        description="Pending, Running, then the verdict: Passed, Failed, Aborted, Error or "
        "Inconclusive (precedence in that order: Aborted, Failed, Error, Inconclusive, Passed); "
        "a clean dry run ends Planned (nothing tested).",
    )
    reason: Reason | None = None
    message: StatusMessage | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Written at least every few seconds while the run goes on: a new leader tells a run in
    # flight from one whose engine is gone.
    heartbeat_at: datetime | None = Field(
        default=None, description="Last progress write of the engine running it."
    )
    # The plan's durations plus bounded margins.
    deadline: datetime | None = Field(
        default=None, description="The run ends by then, whatever happens."
    )
    interrupt: InterruptStatus | None = Field(
        default=None, description="Why the run stopped early (absent: it ran its course)."
    )
    current_step: Name | None = None
    rto_seconds: float | None = Field(
        default=None, ge=0, description="The worst step's rtoSeconds."
    )
    active_cluster: Name | None = Field(default=None, description="Cluster serving now.")
    seed: Int64 | None = Field(default=None, description="The run's random seed (target choices).")
    steady_state: SteadyStateStatus | None = None
    steps: list[StepStatus] = Field(default_factory=list, max_length=MAX_STEPS)
    gates: list[GateStatus] = Field(default_factory=list, max_length=MAX_GATES)
    abort_conditions: list[AbortConditionStatus] = Field(
        default_factory=list, max_length=MAX_ABORT_CONDITIONS
    )
    model_checks: list[ModelCheckStatus] = Field(default_factory=list, max_length=MAX_MODEL_CHECKS)
    faults: list[FaultRecord] = Field(
        default_factory=list,
        max_length=MAX_FAULT_RECORDS,
        description="The journal: each fault is written here before it is applied, and undone "
        "on every path (step end, failure, abort, deletion, operator restart).",
    )
    conditions: Conditions = Field(default_factory=list)
    probe: ProbeLiveStatus | None = None
    dry_run: DryRunStatus | None = None
    # Same namespace as the run.
    report_config_map: ObjectName | None = Field(
        default=None,
        description="The ConfigMap (owned by the run) keeping its report data: `modeldr drill "
        "report` renders it.",
    )

    @classmethod
    def parse(cls, status: Any) -> DrillRunStatus:
        return cls.model_validate(dict(status or {}))


class LastRun(StatusModel):
    name: ObjectName
    phase: Phase = Field(
        default=Phase.PENDING, description="The run's phase: its verdict once it ended."
    )
    reason: Reason | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan_generation: Int64 | None = Field(
        default=None, description="The plan generation the run executes."
    )
    # Absent: an apply or a person started it.
    scheduled_time: datetime | None = Field(
        default=None, description="The schedule's due time it was started for."
    )
    rto_seconds: float | None = Field(default=None, ge=0, description="The run's worst step RTO.")


class MissedSchedule(StatusModel):
    """The last due time skipped, and why."""

    scheduled_time: datetime
    reason: Reason
    message: Message | None = None


class PassRate(StatusModel):
    """The latest game-day series (spec.repeat): how often its runs passed."""

    series: ObjectName = Field(description="The series' first run (label modeldr.io/series).")
    state: Literal["Repeating", "Satisfied", "Exhausted", "Superseded"] = Field(
        description="Repeating (a run is due or in flight), Satisfied (untilConsecutivePasses "
        "in a row passed), Exhausted (repeat.runs ran without that), Superseded (the plan "
        "changed: its next start begins a new series)."
    )
    runs: Int64 = Field(ge=0, description="Runs of the series that ended.")
    passed: Int64 = Field(ge=0, description="Of those, runs that ended Passed.")
    consecutive_passes: Int64 = Field(ge=0, description="Passed in a row, the latest last.")
    ratio: float | None = Field(default=None, ge=0, le=1, description="passed / runs.")
    lower: float | None = Field(
        default=None, ge=0, le=1, description="95% Wilson score interval, lower bound."
    )
    upper: float | None = Field(
        default=None, ge=0, le=1, description="95% Wilson score interval, upper bound."
    )
    message: Message | None = None


class DrillPlanStatus(StatusModel):
    """Written by the operator only (status subresource)."""

    observed_generation: Int64 | None = None
    last_run: LastRun | None = Field(
        default=None, description="The most recent DrillRun of this plan."
    )
    # The scheduled-drill alerts read its verdict.
    last_scheduled_run: LastRun | None = Field(
        default=None, description="The most recent DrillRun the schedule started."
    )
    schedule_message: Message | None = Field(
        default=None,
        description="What the operator does with spec.schedule (the next due time, or why no "
        "run starts): never silently ignored.",
    )
    last_schedule_time: datetime | None = Field(
        default=None, description="Due time of the last run the schedule started."
    )
    next_schedule_time: datetime | None = Field(
        default=None, description="When the next run is due (absent while suspended)."
    )
    scheduled_through: datetime | None = Field(
        default=None,
        description="Every due time up to this one was dealt with: started, missed, or passed "
        "while suspended.",
    )
    missed_schedules: Int64 = Field(
        default=0,
        ge=0,
        description="Due times skipped: StartingDeadlineExceeded, ConcurrencyForbidden, "
        "Superseded (an earlier due time a later one replaced).",
    )
    last_missed_schedule: MissedSchedule | None = None
    pass_rate: PassRate | None = Field(
        default=None, description="The latest game-day series (spec.repeat)."
    )
    conditions: Conditions = Field(default_factory=list)

    @classmethod
    def parse(cls, status: Any) -> DrillPlanStatus:
        return cls.model_validate(dict(status or {}))
