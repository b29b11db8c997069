"""The DrillPlan's spec (crds/modeldr.io_drillplans.yaml): its enums, bounds, defaults,
patterns, rule messages and models. The DrillRun's spec is in `drillrun`, the statuses of both
in `drillstatus`.

The contract is ../shared/DRILLS.md. The apiserver validates and defaults every object with the
CRD's OpenAPI schema and CEL rules; the CRD is generated from these models (modeldr.api.schema,
modeldr/drills/crds.py): fields, types, enums, bounds, patterns, defaults and descriptions from
the fields, the CEL rules from each model's `validations(...)`. The models apply the same rules
in Python, beside the CEL they mirror and with the same `Msg` messages, so that a plan is
judged identically off-cluster (a CLI dry-run, a unit test) and the engine reads typed values.

Spec models are strict (no "5" for 5, no unknown fields), like `kubectl apply` with strict field
validation. Status models are lenient: they parse what the engine wrote back, timestamps as
strings included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from modeldr.api.base import SpecModel
from modeldr.api.phase import Phase
from modeldr.api.schema import Int64, OpenAPI, Rule, unique_names, validations

# ----------------------------------------------------------------------------- enums

FaultType = Literal[
    "PodKill",
    "NodeDrain",
    "GPULoss",
    "NodeFailure",
    "ClusterOutage",
    "NetworkPartition",
    "PacketLoss",
    "Latency",
    "ModelCorruption",
    "ModelStoreOutage",
    "ModelStoreLoss",
]
FAULT_TYPES: Final[tuple[str, ...]] = get_args(FaultType)
# Faults whose `mode` selects among the nodes that run the model (not among its pods), and
# the only ones a `node` may be named for.
NODE_FAULTS: Final = ("NodeDrain", "GPULoss", "NodeFailure")
# Faults that end their pods gracefully or not: a grace period means something for them.
GRACE_PERIOD_FAULTS: Final = ("PodKill", "NodeDrain")
# ModelStoreLoss restores the newest backup at most this old unless the fault says otherwise.
DEFAULT_MAX_BACKUP_AGE_SECONDS: Final = 86400
MAX_BACKUP_AGE_SECONDS: Final = 90 * 86400

# Failover: switch to the standby through the operator's own switch; Failback: back to the
# primary; Wait: touch nothing and measure (e.g. recovery after the previous step's fault).
ActionType = Literal["Failover", "Failback", "Wait", "Load"]
ACTION_TYPES: Final[tuple[str, ...]] = get_args(ActionType)

FaultMode = Literal["one", "all", "fixed", "percent"]
FAULT_MODES: Final[tuple[str, ...]] = get_args(FaultMode)

ExpectedCluster = Literal["primary", "standby", "unchanged"]
# How many clusters answer by the end of a step (traffic.mode activeActive: both, or one).
ExpectedClusterCount = Literal["both", "one"]
EXPECTED_CLUSTERS: Final[tuple[str, ...]] = get_args(ExpectedCluster)

# A scheduled run due while one of the plan is in flight: Forbid skips it (recorded as a
# missed schedule); Allow starts it, and the engine's one-run-per-target rule (DRILLS.md)
# ends it Error, TargetBusy, which records a schedule too tight for its drill.
ConcurrencyPolicy = Literal["Forbid", "Allow"]
CONCURRENCY_POLICIES: Final[tuple[str, ...]] = get_args(ConcurrencyPolicy)

# One gate measurement (DRILLS.md, Argo's model without its false successes).
MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error"]
MEASUREMENT_PHASES: Final[tuple[str, ...]] = get_args(MeasurementPhase)

# A journal entry's life: Recorded (written, not yet known to be applied: undo it anyway),
# Applied, Undone (undo confirmed), Abandoned (its cluster is gone for good: the run says so
# and lets go after a bounded time).
FaultState = Literal["Recorded", "Applied", "Undone", "Abandoned", "Forged"]
FAULT_STATES: Final[tuple[str, ...]] = get_args(FaultState)

PHASES: Final[tuple[str, ...]] = tuple(p.value for p in Phase)

# -------------------------------------------------------------------- bounds and defaults
# Every list is bounded so the apiserver can bound the cost of the CEL rules over it, and
# every duration so every loop of a run is bounded in time.

NAME_MAX: Final = 63
MAX_STEPS: Final = 20
MAX_GATES: Final = 16
MAX_ABORT_CONDITIONS: Final = 16
MAX_INPUTS: Final = 64
INPUT_MAX_LENGTH: Final = 4096
QUERY_MAX_LENGTH: Final = 4096
CONDITION_MAX_LENGTH: Final = 1024
URL_MAX_LENGTH: Final = 2048
MAX_RATE_PER_SECOND: Final = 1000
# A run's synthetic traffic, ratePerSecond x its planned seconds (both steady states and every
# step), is bounded too: the probe aims at production. 1,000,000 is 20/s for almost 14 h.
MAX_PROBE_REQUESTS: Final = 1_000_000
MAX_DURATION_SECONDS: Final = 3600
MAX_TIMEOUT_MILLISECONDS: Final = 60_000
MAX_MEASUREMENT_COUNT: Final = 1000
MAX_LIMIT: Final = 1000
MAX_WINDOW_SECONDS: Final = 600
MAX_HISTORY_LIMIT: Final = 100
MAX_STARTING_DEADLINE_SECONDS: Final = 7 * 24 * 3600
MAX_FAULT_VALUE: Final = 10_000
# Every fault order (agent orders, infrastructure injects) expires this long after its last
# renewal; the operator renews every third of it while the step runs (docs/agent.md).
MIN_FAULT_EXPIRY_SECONDS: Final = 3
MAX_FAULT_EXPIRY_SECONDS: Final = 30

DEFAULT_RATE_PER_SECOND: Final = 10
DEFAULT_TIMEOUT_MILLISECONDS: Final = 2000
DEFAULT_INPUTS: Final = ("modeldr drill probe: is this service answering?",)
DEFAULT_STEADY_STATE_SECONDS: Final = 10
DEFAULT_WAIT_FOR_TARGET_SECONDS: Final = 180
DEFAULT_FAULT_CLUSTER: Final = "active"
DEFAULT_FAULT_MODE: Final = "one"
DEFAULT_GATE_INTERVAL_SECONDS: Final = 10
DEFAULT_PROMETHEUS_TIMEOUT_SECONDS: Final = 5
DEFAULT_ABORT_WINDOW_SECONDS: Final = 10
DEFAULT_GOLDEN_SET_KEY: Final = "golden.jsonl"
DEFAULT_MIN_AGREEMENT: Final = 1.0
DEFAULT_MAX_PODS_PERCENT: Final = 50
DEFAULT_HISTORY_LIMIT: Final = 10
DEFAULT_FAULT_EXPIRY_SECONDS: Final = 15
DEFAULT_CONCURRENCY_POLICY: Final = "Forbid"

# Status lists the engine keeps bounded (oldest dropped first where it says so).
MAX_MEASUREMENTS: Final = 10  # per gate: the last ones
MAX_FAULT_RECORDS: Final = 64
MAX_TARGETS: Final = 256
MAX_MODEL_CHECKS: Final = MAX_STEPS + 2  # the baseline, one per step, the final steady state
MAX_CONDITIONS: Final = 16
MAX_PREFLIGHT: Final = 32

# Patterns (the same strings go into the CRD).
DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# ModelDeployment names (its CRD): DNS-1035 labels of at most 52 characters.
MODELDEPLOYMENT_NAME: Final = r"^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$"
# A plan's name is the value of the modeldr.io/drill-plan label on its runs and the prefix
# of their names, so it stays a DNS-1123 label short enough to leave room for a suffix.
PLAN_NAME: Final = r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$"
HTTP_URL: Final = r"^https?://[^\s/?#]+[^\s]*$"
CONFIGMAP_KEY: Final = r"^[-._a-zA-Z0-9]+$"
# Five cron fields, six with a leading seconds field, or one of the @ shorthands the CronJob
# controller accepts (kube/schedule.py evaluates them).
CRON: Final = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4,5}\S+)$"
TIME_ZONE: Final = r"^[A-Za-z][A-Za-z0-9_+/-]*$"
REASON: Final = r"^[A-Z][A-Za-z0-9]*$"


class Msg:
    """The messages of the cross-field rules, word for word the CRD's CEL messages.

    Each names the field to change, so `kubectl apply` and a dry-run say the same thing.
    """

    PLAN_NAME = (
        "metadata.name must be a DNS-1123 label of at most 52 characters: it is the "
        "modeldr.io/drill-plan label value on the plan's DrillRuns and the prefix of their names"
    )
    STEP_FAULT_XOR_ACTION = "a step needs exactly one of steps[].fault or steps[].action"
    FIXED_NEEDS_VALUE = "fault.mode fixed needs fault.value (how many targets)"
    PERCENT_RANGE = (
        "fault.mode percent needs fault.value between 0 and 100 (percent of the targets, "
        "rounded up)"
    )
    VALUE_ONLY_FIXED_PERCENT = (
        "fault.value is only for fault.mode fixed or percent; modes one and all take no value"
    )
    NODE_ONLY_NODE_FAULTS = "fault.node is only for NodeDrain, GPULoss and NodeFailure"
    NODE_MODE_ONE = "fault.node names one node: leave fault.mode at one and fault.value unset"
    GRACE_ONLY = "fault.gracePeriodSeconds is only for PodKill and NodeDrain"
    PACKET_LOSS_NEEDS_PERCENT = "fault type PacketLoss needs fault.lossPercent"
    LOSS_ONLY_PACKET_LOSS = "fault.lossPercent is only for PacketLoss"
    LATENCY_NEEDS_MS = "fault type Latency needs fault.latencyMilliseconds"
    LATENCY_ONLY = "fault.latencyMilliseconds and fault.jitterMilliseconds are only for Latency"
    BACKUP_AGE_ONLY = "fault.maxBackupAgeSeconds is only for ModelStoreLoss"
    RESTORE_ONLY = (
        "steps[].expect.maxRestoreSeconds is only for a step whose fault is ModelStoreLoss "
        "(its undo is the restore)"
    )
    STEP_NAMES_UNIQUE = "steps[].name must be unique"
    GATE_NAMES_UNIQUE = "gates[].name must be unique"
    ABORT_NAMES_UNIQUE = "abortConditions[].name must be unique"
    GATE_STEPS_EXIST = "gates[].steps must name steps of spec.steps"
    GATE_NEEDS_CONDITION = (
        "a gate needs gates[].successCondition or gates[].failureCondition (or both)"
    )
    ABORT_QUERY_AND_CONDITION = (
        "abortConditions[].prometheus.query and abortConditions[].condition go together: "
        "the condition is CEL over the query's result"
    )
    ABORT_ONE_KIND = (
        "an abort condition needs exactly one of abortConditions[].prometheus.query (with "
        "condition) or abortConditions[].maxErrorRatio"
    )
    TIME_ZONE_NEEDS_SCHEDULE = "timeZone needs schedule (a cron expression)"
    PROBE_TRAFFIC_CAP = (
        f"traffic.ratePerSecond x the planned seconds (2 x steadyState.durationSeconds + every "
        f"step's durationSeconds, a Load step's at its ratePerSecond) must be at most "
        f"{MAX_PROBE_REQUESTS} probe requests: lower the rate or the durations"
    )
    LOAD_RATE = (
        "action.ratePerSecond goes with action type Load, and only with it (rampSeconds too)"
    )
    PLAN_REF_IMMUTABLE = "spec.planRef is immutable: create another DrillRun"
    PLAN_GENERATION_IMMUTABLE = "spec.planGeneration cannot change or go once set"
    PLAN_SNAPSHOT_IMMUTABLE = (
        "spec.plan is the snapshot this run executes: it cannot change or go once set"
    )
    ABORT_IRREVERSIBLE = "spec.abort cannot be set back to false: an abort is final"
    REPEAT_PASSES_WITHIN_RUNS = "repeat.untilConsecutivePasses must be at most repeat.runs"
    REPEAT_WITHIN_HISTORY = (
        "repeat.runs must be at most historyLimit: the series' runs are the evidence of its "
        "pass rate, none may be pruned while it goes on"
    )
    ANSWER_EXPECTATIONS_NEED_CHECKS = (
        "steps[].expect.maxTimeToCorrectSeconds and maxWrongAnswerRatio judge answers against "
        "the baseline model check: they need spec.modelChecks"
    )


def duplicates(names: Iterable[str]) -> list[str]:
    """Names given more than once, sorted."""
    return sorted(name for name, n in Counter(names).items() if n > 1)


def _unique(message: str, names: list[str]) -> None:
    if dup := duplicates(names):
        raise ValueError(f"{message}; given more than once: {', '.join(dup)}")


# --------------------------------------------------------------------------- spec models
# Each field's description and each model's docstring is the CRD's (`kubectl explain`); each
# model's CEL rules sit beside the validators that apply them off-cluster.

InputText = Annotated[str, StringConstraints(min_length=1, max_length=INPUT_MAX_LENGTH)]
StepName = Annotated[
    str,
    StringConstraints(max_length=NAME_MAX, pattern=DNS_LABEL),
    OpenAPI(description="A step's name."),
]


class Target(SpecModel):
    """The ModelDeployment to drill."""

    model_deployment: str = Field(
        max_length=52,
        pattern=MODELDEPLOYMENT_NAME,
        description="A ModelDeployment in the plan's namespace; it must carry the label "
        "modeldr.io/drills=enabled.",
    )


class Traffic(SpecModel):
    """Synthetic inference requests the run sends, as a client does, throughout."""

    rate_per_second: float = Field(
        default=DEFAULT_RATE_PER_SECOND,
        gt=0,
        le=MAX_RATE_PER_SECOND,
        description="Probe requests sent per second.",
    )
    timeout_milliseconds: int = Field(
        default=DEFAULT_TIMEOUT_MILLISECONDS,
        ge=1,
        le=MAX_TIMEOUT_MILLISECONDS,
        description="A request slower than this failed.",
    )
    inputs: list[InputText] = Field(
        default_factory=lambda: list(DEFAULT_INPUTS),
        min_length=1,
        max_length=MAX_INPUTS,
        description="Texts sent in turn.",
    )
    url: str | None = Field(
        default=None,
        max_length=URL_MAX_LENGTH,
        pattern=HTTP_URL,
        description="The entry point clients use; default: the addresses of the hub Service's "
        "EndpointSlice that the endpointslice provider keeps.",
    )


class SteadyState(SpecModel):
    """Checked before the first step (not met: the run ends Error, nothing touched) and after
    the last one (not met: Failed, it did not recover)."""

    duration_seconds: int = Field(
        default=DEFAULT_STEADY_STATE_SECONDS,
        ge=1,
        le=MAX_DURATION_SECONDS,
        description="How long each check (before the first step, after the last) measures.",
    )
    max_error_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Failed / sent probe requests."
    )
    max_p99_latency_ms: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_MILLISECONDS,
        description="p99 of the probe's requests; unset: measured, not checked.",
    )
    # drills/readiness.py.
    wait_for_target_seconds: int = Field(
        default=DEFAULT_WAIT_FOR_TARGET_SECONDS,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="Before the steady state, how long to wait for the target to serve: its "
        "Ready condition True and the drill's probe answered in the last 2 s. A target that "
        "never does ends the run Error, reason TargetNotReady, nothing touched.",
    )


_NODE_FAULTS: Final = ", ".join(f"'{t}'" for t in NODE_FAULTS)
_GRACE_FAULTS: Final = ", ".join(f"'{t}'" for t in GRACE_PERIOD_FAULTS)


class Fault(SpecModel):
    """What to break in this step. Undone when the step ends (and on every other path)."""

    # Each rule is checked on the field the CRD's rule names in its fieldPath (so both say
    # e.g. `spec.steps[0].fault.value`), with the fields declared before it in info.data;
    # validate_default runs it when the field is absent too. A field that failed its own
    # validation is missing from info.data, and the rules that need it are skipped.
    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.mode != 'fixed' || has(self.value)",
                Msg.FIXED_NEEDS_VALUE,
                field_path=".value",
                reason="FieldValueRequired",
            ),
            Rule(
                "self.mode != 'percent' || (has(self.value) && self.value <= 100)",
                Msg.PERCENT_RANGE,
                field_path=".value",
            ),
            Rule(
                "!(self.mode in ['one', 'all']) || !has(self.value)",
                Msg.VALUE_ONLY_FIXED_PERCENT,
                field_path=".value",
                reason="FieldValueForbidden",
            ),
            Rule(
                f"!has(self.node) || self.type in [{_NODE_FAULTS}]",
                Msg.NODE_ONLY_NODE_FAULTS,
                field_path=".node",
                reason="FieldValueForbidden",
            ),
            Rule(
                "!has(self.node) || (self.mode == 'one' && !has(self.value))",
                Msg.NODE_MODE_ONE,
                field_path=".node",
            ),
            Rule(
                f"!has(self.gracePeriodSeconds) || self.type in [{_GRACE_FAULTS}]",
                Msg.GRACE_ONLY,
                field_path=".gracePeriodSeconds",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.type != 'PacketLoss' || has(self.lossPercent)",
                Msg.PACKET_LOSS_NEEDS_PERCENT,
                field_path=".lossPercent",
                reason="FieldValueRequired",
            ),
            Rule(
                "self.type == 'PacketLoss' || !has(self.lossPercent)",
                Msg.LOSS_ONLY_PACKET_LOSS,
                field_path=".lossPercent",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.type != 'Latency' || has(self.latencyMilliseconds)",
                Msg.LATENCY_NEEDS_MS,
                field_path=".latencyMilliseconds",
                reason="FieldValueRequired",
            ),
            Rule(
                "self.type == 'Latency'"
                " || (!has(self.latencyMilliseconds) && !has(self.jitterMilliseconds))",
                Msg.LATENCY_ONLY,
                field_path=".latencyMilliseconds",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.type == 'ModelStoreLoss' || !has(self.maxBackupAgeSeconds)",
                Msg.BACKUP_AGE_ONLY,
                field_path=".maxBackupAgeSeconds",
                reason="FieldValueForbidden",
            ),
        )
    )

    type: FaultType = Field(
        description="PodKill, NodeDrain, GPULoss, NodeFailure, ClusterOutage, NetworkPartition, "
        "PacketLoss, Latency, ModelCorruption, ModelStoreOutage, ModelStoreLoss (docs/crds.md, "
        "DrillPlan faults)."
    )
    cluster: str = Field(
        default=DEFAULT_FAULT_CLUSTER,
        max_length=NAME_MAX,
        pattern=DNS_LABEL,
        description="active (the cluster serving when the step starts), primary, standby, or a "
        "member cluster's name.",
    )
    mode: FaultMode = Field(
        default=DEFAULT_FAULT_MODE,
        description="Which of the candidate targets (the model's pods; for NodeDrain, GPULoss "
        "and NodeFailure the nodes running them; for ModelStoreOutage and ModelStoreLoss the "
        "pods restarted while the store is down or its model gone; ignored by ClusterOutage): "
        "one (chosen at random, seed recorded), all, fixed (value targets), percent (value "
        "percent, rounded up). Zero targets ends the step Error.",
    )
    value: int | None = Field(
        default=None,
        ge=0,
        le=MAX_FAULT_VALUE,
        validate_default=True,
        description="Targets (mode fixed) or percent of them (mode percent, 0-100).",
    )
    node: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="NodeDrain, GPULoss, NodeFailure: this node (it must run the model), "
        "instead of one chosen at random.",
    )
    grace_period_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="PodKill, NodeDrain: the pods' grace period; 0 is a crash. Default: the "
        "pods' own.",
    )
    loss_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        validate_default=True,
        description="PacketLoss: percent of packets dropped.",
    )
    latency_milliseconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_MILLISECONDS,
        description="Latency: delay added to each packet.",
    )
    jitter_milliseconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TIMEOUT_MILLISECONDS,
        description="Latency: jitter around the delay.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Random seed for choosing targets; default: a fresh one, recorded in the "
        "journal.",
    )
    max_backup_age_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BACKUP_AGE_SECONDS,
        description="ModelStoreLoss: preflight and the step refuse (BackupTooOld) when the "
        "model's newest backup is older than this (default 86400); nothing is deleted "
        "without a backup that restores.",
    )

    @field_validator("value")
    @classmethod
    def _value_fits_mode(cls, value: int | None, info: ValidationInfo) -> int | None:
        mode = info.data.get("mode")
        if mode == "fixed" and value is None:
            raise ValueError(Msg.FIXED_NEEDS_VALUE)
        if mode == "percent" and (value is None or value > 100):
            raise ValueError(Msg.PERCENT_RANGE)
        if mode in ("one", "all") and value is not None:
            raise ValueError(Msg.VALUE_ONLY_FIXED_PERCENT)
        return value

    @field_validator("node")
    @classmethod
    def _node_fault(cls, node: str | None, info: ValidationInfo) -> str | None:
        if node is None:
            return node
        if "type" in info.data and info.data["type"] not in NODE_FAULTS:
            raise ValueError(Msg.NODE_ONLY_NODE_FAULTS)
        if info.data.get("mode", "one") != "one" or info.data.get("value") is not None:
            raise ValueError(Msg.NODE_MODE_ONE)
        return node

    @field_validator("grace_period_seconds")
    @classmethod
    def _grace(cls, grace: int | None, info: ValidationInfo) -> int | None:
        if (
            grace is not None
            and info.data.get("type", GRACE_PERIOD_FAULTS[0]) not in GRACE_PERIOD_FAULTS
        ):
            raise ValueError(Msg.GRACE_ONLY)
        return grace

    @field_validator("loss_percent")
    @classmethod
    def _loss(cls, percent: int | None, info: ValidationInfo) -> int | None:
        if "type" not in info.data:
            return percent
        if info.data["type"] == "PacketLoss" and percent is None:
            raise ValueError(Msg.PACKET_LOSS_NEEDS_PERCENT)
        if info.data["type"] != "PacketLoss" and percent is not None:
            raise ValueError(Msg.LOSS_ONLY_PACKET_LOSS)
        return percent

    @model_validator(mode="after")
    def _latency(self) -> Fault:
        # One rule over two fields, like the CRD's (whose fieldPath is latencyMilliseconds).
        if self.type == "Latency" and self.latency_milliseconds is None:
            raise ValueError(Msg.LATENCY_NEEDS_MS)
        if self.type != "Latency" and (
            self.latency_milliseconds is not None or self.jitter_milliseconds is not None
        ):
            raise ValueError(Msg.LATENCY_ONLY)
        if self.type != "ModelStoreLoss" and self.max_backup_age_seconds is not None:
            raise ValueError(Msg.BACKUP_AGE_ONLY)
        return self

    @property
    def backup_age_limit(self) -> int:
        """ModelStoreLoss: the oldest backup it may restore, in seconds."""
        return self.max_backup_age_seconds or DEFAULT_MAX_BACKUP_AGE_SECONDS


class Action(SpecModel):
    """What to do instead of breaking something."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.type == 'Load' ? has(self.ratePerSecond) : "
                "!has(self.ratePerSecond) && !has(self.rampSeconds)",
                Msg.LOAD_RATE,
                field_path=".ratePerSecond",
            )
        )
    )

    type: ActionType = Field(
        description="Failover: switch traffic to the standby through the operator; Failback: "
        "switch back to the primary through the operator's failback and wait for it; Wait: "
        "touch nothing and measure; Load: the probe ramps to ratePerSecond for the step "
        "(the plan's rate again after it)."
    )
    rate_per_second: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATE_PER_SECOND,
        description="Load: the probe's rate for the step (requests per second).",
    )
    ramp_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="Load: reach ratePerSecond linearly over this long (default 0: at once).",
    )

    @model_validator(mode="after")
    def _load_rate(self) -> Action:
        if (self.type == "Load") != (self.rate_per_second is not None) or (
            self.type != "Load" and self.ramp_seconds is not None
        ):
            raise ValueError(Msg.LOAD_RATE)
        return self

    def rate(self, plan_rate: float) -> float:
        """The probe's rate during this step."""
        return self.rate_per_second if self.rate_per_second is not None else plan_rate


