"""Write the DrillPlan and DrillRun CRDs (crds/modeldr.io_drillplans.yaml, _drillruns.yaml).

    .venv/bin/python scripts/gen_drill_crds.py           # (re)write both files
    .venv/bin/python scripts/gen_drill_crds.py --check   # exit 1 if they are out of date

Why a generator: a DrillRun carries a snapshot of its plan's spec (spec.plan), so both CRDs
hold the same plan schema, and YAML anchors cannot span two files. The schema is written once
here; its enums, bounds, defaults, patterns and rule messages come from modeldr.api.drillplan,
the pydantic models, so a plan is judged the same by the apiserver and off-cluster.
tests/unit/test_drills_spec.py fails when the committed files differ from this output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from modeldr.api import drillplan as SP
from modeldr.api.base import MESSAGE_MAX_LENGTH
from modeldr.kube.constants import (
    DRILL_PLAN_LABEL,
    DRILLPLAN_KIND,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    VERSION,
    crd_name,
)

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"

Schema = dict[str, Any]

# ----------------------------------------------------------------------- schema helpers


def _with(
    node: Schema, description: str | None, default: Any, rules: list[Schema] | None
) -> Schema:
    if description:
        # After `type`, as in the hand-written ModelDeployment CRD.
        first, *rest = node.items()
        node = dict([first, ("description", " ".join(description.split())), *rest])
    if default is not None:
        node["default"] = default
    if rules:
        node["x-kubernetes-validations"] = rules
    return node


def string(
    description: str | None = None,
    *,
    max_length: int,
    min_length: int | None = None,
    pattern: str | None = None,
    enum: tuple[str, ...] | None = None,
    default: str | None = None,
    fmt: str | None = None,
) -> Schema:
    node: Schema = {"type": "string"}
    if enum is not None:
        node["enum"] = list(enum)
    else:
        if min_length is not None:
            node["minLength"] = min_length
        node["maxLength"] = max_length
    if pattern is not None:
        node["pattern"] = pattern
    if fmt is not None:
        node["format"] = fmt
    return _with(node, description, default, None)


def enum(description: str | None, values: tuple[str, ...], default: str | None = None) -> Schema:
    # maxLength is implied by the enum for the CEL cost estimate.
    return string(description, max_length=0, enum=values, default=default)


def timestamp(description: str | None = None) -> Schema:
    return _with({"type": "string", "format": "date-time"}, description, None, None)


def integer(
    description: str | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
    int64: bool = False,
) -> Schema:
    node: Schema = {"type": "integer"}
    if int64:
        node["format"] = "int64"
    if minimum is not None:
        node["minimum"] = minimum
    if maximum is not None:
        node["maximum"] = maximum
    return _with(node, description, default, None)


def number(
    description: str | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    default: float | None = None,
) -> Schema:
    node: Schema = {"type": "number"}
    if minimum is not None:
        node["minimum"] = minimum
        if exclusive_minimum:
            node["exclusiveMinimum"] = True
    if maximum is not None:
        node["maximum"] = maximum
    return _with(node, description, default, None)


def ratio(description: str, default: float | None = None) -> Schema:
    return number(description, minimum=0, maximum=1, default=default)


def boolean(description: str, default: bool | None = None) -> Schema:
    return _with({"type": "boolean"}, description, default, None)


def array(
    description: str | None,
    items: Schema,
    *,
    max_items: int,
    min_items: int | None = None,
    list_type: str | None = None,
    map_keys: list[str] | None = None,
    default: list[Any] | None = None,
) -> Schema:
    node: Schema = {"type": "array"}
    if min_items is not None:
        node["minItems"] = min_items
    node["maxItems"] = max_items
    if list_type is not None:
        node["x-kubernetes-list-type"] = list_type
    if map_keys is not None:
        node["x-kubernetes-list-map-keys"] = map_keys
    node["items"] = items
    return _with(node, description, default, None)


def obj(
    description: str | None,
    properties: dict[str, Schema],
    *,
    required: list[str] | None = None,
    default: dict[str, Any] | None = None,
    rules: list[Schema] | None = None,
) -> Schema:
    node: Schema = {"type": "object"}
    if required:
        node["required"] = required
    node["properties"] = properties
    return _with(node, description, default, rules)


def rule(
    cel: str,
    message: str,
    *,
    field_path: str | None = None,
    message_expression: str | None = None,
    reason: str | None = None,
) -> Schema:
    node: Schema = {"rule": " ".join(cel.split()), "message": message}
    if message_expression is not None:
        node["messageExpression"] = " ".join(message_expression.split())
    if field_path is not None:
        node["fieldPath"] = field_path
        node["reason"] = reason or "FieldValueInvalid"
    return node


def name(description: str) -> Schema:
    return string(description, max_length=SP.NAME_MAX, pattern=SP.DNS_LABEL)


def http_url(description: str) -> Schema:
    return string(description, max_length=SP.URL_MAX_LENGTH, pattern=SP.HTTP_URL)


def seconds(
    description: str,
    *,
    minimum: int = 1,
    maximum: int = SP.MAX_DURATION_SECONDS,
    default: int | None = None,
) -> Schema:
    return integer(description, minimum=minimum, maximum=maximum, default=default)


def unique_names(field: str, message: str) -> Schema:
    # exists_one over a bounded list: O(n^2) at n <= 20, well inside the CEL cost budget.
    return rule(
        f"!has(self.{field}) || self.{field}.all(x, self.{field}.exists_one(y, y.name == x.name))",
        message,
        field_path=f".{field}",
        reason="FieldValueInvalid",  # "Duplicate" would hide the message
    )


# ----------------------------------------------------------------------- the plan spec


def prometheus_query(what: str) -> Schema:
    return obj(
        f"The Prometheus query {what}.",
        {
            "query": string(
                "PromQL, evaluated as an instant query; its result (a list of sample values, "
                "doubles) is `result` in the condition.",
                min_length=1,
                max_length=SP.QUERY_MAX_LENGTH,
            ),
            "url": http_url(
                "Prometheus base URL; default: the Prometheus the operator is configured with."
            ),
            "timeoutSeconds": seconds(
                "Per query; a timeout is missing evidence (Inconclusive), never a pass.",
                maximum=60,
                default=SP.DEFAULT_PROMETHEUS_TIMEOUT_SECONDS,
            ),
        },
        required=["query"],
    )


def fault_schema() -> Schema:
    node_faults = ", ".join(f"'{t}'" for t in SP.NODE_FAULTS)
    grace_faults = ", ".join(f"'{t}'" for t in SP.GRACE_PERIOD_FAULTS)
    return obj(
        "What to break in this step. Undone when the step ends (and on every other path).",
        {
            "type": enum(
                "PodKill, NodeDrain, GPULoss, NodeFailure, ClusterOutage, NetworkPartition, "
                "PacketLoss, Latency, ModelCorruption (docs/crds.md, DrillPlan faults).",
                SP.FAULT_TYPES,
            ),
            "cluster": name(
                "active (the cluster serving when the step starts), primary, standby, or a "
                "member cluster's name."
            )
            | {"default": SP.DEFAULT_FAULT_CLUSTER},
            "mode": enum(
                "Which of the candidate targets (the model's pods; for NodeDrain, GPULoss and "
                "NodeFailure the nodes running them; ignored by ClusterOutage): one (chosen at "
                "random, seed recorded), all, fixed (value targets), percent (value percent, "
                "rounded up). Zero targets ends the step Error.",
                SP.FAULT_MODES,
                default=SP.DEFAULT_FAULT_MODE,
            ),
            "value": integer(
                "Targets (mode fixed) or percent of them (mode percent, 0-100).",
                minimum=0,
                maximum=SP.MAX_FAULT_VALUE,
            ),
            "node": string(
                "NodeDrain, GPULoss, NodeFailure: this node (it must run the model), instead "
                "of one chosen at random.",
                max_length=253,
                pattern=SP.DNS_SUBDOMAIN,
            ),
            "gracePeriodSeconds": seconds(
                "PodKill, NodeDrain: the pods' grace period; 0 is a crash. Default: the pods' own.",
                minimum=0,
            ),
            "lossPercent": integer(
                "PacketLoss: percent of packets dropped.", minimum=1, maximum=100
            ),
            "latencyMilliseconds": integer(
                "Latency: delay added to each packet.",
                minimum=1,
                maximum=SP.MAX_TIMEOUT_MILLISECONDS,
            ),
            "jitterMilliseconds": integer(
                "Latency: jitter around the delay.", minimum=0, maximum=SP.MAX_TIMEOUT_MILLISECONDS
            ),
            "seed": integer(
                "Random seed for choosing targets; default: a fresh one, recorded in the journal.",
                minimum=0,
                maximum=2**31 - 1,
            ),
        },
        required=["type"],
        rules=[
            rule(
                "self.mode != 'fixed' || has(self.value)",
                SP.Msg.FIXED_NEEDS_VALUE,
                field_path=".value",
                reason="FieldValueRequired",
            ),
            rule(
                "self.mode != 'percent' || (has(self.value) && self.value <= 100)",
                SP.Msg.PERCENT_RANGE,
                field_path=".value",
            ),
            rule(
                "!(self.mode in ['one', 'all']) || !has(self.value)",
                SP.Msg.VALUE_ONLY_FIXED_PERCENT,
                field_path=".value",
                reason="FieldValueForbidden",
            ),
            rule(
                f"!has(self.node) || self.type in [{node_faults}]",
                SP.Msg.NODE_ONLY_NODE_FAULTS,
                field_path=".node",
                reason="FieldValueForbidden",
            ),
            rule(
                "!has(self.node) || (self.mode == 'one' && !has(self.value))",
                SP.Msg.NODE_MODE_ONE,
                field_path=".node",
            ),
            rule(
                f"!has(self.gracePeriodSeconds) || self.type in [{grace_faults}]",
                SP.Msg.GRACE_ONLY,
                field_path=".gracePeriodSeconds",
                reason="FieldValueForbidden",
            ),
            rule(
                "self.type != 'PacketLoss' || has(self.lossPercent)",
                SP.Msg.PACKET_LOSS_NEEDS_PERCENT,
                field_path=".lossPercent",
                reason="FieldValueRequired",
            ),
            rule(
                "self.type == 'PacketLoss' || !has(self.lossPercent)",
                SP.Msg.LOSS_ONLY_PACKET_LOSS,
                field_path=".lossPercent",
                reason="FieldValueForbidden",
            ),
            rule(
                "self.type != 'Latency' || has(self.latencyMilliseconds)",
                SP.Msg.LATENCY_NEEDS_MS,
                field_path=".latencyMilliseconds",
                reason="FieldValueRequired",
            ),
            rule(
                "self.type == 'Latency' || (!has(self.latencyMilliseconds)"
                " && !has(self.jitterMilliseconds))",
                SP.Msg.LATENCY_ONLY,
                field_path=".latencyMilliseconds",
                reason="FieldValueForbidden",
            ),
        ],
    )


def step_schema() -> Schema:
    return obj(
        "One step: a fault or an action, held for durationSeconds, then its expectations.",
        {
            "name": name("Unique within the plan (gates refer to it)."),
            "fault": fault_schema(),
            "action": obj(
                "What to do instead of breaking something.",
                {
                    "type": enum(
                        "Failover: switch traffic to the standby through the operator; "
                        "Failback: switch back to the primary through the operator's failback "
                        "and wait for it; Wait: touch nothing and measure.",
                        SP.ACTION_TYPES,
                    )
                },
                required=["type"],
            ),
            "durationSeconds": seconds(
                "How long the step holds; its window lasts until the next step starts."
            ),
            "expect": obj(
                "What must hold in the step's window; an unset field is measured, not checked.",
                {
                    "activeCluster": enum(
                        "primary, standby, or unchanged: reached by the end of the step and "
                        "held there.",
                        SP.EXPECTED_CLUSTERS,
                    ),
                    "maxRTOSeconds": number(
                        "Longest stretch in the window with no successful probe request.",
                        minimum=0,
                        maximum=SP.MAX_DURATION_SECONDS,
                    ),
                    "maxErrorRatio": ratio("Failed / sent probe requests in the window."),
                    "maxP99LatencyMs": number(
                        "p99 of the probe's requests in the window.",
                        minimum=0,
                        exclusive_minimum=True,
                        maximum=SP.MAX_TIMEOUT_MILLISECONDS,
                    ),
                },
                default={},
            ),
        },
        required=["name", "durationSeconds"],
        rules=[rule("has(self.fault) != has(self.action)", SP.Msg.STEP_FAULT_XOR_ACTION)],
    )


def gate_schema() -> Schema:
    return obj(
        "A Prometheus gate with Argo Rollouts' analysis semantics; missing evidence never passes.",
        {
            "name": name("Unique within the plan."),
            "steps": array(
                "The steps whose windows it measures in; default: the whole run.",
                name("A step's name."),
                max_items=SP.MAX_STEPS,
                list_type="set",
            ),
            "prometheus": prometheus_query("measured"),
            "intervalSeconds": seconds(
                "Time between measurements.", default=SP.DEFAULT_GATE_INTERVAL_SECONDS
            ),
            "count": integer(
                "Measurements to take; default: every intervalSeconds while its windows last.",
                minimum=1,
                maximum=SP.MAX_MEASUREMENT_COUNT,
            ),
            "initialDelaySeconds": seconds(
                "Wait after the window opens before the first measurement.", minimum=0, default=0
            ),
            "successCondition": string(
                "CEL over `result` (list of double); true: the measurement is Successful.",
                min_length=1,
                max_length=SP.CONDITION_MAX_LENGTH,
            ),
            "failureCondition": string(
                "CEL over `result`; true: the measurement is Failed.",
                min_length=1,
                max_length=SP.CONDITION_MAX_LENGTH,
            ),
            "failureLimit": integer(
                "Failed measurements tolerated.", minimum=0, maximum=SP.MAX_LIMIT, default=0
            ),
            "inconclusiveLimit": integer(
                "Inconclusive measurements (empty result, NaN, Prometheus unreachable) tolerated.",
                minimum=0,
                maximum=SP.MAX_LIMIT,
                default=0,
            ),
            "consecutiveErrorLimit": integer(
                "Error measurements in a row tolerated (a query Prometheus rejects, a condition "
                "that does not evaluate); more ends the gate and the run Error.",
                minimum=0,
                maximum=SP.MAX_LIMIT,
                default=0,
            ),
        },
        required=["name", "prometheus"],
        rules=[
            rule(
                "has(self.successCondition) || has(self.failureCondition)",
                SP.Msg.GATE_NEEDS_CONDITION,
            )
        ],
    )


def abort_condition_schema() -> Schema:
    return obj(
        "Stops the run (every fault undone, verdict Aborted) within 5 s of holding; evaluated "
        "at least every 2 s. Either a Prometheus query with a CEL condition, or the probe's "
        "error ratio over windowSeconds.",
        {
            "name": name("Unique within the plan; named in the run's message when it holds."),
            "prometheus": prometheus_query("evaluated"),
            "condition": string(
                "CEL over `result` (list of double); true: abort.",
                min_length=1,
                max_length=SP.CONDITION_MAX_LENGTH,
            ),
            "maxErrorRatio": ratio(
                "Abort when the probe's error ratio over windowSeconds exceeds it."
            ),
            "windowSeconds": seconds(
                "The probe window of maxErrorRatio.",
                maximum=SP.MAX_WINDOW_SECONDS,
                default=SP.DEFAULT_ABORT_WINDOW_SECONDS,
            ),
        },
        required=["name"],
        rules=[
            rule("has(self.prometheus) == has(self.condition)", SP.Msg.ABORT_QUERY_AND_CONDITION),
            rule("has(self.prometheus) != has(self.maxErrorRatio)", SP.Msg.ABORT_ONE_KIND),
        ],
    )


def model_checks_schema() -> Schema:
    return obj(
        "Re-evaluation of the served model on a golden set: a baseline on the active cluster "
        "before the first fault, then after each step on whichever cluster serves; the served "
        "digest is compared with the ModelDeployment's spec.model.expectedDigest.",
        {
            "goldenSet": obj(
                None,
                {
                    "configMapRef": obj(
                        "A ConfigMap in the plan's namespace: one JSON object "
                        '{"text": ..., "label": ...} a line.',
                        {
                            "name": string(max_length=253, pattern=SP.DNS_SUBDOMAIN),
                            "key": string(
                                max_length=253,
                                pattern=SP.CONFIGMAP_KEY,
                                default=SP.DEFAULT_GOLDEN_SET_KEY,
                            ),
                        },
                        required=["name"],
                    )
                },
                required=["configMapRef"],
            ),
            "minAgreement": ratio(
                "Share of answers with the same label as the baseline.",
                default=SP.DEFAULT_MIN_AGREEMENT,
            ),
            "minAccuracy": ratio("Against the golden labels; unset: reported, not checked."),
            "minPrecision": ratio("Macro precision; unset: reported, not checked."),
            "minRecall": ratio("Macro recall; unset: reported, not checked."),
            "minF1": ratio("Macro F1; unset: reported, not checked."),
        },
        required=["goldenSet"],
    )


def plan_spec_schema(description: str) -> Schema:
    return obj(
        description,
        {
            "target": obj(
                None,
                {
                    "modelDeployment": string(
                        "A ModelDeployment in the plan's namespace; it must carry the label "
                        "modeldr.io/drills=enabled.",
                        max_length=52,
                        pattern=SP.MODELDEPLOYMENT_NAME,
                    )
                },
                required=["modelDeployment"],
            ),
            "traffic": obj(
                "Synthetic inference requests the run sends, as a client does, throughout.",
                {
                    "ratePerSecond": number(
                        None,
                        minimum=0,
                        exclusive_minimum=True,
                        maximum=SP.MAX_RATE_PER_SECOND,
                        default=SP.DEFAULT_RATE_PER_SECOND,
                    ),
                    "timeoutMilliseconds": integer(
                        "A request slower than this failed.",
                        minimum=1,
                        maximum=SP.MAX_TIMEOUT_MILLISECONDS,
                        default=SP.DEFAULT_TIMEOUT_MILLISECONDS,
                    ),
                    "inputs": array(
                        "Texts sent in turn.",
                        string(min_length=1, max_length=SP.INPUT_MAX_LENGTH),
                        min_items=1,
                        max_items=SP.MAX_INPUTS,
                        default=list(SP.DEFAULT_INPUTS),
                    ),
                    "url": http_url(
                        "The entry point clients use; default: the addresses of the hub "
                        "Service's EndpointSlice that the endpointslice provider keeps."
                    ),
                },
                default={},
            ),
            "steadyState": obj(
                "Checked before the first step (not met: the run ends Error, nothing touched) "
                "and after the last one (not met: Failed, it did not recover).",
                {
                    "durationSeconds": seconds(None, default=SP.DEFAULT_STEADY_STATE_SECONDS),
                    "maxErrorRatio": ratio("Failed / sent probe requests.", default=0),
                    "maxP99LatencyMs": number(
                        None,
                        minimum=0,
                        exclusive_minimum=True,
                        maximum=SP.MAX_TIMEOUT_MILLISECONDS,
                    ),
                    "waitForTargetSeconds": integer(
                        "Before the steady state, how long to wait for the target to serve: "
                        "its Ready condition True and the drill's probe answered in the last "
                        "2 s. A target that never does ends the run Error, reason "
                        "TargetNotReady, nothing touched.",
                        minimum=0,
                        maximum=SP.MAX_DURATION_SECONDS,
                        default=SP.DEFAULT_WAIT_FOR_TARGET_SECONDS,
                    ),
                },
                default={},
            ),
            "steps": array(None, step_schema(), min_items=1, max_items=SP.MAX_STEPS),
            "gates": array(None, gate_schema(), max_items=SP.MAX_GATES),
            "abortConditions": array(
                None, abort_condition_schema(), max_items=SP.MAX_ABORT_CONDITIONS
            ),
            "modelChecks": model_checks_schema(),
            "blastRadius": obj(
                None,
                {
                    "maxPodsPercent": integer(
                        "Most of the model's pods (both clusters together) a step may take "
                        "down at once; a step that would take more ends Error, nothing touched.",
                        minimum=1,
                        maximum=100,
                        default=SP.DEFAULT_MAX_PODS_PERCENT,
                    )
                },
                default={},
            ),
            "schedule": string(
                "Cron expression (5 fields, 6 with a leading seconds field, or @hourly, "
                "@daily, ...): runs start on time, named <plan>-<minutes since the epoch> "
                "(seconds for a 6-field schedule), instead of once per spec generation. "
                "status.nextScheduleTime and status.scheduleMessage say what comes next.",
                max_length=128,
                pattern=SP.CRON,
            ),
            "timeZone": string(
                "IANA time zone of schedule; default: UTC.", max_length=64, pattern=SP.TIME_ZONE
            ),
            "suspend": boolean("true: no run starts (runs in flight go on).", default=False),
            "concurrencyPolicy": enum(
                "A scheduled run due while a run of the plan is in flight: Forbid (skip it, "
                "recorded in status.lastMissedSchedule) or Allow (start it: one run per "
                "target still holds, so it ends Error, TargetBusy).",
                SP.CONCURRENCY_POLICIES,
                default=SP.DEFAULT_CONCURRENCY_POLICY,
            ),
            "startingDeadlineSeconds": integer(
                "A due time seen more than this late (the operator was down) is skipped and "
                "recorded as missed; unset: the latest one is started however late.",
                minimum=1,
                maximum=SP.MAX_STARTING_DEADLINE_SECONDS,
                int64=True,
            ),
            "historyLimit": integer(
                "Finished DrillRuns of this plan kept; older ones are deleted.",
                minimum=1,
                maximum=SP.MAX_HISTORY_LIMIT,
                default=SP.DEFAULT_HISTORY_LIMIT,
            ),
            "faultExpirySeconds": integer(
                "Every fault order of a run (node agent orders, infrastructure injects) "
                "expires this long after its last renewal: the agent or provider undoes it "
                "by itself. The operator renews every third of it while the step runs, so a "
                "dead or partitioned operator leaves no fault for longer than this.",
                minimum=SP.MIN_FAULT_EXPIRY_SECONDS,
                maximum=SP.MAX_FAULT_EXPIRY_SECONDS,
                default=SP.DEFAULT_FAULT_EXPIRY_SECONDS,
            ),
            "dryRun": boolean(
                "true: every run of the plan is a dry run (it resolves each step's targets "
                "and who would act, runs the preflight, touches nothing and ends Planned).",
                default=False,
            ),
        },
        required=["target", "steps"],
        rules=[
            unique_names("steps", SP.Msg.STEP_NAMES_UNIQUE),
            unique_names("gates", SP.Msg.GATE_NAMES_UNIQUE),
            unique_names("abortConditions", SP.Msg.ABORT_NAMES_UNIQUE),
            rule(
                "!has(self.gates) || self.gates.all(g, !has(g.steps)"
                " || g.steps.all(n, self.steps.exists(s, s.name == n)))",
                SP.Msg.GATE_STEPS_EXIST,
                field_path=".gates",
                reason="FieldValueInvalid",
            ),
            rule(
                "!has(self.timeZone) || has(self.schedule)",
                SP.Msg.TIME_ZONE_NEEDS_SCHEDULE,
                field_path=".timeZone",
                reason="FieldValueRequired",
            ),
        ],
    )


# ----------------------------------------------------------------------------- status


def reason() -> Schema:
    return string("One CamelCase word.", max_length=64, pattern=SP.REASON)


def message() -> Schema:
    return string("A sentence with the measured values.", max_length=MESSAGE_MAX_LENGTH)


def phase(description: str | None = None) -> Schema:
    return enum(description, SP.PHASES)


def conditions(description: str) -> Schema:
    return array(
        description,
        obj(
            "metav1.Condition.",
            {
                "type": string(
                    max_length=316,
                    pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                ),
                "status": enum(None, ("True", "False", "Unknown")),
                "observedGeneration": integer(minimum=0, int64=True),
                "lastTransitionTime": timestamp(),
                "reason": string(
                    min_length=1,
                    max_length=1024,
                    pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                ),
                "message": string(max_length=32768),
            },
            required=["type", "status", "lastTransitionTime", "reason", "message"],
        ),
        max_items=SP.MAX_CONDITIONS,
        list_type="map",
        map_keys=["type"],
    )


def kopf() -> Schema:
    # The only schemaless subtree, as in the ModelDeployment CRD: kopf's progress storage
    # reads status.kopf.progress; keeping it means nothing kopf writes is silently pruned.
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def window_properties() -> dict[str, Schema]:
    return {
        "phase": phase(),
        "reason": reason(),
        "message": message(),
        "startedAt": timestamp(),
        "finishedAt": timestamp(),
        "rtoSeconds": number(
            "Longest stretch in the window with no successful probe request.", minimum=0
        ),
        "errorRatio": ratio("Failed / sent probe requests in the window."),
        "p99LatencyMs": number("p99 latency of the probe's requests.", minimum=0),
        "activeCluster": string(
            "Cluster serving at the end of the window.", max_length=SP.NAME_MAX
        ),
        "requests": integer("Probe requests sent in the window.", minimum=0, int64=True),
        "failedRequests": integer(minimum=0, int64=True),
        "interrupted": boolean(
            "The run's interrupt (status.interrupt) cut the window short, or the run stopped "
            "before it could measure: phase, reason and message are the interrupt's. A "
            "steady-state window cut short is not assessed (the verdict counts the interrupt "
            "once); a step cut short counts, Aborted."
        ),
    }


def run_status_schema() -> Schema:
    window = window_properties()
    return obj(
        "The whole record of the run, written by the operator only (status subresource); a "
        "new leader continues or rolls back a run in flight from it.",
        {
            "observedGeneration": integer(int64=True),
            "phase": phase(
                "Pending, Running, then the verdict: Passed, Failed, Aborted, Error or "
                "Inconclusive (precedence in that order: Aborted, Failed, Error, Inconclusive, "
                "Passed); a clean dry run ends Planned (nothing tested)."
            ),
            "reason": reason(),
            "message": message(),
            "startedAt": timestamp(),
            "finishedAt": timestamp(),
            "heartbeatAt": timestamp("Last progress write of the engine running it."),
            "deadline": timestamp("The run ends by then, whatever happens."),
            "interrupt": obj(
                "Why the run stopped early, the first reason (an abort condition held, stopped "
                "by hand or deleted, the operator stopped or restarted, the deadline, a fault "
                "not undone, the target never served, an engine error); absent when it ran its "
                "course. The verdict counts it as the run's own part.",
                {
                    "phase": phase(),
                    "reason": reason(),
                    "message": message(),
                    "at": timestamp(),
                },
                required=["phase"],
            ),
            "currentStep": string(max_length=SP.NAME_MAX),
            "rtoSeconds": number("The worst step's rtoSeconds.", minimum=0),
            "activeCluster": string("Cluster serving now.", max_length=SP.NAME_MAX),
            "seed": integer("The run's random seed (target choices).", int64=True),
            "steadyState": obj(
                None,
                {
                    "before": obj("Before the first step.", window),
                    "after": obj("After the last step.", window),
                },
            ),
            "steps": array(
                None,
                obj(None, {"name": string(max_length=SP.NAME_MAX), **window}, required=["name"]),
                max_items=SP.MAX_STEPS,
            ),
            "gates": array(
                None,
                obj(
                    None,
                    {
                        "name": string(max_length=SP.NAME_MAX),
                        "phase": phase(),
                        "reason": reason(),
                        "message": message(),
                        "startedAt": timestamp(),
                        "finishedAt": timestamp(),
                        "successful": integer(minimum=0),
                        "failed": integer(minimum=0),
                        "inconclusive": integer(minimum=0),
                        "error": integer(minimum=0),
                        "consecutiveErrors": integer(minimum=0),
                        "measurements": array(
                            "The last measurements, oldest first.",
                            obj(
                                None,
                                {
                                    "phase": enum(None, SP.MEASUREMENT_PHASES),
                                    "measuredAt": timestamp(),
                                    "value": string(
                                        "The result as text (NaN and empty results are not "
                                        "JSON numbers).",
                                        max_length=1024,
                                    ),
                                    "message": string(max_length=1024),
                                },
                                required=["phase", "measuredAt"],
                            ),
                            max_items=SP.MAX_MEASUREMENTS,
                        ),
                    },
                    required=["name"],
                ),
                max_items=SP.MAX_GATES,
            ),
            "abortConditions": array(
                None,
                obj(
                    "Passed: never held; Aborted: held; Inconclusive: could not be evaluated. "
                    "While the run goes on, message is the last evaluation's; once it ended, "
                    "phase, reason and message are the condition's conclusion.",
                    {
                        "name": string(max_length=SP.NAME_MAX),
                        "phase": phase(),
                        "reason": reason(),
                        "message": message(),
                        "evaluations": integer(minimum=0, int64=True),
                        "lastValue": string(max_length=1024),
                        "lastEvaluatedAt": timestamp(),
                    },
                    required=["name"],
                ),
                max_items=SP.MAX_ABORT_CONDITIONS,
            ),
            "modelChecks": array(
                None,
                obj(
                    "The golden set answered by one cluster.",
                    {
                        "name": string("baseline, or the step's name.", max_length=SP.NAME_MAX),
                        "step": string(max_length=SP.NAME_MAX),
                        "cluster": string(max_length=SP.NAME_MAX),
                        "phase": phase(),
                        "reason": reason(),
                        "message": message(),
                        "checkedAt": timestamp(),
                        "examples": integer(minimum=0),
                        "agreement": ratio("Same label as the baseline."),
                        "accuracy": ratio("Against the golden labels."),
                        "precision": ratio("Macro."),
                        "recall": ratio("Macro."),
                        "f1": ratio("Macro."),
                        "servedDigest": string(max_length=71),
                        "expectedDigest": string(max_length=71),
                    },
                    required=["name"],
                ),
                max_items=SP.MAX_MODEL_CHECKS,
            ),
            "faults": array(
                "The journal: each fault is written here before it is applied, and undone on "
                "every path (step end, failure, abort, deletion, operator restart).",
                obj(
                    None,
                    {
                        "id": string(max_length=128),
                        "step": string(max_length=SP.NAME_MAX),
                        "type": enum(None, SP.FAULT_TYPES),
                        "cluster": string("The member cluster, resolved.", max_length=SP.NAME_MAX),
                        "role": enum(None, ("primary", "standby")),
                        "mode": enum(None, SP.FAULT_MODES),
                        "value": integer(minimum=0),
                        "seed": integer(int64=True),
                        "targets": array(
                            "Pods, nodes or the cluster chosen.",
                            string(max_length=253),
                            max_items=SP.MAX_TARGETS,
                        ),
                        "provider": string(
                            "member-api, agent, or the infrastructure provider's name.",
                            max_length=SP.NAME_MAX,
                        ),
                        "state": enum(
                            "Recorded (not yet known applied: undo anyway), Applied, Undone, "
                            "Abandoned (its cluster is gone for good).",
                            SP.FAULT_STATES,
                        ),
                        "recordedAt": timestamp(),
                        "appliedAt": timestamp(),
                        "undoneAt": timestamp(),
                        "undoAttempts": integer(minimum=0),
                        "message": message(),
                        "parameters": {
                            "type": "object",
                            "description": "What undo needs beyond the above.",
                            "maxProperties": 16,
                            "additionalProperties": string(max_length=1024),
                        },
                    },
                    required=["id", "step", "type", "cluster"],
                ),
                max_items=SP.MAX_FAULT_RECORDS,
            ),
            "conditions": conditions("metav1.Conditions."),
            "probe": obj(
                "What the traffic probe saw over the last windowSeconds, refreshed every few "
                "seconds while the run goes on.",
                {
                    "at": timestamp(),
                    "windowSeconds": number(minimum=0),
                    "sent": integer(minimum=0, int64=True),
                    "succeeded": integer(minimum=0, int64=True),
                    "successRatio": ratio("Succeeded / sent."),
                    "p99LatencyMs": number(minimum=0),
                    "cluster": string(
                        "Member cluster of the last successful answer.", max_length=SP.NAME_MAX
                    ),
                },
            ),
            "dryRun": obj(
                "A dry run's findings: what each step would touch, where, who would act, and "
                "the preflight.",
                {
                    "activeCluster": string(max_length=SP.NAME_MAX),
                    "steps": array(
                        None,
                        obj(
                            None,
                            {
                                "step": string(max_length=SP.NAME_MAX),
                                "kind": enum(None, ("fault", "action")),
                                "type": string(max_length=SP.NAME_MAX),
                                "cluster": string(max_length=SP.NAME_MAX),
                                "role": enum(None, ("primary", "standby")),
                                "provider": string(
                                    "member-api, the infrastructure provider, or operator.",
                                    max_length=SP.NAME_MAX,
                                ),
                                "targets": array(
                                    None, string(max_length=253), max_items=SP.MAX_TARGETS
                                ),
                                "seed": integer(int64=True),
                                "reason": reason(),
                                "message": message(),
                            },
                            required=["step", "kind", "type"],
                        ),
                        max_items=SP.MAX_STEPS,
                    ),
                    "preflight": array(
                        None,
                        obj(
                            None,
                            {
                                "check": string(max_length=SP.NAME_MAX),
                                "ok": boolean("The check found nothing in the way."),
                                "reason": reason(),
                                "message": message(),
                            },
                            required=["check", "ok"],
                        ),
                        max_items=SP.MAX_PREFLIGHT,
                    ),
                },
            ),
            "reportConfigMap": string(
                "The ConfigMap (owned by the run) keeping its report data: `modeldr drill "
                "report` renders it.",
                max_length=253,
            ),
            "kopf": kopf(),
        },
    )


def plan_status_schema() -> Schema:
    return obj(
        "Written by the operator only (status subresource).",
        {
            "observedGeneration": integer(int64=True),
            "lastRun": obj(
                "The most recent DrillRun of this plan.",
                last_run_properties(),
                required=["name"],
            ),
            "lastScheduledRun": obj(
                "The most recent DrillRun the schedule started.",
                last_run_properties(),
                required=["name"],
            ),
            "scheduleMessage": string(
                "What the operator does with spec.schedule (the next due time, or why no run "
                "starts): never silently ignored.",
                max_length=MESSAGE_MAX_LENGTH,
            ),
            "lastScheduleTime": timestamp("Due time of the last run the schedule started."),
            "nextScheduleTime": timestamp("When the next run is due (absent while suspended)."),
            "scheduledThrough": timestamp(
                "Every due time up to this one was dealt with: started, missed, or passed "
                "while suspended."
            ),
            "missedSchedules": integer(
                "Due times skipped: StartingDeadlineExceeded, ConcurrencyForbidden, Superseded "
                "(an earlier due time a later one replaced).",
                minimum=0,
                int64=True,
            ),
            "lastMissedSchedule": obj(
                "The last due time skipped, and why.",
                {
                    "scheduledTime": timestamp(),
                    "reason": reason(),
                    "message": string(max_length=MESSAGE_MAX_LENGTH),
                },
                required=["scheduledTime", "reason"],
            ),
            "conditions": conditions("metav1.Conditions."),
            "kopf": kopf(),
        },
    )


def last_run_properties() -> dict[str, Schema]:
    return {
        "name": string(max_length=253),
        "phase": phase("The run's phase: its verdict once it ended."),
        "reason": reason(),
        "startedAt": timestamp(),
        "finishedAt": timestamp(),
        "planGeneration": integer("The plan generation the run executes.", int64=True),
        "scheduledTime": timestamp("The schedule's due time it was started for."),
        "rtoSeconds": number("The run's worst step RTO.", minimum=0),
    }


# ------------------------------------------------------------------------------- CRDs

HEADER = """\
# {kind}: {what}
# Field reference and validation rules: docs/crds.md; the contract: DRILLS.md.
#
# GENERATED by scripts/gen_drill_crds.py from modeldr.api: do not edit by hand, run
# `.venv/bin/python scripts/gen_drill_crds.py` (tests/unit/test_drills_spec.py checks it).
# Like the ModelDeployment CRD, this file is the single source of truth: charts/modeldr/crds is
# a symlink to this directory. Cross-field rules are CEL x-kubernetes-validations whose
# messages name the field; every list is bounded so their cost is too.
"""


def crd(
    kind: str,
    plural: str,
    short_names: list[str],
    columns: list[Schema],
    schema: Schema,
) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd_name(plural),
            "labels": {"app.kubernetes.io/name": "modeldr", "app.kubernetes.io/part-of": "modeldr"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["modeldr"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def column(
    name: str,
    type_: str,
    json_path: str,
    description: str | None = None,
    priority: int | None = None,
) -> Schema:
    node: Schema = {"name": name, "type": type_}
    if description:
        node["description"] = description
    node["jsonPath"] = json_path
    if priority is not None:
        node["priority"] = priority
    return node


AGE = column("Age", "date", ".metadata.creationTimestamp")


def plan_crd() -> Schema:
    return crd(
        DRILLPLAN_KIND,
        DRILLPLANS,
        ["dp"],
        [
            column("Target", "string", ".spec.target.modelDeployment", "ModelDeployment drilled"),
            column("Last Run", "string", ".status.lastRun.name", "Most recent DrillRun"),
            column("Verdict", "string", ".status.lastRun.phase", "Phase of the most recent run"),
            AGE,
            column("Schedule", "string", ".spec.schedule", priority=1),
            column("Suspend", "boolean", ".spec.suspend", priority=1),
        ],
        obj(
            "DrillPlan: what to break in a ModelDeployment, for how long, and what must hold. "
            "Applying a plan without a schedule starts one DrillRun per spec generation.",
            {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": plan_spec_schema("What the drill does and what must hold."),
                "status": plan_status_schema(),
            },
            required=["spec"],
            rules=[
                rule(
                    f"self.metadata.name.matches('{SP.PLAN_NAME}')",
                    SP.Msg.PLAN_NAME,
                )
            ],
        ),
    )


def run_crd() -> Schema:
    return crd(
        DRILLRUN_KIND,
        DRILLRUNS,
        ["drun"],
        [
            column("Plan", "string", ".spec.planRef.name", "DrillPlan executed"),
            column("Phase", "string", ".status.phase", "Pending, Running or the verdict"),
            column("Step", "string", ".status.currentStep", "Step in progress"),
            column("RTO", "number", ".status.rtoSeconds", "Worst client-observed RTO, seconds"),
            AGE,
            column("Reason", "string", ".status.reason", priority=1),
            column("Active", "string", ".status.activeCluster", priority=1),
        ],
        obj(
            f"DrillRun: one execution of a DrillPlan, like a Job under a CronJob; labelled "
            f"{DRILL_PLAN_LABEL}=<plan> and owned by the plan. Its status is the whole record "
            f"of the run.",
            {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": obj(
                    "Which plan it runs, and the snapshot of that plan's spec it executes.",
                    {
                        "planRef": obj(
                            "The DrillPlan, in the run's namespace.",
                            {"name": string(max_length=52, pattern=SP.PLAN_NAME)},
                            required=["name"],
                            rules=[rule("self == oldSelf", SP.Msg.PLAN_REF_IMMUTABLE)],
                        ),
                        "planGeneration": integer(
                            "The plan's metadata.generation the snapshot was taken from.",
                            minimum=1,
                            int64=True,
                        ),
                        "plan": plan_spec_schema(
                            "The plan's spec, copied when the run is created (for a run "
                            "created by hand with planRef only, by the operator before it "
                            "touches anything), so the run executes what it says even if the "
                            "plan changes."
                        ),
                        "abort": boolean(
                            "Set to true to stop the run: every fault is undone and the run "
                            "ends Aborted. Final.",
                            default=False,
                        ),
                        "dryRun": boolean(
                            "true: resolve every step's targets, who would act and what the "
                            "preflight finds (status.dryRun), touch nothing, and end Planned "
                            "(Error when the real run could not start).",
                            default=False,
                        ),
                        "scheduledTime": string(
                            "The due time (RFC 3339) of the plan's schedule this run was "
                            "started for; absent for a run started by an apply or by hand.",
                            max_length=64,
                        ),
                    },
                    required=["planRef"],
                    rules=[
                        rule(
                            "!has(oldSelf.plan) || (has(self.plan) && self.plan == oldSelf.plan)",
                            SP.Msg.PLAN_SNAPSHOT_IMMUTABLE,
                            field_path=".plan",
                        ),
                        rule(
                            "!has(oldSelf.planGeneration) || (has(self.planGeneration)"
                            " && self.planGeneration == oldSelf.planGeneration)",
                            SP.Msg.PLAN_GENERATION_IMMUTABLE,
                            field_path=".planGeneration",
                        ),
                        rule(
                            "!oldSelf.abort || self.abort",
                            SP.Msg.ABORT_IRREVERSIBLE,
                            field_path=".abort",
                        ),
                    ],
                ),
                "status": run_status_schema(),
            },
            required=["spec"],
        ),
    )


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as the hand-written CRD."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render() -> dict[Path, str]:
    """The files to write: path -> text."""
    out = {}
    for body, plural, what in (
        (plan_crd(), DRILLPLANS, "what a drill of a ModelDeployment breaks and what must hold."),
        (run_crd(), DRILLRUNS, "one execution of a DrillPlan and its whole record."),
    ):
        kind = body["spec"]["names"]["kind"]
        text = HEADER.format(kind=kind, what=what) + yaml.dump(
            body, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
        )
        out[CRDS / f"{GROUP}_{plural}.yaml"] = text
    return out


def write_or_check(rendered: dict[Path, str], script: str, argv: list[str] | None) -> int:
    """The generators' command line: write what changed, or with --check exit 1 naming
    each file that is out of date (shared with scripts/gen_agent_crd.py)."""
    parser = argparse.ArgumentParser(description=f"Write the CRDs that {script} generates.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered.items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run {script}")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    return write_or_check(render(), "scripts/gen_drill_crds.py", argv)


if __name__ == "__main__":
    sys.exit(main())
