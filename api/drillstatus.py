"""The statuses of DrillRun and DrillPlan: what the engine and the plan's handler write back
(steps, gates, abort conditions, model checks, the fault journal, the dry run's plan, the
verdict's conditions, the plan's last run).

Lenient (modeldr.api.base.StatusModel): they parse what an older or newer engine wrote,
timestamps as strings included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import (
    Field,
)

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

# Journal states whose fault may be in force: Recorded too (the operator may have died
# mid-inject). A run that ends with one of them names it in its message.
OUTSTANDING: Final[tuple[FaultState, ...]] = ("Recorded", "Applied")

# ------------------------------------------------------------------------- status models


class Condition(StatusModel):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class WindowStatus(StatusModel):
    """What the probe measured in one window: a step (from its start to the next step's start)
    or a steady-state period."""

    phase: Phase = Phase.PENDING
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The longest stretch in the window with no successful probe request.
    rto_seconds: float | None = Field(default=None, ge=0)
    # Failed / sent probe requests in the window.
    error_ratio: float | None = Field(default=None, ge=0, le=1)
    p99_latency_ms: float | None = Field(default=None, ge=0)
    # The cluster serving at the end of the window.
    active_cluster: str | None = Field(default=None, max_length=NAME_MAX)
    requests: int | None = Field(default=None, ge=0)
    failed_requests: int | None = Field(default=None, ge=0)
    # True when the run's interrupt (DrillRunStatus.interrupt) cut the window short, or the
    # run stopped before the window could measure (the target never served): its phase,
    # reason and message are the interrupt's, not a measurement's. A steady-state window cut
    # short is not assessed (the verdict counts the interrupt once, as the run's); a step cut
    # short counts, Aborted.
    interrupted: bool | None = None


class StepStatus(WindowStatus):
    name: str


class SteadyStateStatus(StatusModel):
    before: WindowStatus | None = None
    after: WindowStatus | None = None


class Measurement(StatusModel):
    phase: MeasurementPhase
    measured_at: datetime
    # The query's result as text (a NaN or an empty result cannot be a JSON number).
    value: str | None = Field(default=None, max_length=1024)
    message: str | None = Field(default=None, max_length=1024)


class GateStatus(StatusModel):
    name: str
    phase: Phase = Phase.PENDING
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    successful: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    inconclusive: int = Field(default=0, ge=0)
    error: int = Field(default=0, ge=0)
    consecutive_errors: int = Field(default=0, ge=0)
    # The last MAX_MEASUREMENTS measurements, oldest first.
    measurements: list[Measurement] = Field(default_factory=list, max_length=MAX_MEASUREMENTS)


class AbortConditionStatus(StatusModel):
    """Passed: it never held; Aborted: it held (and stopped the run); Inconclusive: it could
    not be evaluated (which keeps the run from ending Passed). While the run goes on,
    `message` is the last evaluation's; once the run ended, phase, reason and message are the
    condition's conclusion (what the verdict reads)."""

    name: str
    phase: Phase = Phase.PENDING
    # AbortConditionMet (it held), MetricsMissing (it could not be evaluated), NotMet.
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None
    evaluations: int = Field(default=0, ge=0)
    last_value: str | None = Field(default=None, max_length=1024)
    last_evaluated_at: datetime | None = None


class ModelCheckStatus(StatusModel):
    """The golden set answered by one cluster: the baseline (before the first fault) or after
    a step."""

    name: str  # "baseline", or the step's name
    step: str | None = None
    cluster: str | None = Field(default=None, max_length=NAME_MAX)
    phase: Phase = Phase.PENDING
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None
    checked_at: datetime | None = None
    examples: int | None = Field(default=None, ge=0)
    agreement: float | None = Field(default=None, ge=0, le=1)
    accuracy: float | None = Field(default=None, ge=0, le=1)
    precision: float | None = Field(default=None, ge=0, le=1)
    recall: float | None = Field(default=None, ge=0, le=1)
    f1: float | None = Field(default=None, ge=0, le=1)
    served_digest: str | None = Field(default=None, max_length=71)
    expected_digest: str | None = Field(default=None, max_length=71)


class FaultRecord(StatusModel):
    """One journal entry: written before the fault is applied, kept after it is undone."""

    id: str = Field(max_length=128)
    step: str
    type: FaultType
    cluster: str = Field(max_length=NAME_MAX)  # resolved: a member cluster's name
    role: Literal["primary", "standby"] | None = None
    mode: FaultMode | None = None
    value: int | None = Field(default=None, ge=0)
    seed: int | None = None
    targets: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    # Who makes and undoes it: member-api, agent, or the infrastructure provider's name.
    provider: str | None = Field(default=None, max_length=NAME_MAX)
    state: FaultState = "Recorded"
    recorded_at: datetime | None = None
    applied_at: datetime | None = None
    undone_at: datetime | None = None
    undo_attempts: int = Field(default=0, ge=0)
    message: Message | None = None
    # What undo needs beyond the above (grace period, node, a taint's value, ...).
    parameters: dict[str, str] = Field(default_factory=dict, max_length=16)


class ProbeLiveStatus(StatusModel):
    """What the traffic probe saw over the last windowSeconds, refreshed every few seconds
    while the run goes on (the CLI's live display)."""

    at: datetime | None = None
    window_seconds: float | None = Field(default=None, ge=0)
    sent: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    success_ratio: float | None = Field(default=None, ge=0, le=1)
    p99_latency_ms: float | None = Field(default=None, ge=0)
    # The member cluster that answered the last successful request.
    cluster: str | None = Field(default=None, max_length=NAME_MAX)


class PlannedStep(StatusModel):
    """A dry run's finding for one step: what it would touch, where, and who would act."""

    step: str
    # "fault" or "action", and its type (PodKill, Failover, ...).
    kind: Literal["fault", "action"]
    type: str = Field(max_length=NAME_MAX)
    cluster: str | None = Field(default=None, max_length=NAME_MAX)
    role: Literal["primary", "standby"] | None = None
    # Who would act: member-api, the infrastructure provider's name, or the operator's own
    # switch for actions.
    provider: str | None = Field(default=None, max_length=NAME_MAX)
    targets: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    seed: int | None = None
    # Set when the step could not be made as planned (the real run's step would end Error).
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None


class PreflightFinding(StatusModel):
    check: str = Field(max_length=NAME_MAX)
    ok: bool
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None


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
    # The active cluster when the dry run resolved `cluster: active`.
    active_cluster: str | None = Field(default=None, max_length=NAME_MAX)
    steps: list[PlannedStep] = Field(default_factory=list, max_length=MAX_STEPS)
    preflight: list[PreflightFinding] = Field(default_factory=list, max_length=MAX_PREFLIGHT)


class DrillRunStatus(StatusModel):
    observed_generation: int | None = None
    phase: Phase = Phase.PENDING
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    message: Message | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Written by the engine at least every few seconds while it runs: a new leader tells a
    # run in flight from one whose engine is gone.
    heartbeat_at: datetime | None = None
    # The run ends by then whatever happens (the plan's durations plus bounded margins).
    deadline: datetime | None = None
    # Why the run stopped early (absent: it ran its course).
    interrupt: InterruptStatus | None = None
    current_step: str | None = None
    # The worst step's rtoSeconds.
    rto_seconds: float | None = Field(default=None, ge=0)
    active_cluster: str | None = Field(default=None, max_length=NAME_MAX)
    seed: int | None = None
    steady_state: SteadyStateStatus | None = None
    steps: list[StepStatus] = Field(default_factory=list, max_length=MAX_STEPS)
    gates: list[GateStatus] = Field(default_factory=list, max_length=MAX_GATES)
    abort_conditions: list[AbortConditionStatus] = Field(
        default_factory=list, max_length=MAX_ABORT_CONDITIONS
    )
    model_checks: list[ModelCheckStatus] = Field(default_factory=list, max_length=MAX_MODEL_CHECKS)
    faults: list[FaultRecord] = Field(default_factory=list, max_length=MAX_FAULT_RECORDS)
    conditions: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    probe: ProbeLiveStatus | None = None
    dry_run: DryRunStatus | None = None
    # The ConfigMap (same namespace, owned by the run) that keeps the run's report data.
    report_config_map: str | None = Field(default=None, max_length=253)

    @classmethod
    def parse(cls, status: Any) -> DrillRunStatus:
        return cls.model_validate(dict(status or {}))


class LastRun(StatusModel):
    name: str
    phase: Phase = Phase.PENDING
    reason: str | None = Field(default=None, max_length=64, pattern=REASON)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan_generation: int | None = None
    # The schedule's due time it was started for (absent: an apply or a person started it).
    scheduled_time: datetime | None = None
    rto_seconds: float | None = None


class MissedSchedule(StatusModel):
    scheduled_time: datetime
    reason: str = Field(max_length=64, pattern=REASON)
    message: Message | None = None


class DrillPlanStatus(StatusModel):
    observed_generation: int | None = None
    last_run: LastRun | None = None
    # The last run the schedule started (the scheduled-drill alerts read its verdict).
    last_scheduled_run: LastRun | None = None
    # What the operator does with spec.schedule (the next run, why none starts): never
    # silently ignored.
    schedule_message: Message | None = None
    # The due time of the last run the schedule started.
    last_schedule_time: datetime | None = None
    # When the next one is due (absent while suspended).
    next_schedule_time: datetime | None = None
    # Every due time up to this one is dealt with: started, missed, or passed while suspended.
    scheduled_through: datetime | None = None
    # Due times skipped (StartingDeadlineExceeded, ConcurrencyForbidden, Superseded), and
    # the last of them.
    missed_schedules: int = Field(default=0, ge=0)
    last_missed_schedule: MissedSchedule | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)

    @classmethod
    def parse(cls, status: Any) -> DrillPlanStatus:
        return cls.model_validate(dict(status or {}))