class MinReplicas(SpecModel):
    """Ready replicas each cluster must have by the end of the step."""

    primary: int | None = Field(
        default=None, ge=0, le=10000, description="Ready replicas in the primary cluster."
    )
    standby: int | None = Field(
        default=None, ge=0, le=10000, description="Ready replicas in the standby cluster."
    )


class Expect(SpecModel):
    """What must hold in the step's window; an unset field is measured, not checked."""

    active_cluster: ExpectedCluster | None = Field(
        default=None,
        description="primary, standby, or unchanged: reached by the end of the step and held "
        "there.",
    )
    active_clusters: ExpectedClusterCount | None = Field(
        default=None,
        description="both or one: how many clusters answer the probe in the step's last "
        "5 seconds (traffic.mode activeActive: both serve, or one carries everything).",
    )
    min_replicas: MinReplicas | None = Field(
        default=None,
        description="Ready replicas per cluster (the ModelDeployment's status) by the end of "
        "the step, e.g. the standby scaled up after a failover.",
    )
    max_rto_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="Longest stretch in the window with no successful probe request.",
    )
    max_error_ratio: float | None = Field(
        default=None, ge=0, le=1, description="Failed / sent probe requests in the window."
    )
    max_p99_latency_ms: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_MILLISECONDS,
        description="p99 of the probe's requests in the window.",
    )
    max_time_to_correct_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="From the step's start until every second's answers agree with the "
        "baseline at modelChecks.minAgreement (failed requests count as wrong). Needs "
        "modelChecks.",
    )
    max_wrong_answer_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Successful probe answers that differ from the baseline's answer for the "
        "same golden text / answers judged. Needs modelChecks.",
    )
    max_restore_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION_SECONDS,
        description="ModelStoreLoss: the undo's restore of the model from its backup into the "
        "store, verified, within this long.",
    )

    @property
    def judges_answers(self) -> bool:
        return self.max_time_to_correct_seconds is not None or (
            self.max_wrong_answer_ratio is not None
        )


class Step(SpecModel):
    """One step: a fault or an action, held for durationSeconds, then its expectations."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("has(self.fault) != has(self.action)", Msg.STEP_FAULT_XOR_ACTION),
            Rule(
                "!has(self.expect) || !has(self.expect.maxRestoreSeconds) || "
                "(has(self.fault) && self.fault.type == 'ModelStoreLoss')",
                Msg.RESTORE_ONLY,
                field_path=".expect.maxRestoreSeconds",
                reason="FieldValueForbidden",
            ),
        )
    )

    name: StepName = Field(description="Unique within the plan (gates refer to it).")
    fault: Fault | None = None
    action: Action | None = None
    duration_seconds: int = Field(
        ge=1,
        le=MAX_DURATION_SECONDS,
        description="How long the step holds; its window lasts until the next step starts.",
    )
    expect: Expect = Field(default_factory=lambda: Expect.model_validate({}))

    @model_validator(mode="after")
    def _fault_xor_action(self) -> Step:
        if (self.fault is None) == (self.action is None):
            raise ValueError(Msg.STEP_FAULT_XOR_ACTION)
        if self.expect.max_restore_seconds is not None and (
            self.fault is None or self.fault.type != "ModelStoreLoss"
        ):
            raise ValueError(Msg.RESTORE_ONLY)
        return self


class PrometheusQuery(SpecModel):
    """A Prometheus query."""

    query: str = Field(
        min_length=1,
        max_length=QUERY_MAX_LENGTH,
        description="PromQL, evaluated as an instant query; its result (a list of sample "
        "values, doubles) is `result` in the condition.",
    )
    url: str | None = Field(
        default=None,
        max_length=URL_MAX_LENGTH,
        pattern=HTTP_URL,
        description="Prometheus base URL; default: the Prometheus the operator is configured with.",
    )
    timeout_seconds: int = Field(
        default=DEFAULT_PROMETHEUS_TIMEOUT_SECONDS,
        ge=1,
        le=60,
        description="Per query; a timeout is missing evidence (Inconclusive), never a pass.",
    )


class Gate(SpecModel):
    """A Prometheus gate with Argo Rollouts' analysis semantics; missing evidence never
    passes."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "has(self.successCondition) || has(self.failureCondition)",
                Msg.GATE_NEEDS_CONDITION,
            )
        )
    )

    name: str = Field(max_length=NAME_MAX, pattern=DNS_LABEL, description="Unique within the plan.")
    steps: list[StepName] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        # The apiserver says "Duplicate value"; _steps_are_a_set below.
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="The steps whose windows it measures in; default: the whole run.",
    )
    prometheus: PrometheusQuery = Field(description="The Prometheus query measured.")
    interval_seconds: int = Field(
        default=DEFAULT_GATE_INTERVAL_SECONDS,
        ge=1,
        le=MAX_DURATION_SECONDS,
        description="Time between measurements.",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_MEASUREMENT_COUNT,
        description="Measurements to take; default: every intervalSeconds while its windows last.",
    )
    initial_delay_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="Wait after the window opens before the first measurement.",
    )
    success_condition: str | None = Field(
        default=None,
        min_length=1,
        max_length=CONDITION_MAX_LENGTH,
        description="CEL over `result` (list of double); true: the measurement is Successful.",
    )
    failure_condition: str | None = Field(
        default=None,
        min_length=1,
        max_length=CONDITION_MAX_LENGTH,
        description="CEL over `result`; true: the measurement is Failed.",
    )
    failure_limit: int = Field(
        default=0, ge=0, le=MAX_LIMIT, description="Failed measurements tolerated."
    )
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        le=MAX_LIMIT,
        description="Inconclusive measurements (empty result, NaN, Prometheus unreachable) "
        "tolerated.",
    )
    consecutive_error_limit: int = Field(
        default=0,
        ge=0,
        le=MAX_LIMIT,
        description="Error measurements in a row tolerated (a query Prometheus rejects, a "
        "condition that does not evaluate); more ends the gate and the run Error.",
    )

    @field_validator("steps")
    @classmethod
    def _steps_are_a_set(cls, steps: list[str]) -> list[str]:
        # The CRD declares the list a set: the apiserver says "Duplicate value".
        if dup := duplicates(steps):
            raise ValueError(f"gates[].steps has duplicates: {', '.join(dup)}")
        return steps

    @model_validator(mode="after")
    def _needs_a_condition(self) -> Gate:
        if self.success_condition is None and self.failure_condition is None:
            raise ValueError(Msg.GATE_NEEDS_CONDITION)
        return self


class AbortCondition(SpecModel):
    """Stops the run (every fault undone, verdict Aborted) within 5 s of holding; evaluated at
    least every 2 s. Either a Prometheus query with a CEL condition, or the probe's error ratio
    over windowSeconds."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("has(self.prometheus) == has(self.condition)", Msg.ABORT_QUERY_AND_CONDITION),
            Rule("has(self.prometheus) != has(self.maxErrorRatio)", Msg.ABORT_ONE_KIND),
        )
    )

    name: str = Field(
        max_length=NAME_MAX,
        pattern=DNS_LABEL,
        description="Unique within the plan; named in the run's message when it holds.",
    )
    prometheus: PrometheusQuery | None = Field(
        default=None, description="The Prometheus query evaluated."
    )
    condition: str | None = Field(
        default=None,
        min_length=1,
        max_length=CONDITION_MAX_LENGTH,
        description="CEL over `result` (list of double); true: abort.",
    )
    max_error_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Abort when the probe's error ratio over windowSeconds exceeds it.",
    )
    window_seconds: int = Field(
        default=DEFAULT_ABORT_WINDOW_SECONDS,
        ge=1,
        le=MAX_WINDOW_SECONDS,
        description="The probe window of maxErrorRatio.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> AbortCondition:
        if (self.prometheus is None) != (self.condition is None):
            raise ValueError(Msg.ABORT_QUERY_AND_CONDITION)
        if (self.prometheus is None) == (self.max_error_ratio is None):
            raise ValueError(Msg.ABORT_ONE_KIND)
        return self


class ConfigMapKeyRef(SpecModel):
    """A ConfigMap in the plan's namespace: one JSON object {"text": ..., "label": ...} a
    line."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="The ConfigMap.")
    key: str = Field(
        default=DEFAULT_GOLDEN_SET_KEY,
        max_length=253,
        pattern=CONFIGMAP_KEY,
        description="Its key holding the golden set.",
    )


class GoldenSetRef(SpecModel):
    """Where the golden set is: labelled examples the model answers."""

    config_map_ref: ConfigMapKeyRef


class ModelChecks(SpecModel):
    """Re-evaluation of the served model on a golden set: a baseline on the active cluster
    before the first fault, then after each step on whichever cluster serves; the served digest
    is compared with the ModelDeployment's spec.model.expectedDigest."""

    golden_set: GoldenSetRef
    min_agreement: float = Field(
        default=DEFAULT_MIN_AGREEMENT,
        ge=0,
        le=1,
        description="Share of answers with the same label as the baseline.",
    )
    min_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Against the golden labels; unset: reported, not checked.",
    )
    min_precision: float | None = Field(
        default=None, ge=0, le=1, description="Macro precision; unset: reported, not checked."
    )
    min_recall: float | None = Field(
        default=None, ge=0, le=1, description="Macro recall; unset: reported, not checked."
    )
    min_f1: float | None = Field(
        default=None, ge=0, le=1, description="Macro F1; unset: reported, not checked."
    )


class Repeat(SpecModel):
    """A game day: the plan's run repeated until it passes often enough in a row."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.untilConsecutivePasses <= self.runs",
                Msg.REPEAT_PASSES_WITHIN_RUNS,
                field_path=".untilConsecutivePasses",
            )
        )
    )

    runs: int = Field(
        ge=1,
        le=MAX_HISTORY_LIMIT,
        description="Most runs in one series (each start of the plan: a generation or a due "
        "time); the series stops there, satisfied or not.",
    )
    until_consecutive_passes: int = Field(
        ge=1,
        le=MAX_HISTORY_LIMIT,
        description="The series stops once this many runs in a row passed.",
    )

    @model_validator(mode="after")
    def _passes_within_runs(self) -> Repeat:
        if self.until_consecutive_passes > self.runs:
            raise ValueError(Msg.REPEAT_PASSES_WITHIN_RUNS)
        return self


class BlastRadius(SpecModel):
    """How much of the model a drill may take down."""

    max_pods_percent: int = Field(
        default=DEFAULT_MAX_PODS_PERCENT,
        ge=1,
        le=100,
        description="Most of the model's pods (both clusters together) a step may take down at "
        "once; a step that would take more ends Error, nothing touched.",
    )


class DrillPlanSpec(SpecModel):
    """What the drill does and what must hold."""

    # The plan-wide rules; the validators below apply each on the field its fieldPath names.
    model_config = ConfigDict(
        json_schema_extra=validations(
            unique_names("steps", Msg.STEP_NAMES_UNIQUE),
            unique_names("gates", Msg.GATE_NAMES_UNIQUE),
            unique_names("abortConditions", Msg.ABORT_NAMES_UNIQUE),
            Rule(
                "!has(self.gates) || self.gates.all(g, !has(g.steps)"
                " || g.steps.all(n, self.steps.exists(s, s.name == n)))",
                Msg.GATE_STEPS_EXIST,
                field_path=".gates",
            ),
            Rule(
                "!has(self.timeZone) || has(self.schedule)",
                Msg.TIME_ZONE_NEEDS_SCHEDULE,
                field_path=".timeZone",
                reason="FieldValueRequired",
            ),
            Rule(
                "(has(self.traffic) && has(self.traffic.ratePerSecond) ? "
                f"self.traffic.ratePerSecond : {float(DEFAULT_RATE_PER_SECOND)}) * double(2 * "
                "(has(self.steadyState) && has(self.steadyState.durationSeconds) ? "
                f"self.steadyState.durationSeconds : {DEFAULT_STEADY_STATE_SECONDS}) + "
                "self.steps.filter(s, !has(s.action) || s.action.type != 'Load')"
                ".map(s, s.durationSeconds).sum()) + "
                "self.steps.filter(s, has(s.action) && s.action.type == 'Load')"
                ".map(s, s.action.ratePerSecond * double(s.durationSeconds)).sum() "
                f"<= {float(MAX_PROBE_REQUESTS)}",
                Msg.PROBE_TRAFFIC_CAP,
                field_path=".steps",
            ),
            Rule(
                "!has(self.repeat) || self.repeat.runs <= "
                f"(has(self.historyLimit) ? self.historyLimit : {DEFAULT_HISTORY_LIMIT})",
                Msg.REPEAT_WITHIN_HISTORY,
                field_path=".repeat.runs",
            ),
            Rule(
                "has(self.modelChecks) || !self.steps.exists(s, has(s.expect) && "
                "(has(s.expect.maxTimeToCorrectSeconds) || has(s.expect.maxWrongAnswerRatio)))",
                Msg.ANSWER_EXPECTATIONS_NEED_CHECKS,
                field_path=".modelChecks",
                reason="FieldValueRequired",
            ),
        )
    )

    target: Target
    traffic: Traffic = Field(default_factory=lambda: Traffic.model_validate({}))
    steady_state: SteadyState = Field(default_factory=lambda: SteadyState.model_validate({}))
    steps: list[Step] = Field(
        min_length=1, max_length=MAX_STEPS, description="Run in order, one at a time."
    )
    gates: list[Gate] = Field(
        default_factory=list,
        max_length=MAX_GATES,
        description="Prometheus gates: what the metrics must say while the steps run.",
    )
    abort_conditions: list[AbortCondition] = Field(
        default_factory=list,
        max_length=MAX_ABORT_CONDITIONS,
        description="Conditions that stop the run when they hold.",
    )
    model_checks: ModelChecks | None = None
    blast_radius: BlastRadius = Field(default_factory=lambda: BlastRadius.model_validate({}))
    schedule: str | None = Field(
        default=None,
        max_length=128,
        pattern=CRON,
        description="Cron expression (5 fields, 6 with a leading seconds field, or @hourly, "
        "@daily, ...): runs start on time, named <plan>-<minutes since the epoch> (seconds for "
        "a 6-field schedule), instead of once per spec generation. status.nextScheduleTime and "
        "status.scheduleMessage say what comes next.",
    )
    time_zone: str | None = Field(
        default=None,
        max_length=64,
        pattern=TIME_ZONE,
        description="IANA time zone of schedule; default: UTC.",
    )
    suspend: bool = Field(default=False, description="true: no run starts (runs in flight go on).")
    concurrency_policy: ConcurrencyPolicy = Field(
        default=DEFAULT_CONCURRENCY_POLICY,
        description="A scheduled run due while a run of the plan is in flight: Forbid (skip it, "
        "recorded in status.lastMissedSchedule) or Allow (start it: one run per target still "
        "holds, so it ends Error, TargetBusy).",
    )
    starting_deadline_seconds: Int64 | None = Field(
        default=None,
        ge=1,
        le=MAX_STARTING_DEADLINE_SECONDS,
        description="A due time seen more than this late (the operator was down) is skipped "
        "and recorded as missed; unset: the latest one is started however late.",
    )
    history_limit: int = Field(
        default=DEFAULT_HISTORY_LIMIT,
        ge=1,
        le=MAX_HISTORY_LIMIT,
        description="Finished DrillRuns of this plan kept; older ones are deleted.",
    )
    fault_expiry_seconds: int = Field(
        default=DEFAULT_FAULT_EXPIRY_SECONDS,
        ge=MIN_FAULT_EXPIRY_SECONDS,
        le=MAX_FAULT_EXPIRY_SECONDS,
        description="Every fault order of a run (node agent orders, infrastructure injects) "
        "expires this long after its last renewal: the agent or provider undoes it by itself. "
        "The operator renews every third of it while the step runs, so a dead or partitioned "
        "operator leaves no fault for longer than this.",
    )
    repeat: Repeat | None = Field(
        default=None,
        description="A game day: each start of the plan (a generation, a due time) begins a "
        "series of runs, one after another, until untilConsecutivePasses in a row passed or "
        "runs ran; status.passRate says how often it passed, with a 95% Wilson interval.",
    )
    dry_run: bool = Field(
        default=False,
        description="true: every run of the plan is a dry run (it resolves each step's targets "
        "and who would act, runs the preflight, touches nothing and ends Planned).",
    )

    @field_validator("steps")
    @classmethod
    def _step_names_unique(cls, steps: list[Step]) -> list[Step]:
        _unique(Msg.STEP_NAMES_UNIQUE, [s.name for s in steps])
        return steps

    @field_validator("gates")
    @classmethod
    def _gates(cls, gates: list[Gate], info: ValidationInfo) -> list[Gate]:
        _unique(Msg.GATE_NAMES_UNIQUE, [g.name for g in gates])
        if "steps" in info.data:
            steps = {s.name for s in info.data["steps"]}
            if unknown := [n for g in gates for n in g.steps if n not in steps]:
                raise ValueError(f"{Msg.GATE_STEPS_EXIST}; not steps: {', '.join(unknown)}")
        return gates

    @field_validator("abort_conditions")
    @classmethod
    def _abort_names_unique(cls, conditions: list[AbortCondition]) -> list[AbortCondition]:
        _unique(Msg.ABORT_NAMES_UNIQUE, [a.name for a in conditions])
        return conditions

    @field_validator("steps")
    @classmethod
    def _probe_traffic_bounded(cls, steps: list[Step], info: ValidationInfo) -> list[Step]:
        if "traffic" not in info.data or "steady_state" not in info.data:
            return steps  # failed on their own; the rule needs both
        rate = info.data["traffic"].rate_per_second
        planned = 2 * info.data["steady_state"].duration_seconds * rate + sum(
            (step.action.rate(rate) if step.action else rate) * step.duration_seconds
            for step in steps
        )
        if planned > MAX_PROBE_REQUESTS:
            raise ValueError(f"{Msg.PROBE_TRAFFIC_CAP} (here {planned:,.0f})")
        return steps

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, zone: str | None, info: ValidationInfo) -> str | None:
        if zone is not None and "schedule" in info.data and info.data["schedule"] is None:
            raise ValueError(Msg.TIME_ZONE_NEEDS_SCHEDULE)
        return zone

    @model_validator(mode="after")
    def _repeat_within_history(self) -> DrillPlanSpec:
        if self.repeat is not None and self.repeat.runs > self.history_limit:
            raise ValueError(Msg.REPEAT_WITHIN_HISTORY)
        return self

    @model_validator(mode="after")
    def _answer_expectations_need_checks(self) -> DrillPlanSpec:
        if self.model_checks is None and any(s.expect.judges_answers for s in self.steps):
            raise ValueError(Msg.ANSWER_EXPECTATIONS_NEED_CHECKS)
        return self

    @classmethod
    def parse(cls, spec: Any) -> DrillPlanSpec:
        return cls.model_validate(dict(spec))

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
