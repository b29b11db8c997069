# ruff: noqa: E501  (SAMPLE_PLAN is DRILLS.md's text verbatim, long comment lines included)
"""DrillPlans for tests: the DRILLS.md sample and the bad plans both the CRD and the models refuse.

One list of bad plans serves two tests: tests/unit/test_drills_spec.py (the pydantic models)
and tests/integration/test_drill_crds.py (the hub's apiserver), so a rule that exists on one
side only fails a test. Each case names fragments both answers must contain (the field path
and, for a cross-field rule, the rule's message from modeldr.api.drillplan.Msg), and optionally
fragments only one side words that way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modeldr.api.drillplan import MAX_PROBE_REQUESTS, Msg

ROOT = Path(__file__).resolve().parents[1]
DRILLS_MD = ROOT.parent / "shared" / "DRILLS.md"
EXAMPLE_PLAN = ROOT / "examples" / "sandbox" / "drillplan.yaml"
GOLDEN_SET = ROOT / "examples" / "sandbox" / "golden-set.yaml"

Doc = dict[str, Any]

# Verbatim from DRILLS.md ("A plan (must be accepted as it stands on the sandbox)");
# test_drills_spec checks it is still the same text when DRILLS.md is at hand.
SAMPLE_PLAN = """\
apiVersion: modeldr.io/v1alpha1
kind: DrillPlan
metadata:
  name: primary-outage
  namespace: modeldr-demo
spec:
  target:
    modelDeployment: tiny-bert       # same namespace; it must carry the label modeldr.io/drills=enabled
  traffic:
    ratePerSecond: 20                # synthetic inference requests, as a client sends them
    timeoutMilliseconds: 2000
    inputs: ["great product, fast delivery", "arrived broken, want a refund"]
    # url: https://...               # the entry point clients use; default: the hub Service's
                                     # EndpointSlice that the endpointslice provider keeps
  steadyState:                       # before the first step and after the last
    durationSeconds: 5
    maxErrorRatio: 0.0
  steps:
    - name: kill-a-pod
      fault: {type: PodKill, cluster: active, mode: one}
      durationSeconds: 15
      expect: {activeCluster: unchanged, maxErrorRatio: 0.02}
    - name: primary-outage
      fault: {type: ClusterOutage, cluster: primary}
      durationSeconds: 40
      expect: {activeCluster: standby, maxRTOSeconds: 10}
    - name: failback
      action: {type: Failback}       # the outage was undone when its step ended
      durationSeconds: 30
      expect: {activeCluster: primary, maxErrorRatio: 0.0}
  gates:
    - name: standby-answers
      steps: [primary-outage]        # the windows it measures in; default: the whole run
      prometheus:
        query: sum(rate(modeldr_serve_requests_total{cluster="standby"}[15s]))
      intervalSeconds: 5
      count: 4
      successCondition: "result[0] > 0"    # CEL over result: list of sample values (double)
      failureLimit: 0
  abortConditions:
    - name: everything-failing
      maxErrorRatio: 0.9             # probe-based, over the last windowSeconds
      windowSeconds: 10
  modelChecks:                       # baseline on the active cluster before the first fault,
    goldenSet:                       # re-checked wherever traffic is served after each step
      configMapRef: {name: tiny-bert-golden, key: golden.jsonl}   # {"text": ..., "label": ...} per line
    minAgreement: 0.99               # same label as the baseline answer
    minF1: 0.0                       # macro F1 against the labels (the seeds' quality bar)
  blastRadius:
    maxPodsPercent: 50
  historyLimit: 10
"""


def sample_plan() -> Doc:
    """A fresh copy of the DRILLS.md sample, as a document."""
    document: Doc = yaml.safe_load(SAMPLE_PLAN)
    return document


def load(path: Path) -> Doc:
    document: Doc = yaml.safe_load(path.read_text())
    return document


# ------------------------------------------------------------------------------ edits

Edit = Callable[[Doc], None]


def _walk(doc: Any, path: str) -> tuple[Any, str | int]:
    """The parent of `path` (dots; integers index lists) and the last key."""
    *parents, leaf = (int(p) if p.isdigit() else p for p in path.split("."))
    node = doc
    for key in parents:
        node = node[key]
    return node, leaf


def set_(path: str, value: Any) -> Edit:
    """Set the field; an index one past a list's end appends."""

    def edit(doc: Doc) -> None:
        node, leaf = _walk(doc, path)
        if isinstance(node, list) and leaf == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[leaf] = copy.deepcopy(value)

    return edit


def delete(path: str) -> Edit:
    def edit(doc: Doc) -> None:
        node, leaf = _walk(doc, path)
        del node[leaf]

    return edit


def all_(*edits: Edit) -> Edit:
    def edit(doc: Doc) -> None:
        for e in edits:
            e(doc)

    return edit


def _many_steps(n: int) -> list[Doc]:
    return [{"name": f"s{i}", "action": {"type": "Wait"}, "durationSeconds": 1} for i in range(n)]


def probe_requests(total: float) -> Edit:
    """Rate 1000/s, steady states 100 s each, and step durations adding up so that the
    run's planned probe requests come to `total` (a multiple of 1000 above 200,000)."""

    def edit(doc: Doc) -> None:
        spec = doc["spec"]
        spec.setdefault("traffic", {})["ratePerSecond"] = 1000
        spec.setdefault("steadyState", {})["durationSeconds"] = 100
        others = sum(step["durationSeconds"] for step in spec["steps"][1:])
        spec["steps"][0]["durationSeconds"] = int(total / 1000) - 200 - others

    return edit


def edited(edit: Edit) -> Doc:
    doc = sample_plan()
    edit(doc)
    return doc


@dataclass(frozen=True)
class BadPlan:
    name: str
    edit: Edit
    # In both answers: the field's path (in the apiserver's notation) and/or the message.
    fragments: tuple[str, ...]
    # Only in the apiserver's answer, or only in the models' (spec_errors) answer.
    api: tuple[str, ...] = ()
    model: tuple[str, ...] = ()


STEP0_FAULT = "spec.steps.0.fault"

BAD_PLANS: list[BadPlan] = [
    # -- structure, enums, ranges (OpenAPI schema)
    BadPlan(
        "unknown-fault-type",
        set_(f"{STEP0_FAULT}.type", "Meteor"),
        ("spec.steps[0].fault.type",),
        api=('Unsupported value: "Meteor"',),
    ),
    BadPlan(
        "unknown-action-type",
        set_("spec.steps.2.action.type", "Reboot"),
        ("spec.steps[2].action.type",),
        api=('Unsupported value: "Reboot"',),
    ),
    BadPlan(
        "unknown-fault-mode",
        set_(f"{STEP0_FAULT}.mode", "some"),
        ("spec.steps[0].fault.mode",),
        api=('Unsupported value: "some"',),
    ),
    BadPlan(
        "unknown-expected-cluster",
        set_("spec.steps.0.expect.activeCluster", "elsewhere"),
        ("spec.steps[0].expect.activeCluster",),
        api=('Unsupported value: "elsewhere"',),
    ),
    BadPlan(
        "unknown-concurrency-policy",
        set_("spec.concurrencyPolicy", "Replace"),
        ("spec.concurrencyPolicy",),
        api=('Unsupported value: "Replace"',),
    ),
    BadPlan(
        "starting-deadline-zero",
        set_("spec.startingDeadlineSeconds", 0),
        ("spec.startingDeadlineSeconds",),
        api=("should be greater than or equal to 1",),
    ),
    BadPlan(
        "schedule-seven-fields",
        set_("spec.schedule", "0 0 0 * * * 2030"),
        ("spec.schedule",),
        api=("should match",),
    ),
    BadPlan("missing-target", delete("spec.target"), ("spec.target",), api=("Required value",)),
    BadPlan("missing-steps", delete("spec.steps"), ("spec.steps",), api=("Required value",)),
    BadPlan(
        "missing-step-duration",
        delete("spec.steps.0.durationSeconds"),
        ("spec.steps[0].durationSeconds",),
        api=("Required value",),
    ),
    BadPlan(
        "missing-gate-query",
        delete("spec.gates.0.prometheus.query"),
        ("spec.gates[0].prometheus.query",),
        api=("Required value",),
    ),
    BadPlan(
        "no-steps",
        set_("spec.steps", []),
        ("spec.steps",),
        api=("should have at least 1 items",),
        model=("at least 1 item",),
    ),
    BadPlan(
        "too-many-steps",
        set_("spec.steps", _many_steps(21)),
        ("spec.steps",),
        api=("must have at most 20 items",),
        model=("at most 20 items",),
    ),
    BadPlan(
        "zero-rate",
        set_("spec.traffic.ratePerSecond", 0),
        ("spec.traffic.ratePerSecond", "greater than 0"),
    ),
    BadPlan(
        "rate-too-high",
        set_("spec.traffic.ratePerSecond", 5000),
        ("spec.traffic.ratePerSecond", "less than or equal to 1000"),
    ),
    BadPlan(
        "zero-step-duration",
        set_("spec.steps.0.durationSeconds", 0),
        ("spec.steps[0].durationSeconds", "greater than or equal to 1"),
    ),
    BadPlan(
        "step-duration-too-long",
        set_("spec.steps.0.durationSeconds", 7200),
        ("spec.steps[0].durationSeconds", "less than or equal to 3600"),
    ),
    BadPlan(
        "steady-state-too-long",
        set_("spec.steadyState.durationSeconds", 3601),
        ("spec.steadyState.durationSeconds", "less than or equal to 3600"),
    ),
    BadPlan(
        "error-ratio-above-one",
        set_("spec.steps.0.expect.maxErrorRatio", 1.5),
        ("spec.steps[0].expect.maxErrorRatio", "less than or equal to 1"),
    ),
    BadPlan(
        "negative-rto",
        set_("spec.steps.1.expect.maxRTOSeconds", -1),
        ("spec.steps[1].expect.maxRTOSeconds", "greater than or equal to 0"),
    ),
    BadPlan(
        "agreement-above-one",
        set_("spec.modelChecks.minAgreement", 2),
        ("spec.modelChecks.minAgreement", "less than or equal to 1"),
    ),
    BadPlan(
        "blast-radius-above-100",
        set_("spec.blastRadius.maxPodsPercent", 150),
        ("spec.blastRadius.maxPodsPercent", "less than or equal to 100"),
    ),
    BadPlan(
        "negative-fault-value",
        all_(set_(f"{STEP0_FAULT}.mode", "fixed"), set_(f"{STEP0_FAULT}.value", -1)),
        ("spec.steps[0].fault.value", "greater than or equal to 0"),
    ),
    BadPlan(
        "history-limit-zero",
        set_("spec.historyLimit", 0),
        ("spec.historyLimit", "greater than or equal to 1"),
    ),
    BadPlan(
        "string-for-integer",
        set_("spec.traffic.timeoutMilliseconds", "2000"),
        ("spec.traffic.timeoutMilliseconds",),
        api=('"string"',),
        model=("valid integer",),
    ),
    BadPlan(
        "bad-step-name",
        set_("spec.steps.0.name", "Kill_A_Pod"),
        ("spec.steps[0].name",),
        api=("should match",),
        model=("should match pattern",),
    ),
    BadPlan(
        "bad-target-name",
        set_("spec.target.modelDeployment", "Tiny.Bert"),
        ("spec.target.modelDeployment",),
    ),
    BadPlan("traffic-url-not-http", set_("spec.traffic.url", "ftp://x/y"), ("spec.traffic.url",)),
    BadPlan(
        "empty-input-list",
        set_("spec.traffic.inputs", []),
        ("spec.traffic.inputs",),
    ),
    BadPlan("bad-schedule", set_("spec.schedule", "every day"), ("spec.schedule",)),
    # A typo is an error, not a silently pruned field (kubectl's strict field validation).
    BadPlan(
        "unknown-field",
        set_("spec.steps.0.faults", {"type": "PodKill"}),
        ("spec.steps[0].faults",),
        api=("unknown field",),
        model=("Extra inputs are not permitted",),
    ),
    # -- cross-field rules (CEL x-kubernetes-validations; model validators)
    BadPlan(
        "step-with-fault-and-action",
        set_("spec.steps.0.action", {"type": "Wait"}),
        ("spec.steps[0]", Msg.STEP_FAULT_XOR_ACTION),
    ),
    BadPlan(
        "step-with-neither-fault-nor-action",
        delete("spec.steps.2.action"),
        ("spec.steps[2]", Msg.STEP_FAULT_XOR_ACTION),
    ),
    BadPlan(
        "fixed-without-value",
        set_(f"{STEP0_FAULT}.mode", "fixed"),
        ("spec.steps[0].fault", Msg.FIXED_NEEDS_VALUE),
    ),
    BadPlan(
        "percent-without-value",
        set_(f"{STEP0_FAULT}.mode", "percent"),
        ("spec.steps[0].fault", Msg.PERCENT_RANGE),
    ),
    BadPlan(
        "percent-above-100",
        all_(set_(f"{STEP0_FAULT}.mode", "percent"), set_(f"{STEP0_FAULT}.value", 150)),
        ("spec.steps[0].fault", Msg.PERCENT_RANGE),
    ),
    BadPlan(
        "value-with-mode-one",
        set_(f"{STEP0_FAULT}.value", 2),
        ("spec.steps[0].fault", Msg.VALUE_ONLY_FIXED_PERCENT),
    ),
    BadPlan(
        "value-with-mode-all",
        all_(set_(f"{STEP0_FAULT}.mode", "all"), set_(f"{STEP0_FAULT}.value", 2)),
        ("spec.steps[0].fault", Msg.VALUE_ONLY_FIXED_PERCENT),
    ),
    BadPlan(
        "node-for-a-pod-fault",
        set_(f"{STEP0_FAULT}.node", "primary-gpu-0"),
        ("spec.steps[0].fault", Msg.NODE_ONLY_NODE_FAULTS),
    ),
    BadPlan(
        "node-with-mode-all",
        set_(STEP0_FAULT, {"type": "NodeDrain", "node": "primary-gpu-0", "mode": "all"}),
        ("spec.steps[0].fault", Msg.NODE_MODE_ONE),
    ),
    BadPlan(
        "grace-period-for-an-outage",
        set_("spec.steps.1.fault.gracePeriodSeconds", 0),
        ("spec.steps[1].fault", Msg.GRACE_ONLY),
    ),
    BadPlan(
        "packet-loss-without-percent",
        set_(STEP0_FAULT, {"type": "PacketLoss"}),
        ("spec.steps[0].fault", Msg.PACKET_LOSS_NEEDS_PERCENT),
    ),
    BadPlan(
        "loss-percent-for-a-pod-kill",
        set_(f"{STEP0_FAULT}.lossPercent", 10),
        ("spec.steps[0].fault", Msg.LOSS_ONLY_PACKET_LOSS),
    ),
    BadPlan(
        "latency-without-delay",
        set_(STEP0_FAULT, {"type": "Latency", "jitterMilliseconds": 5}),
        ("spec.steps[0].fault", Msg.LATENCY_NEEDS_MS),
    ),
    BadPlan(
        "latency-for-a-pod-kill",
        set_(f"{STEP0_FAULT}.latencyMilliseconds", 100),
        ("spec.steps[0].fault", Msg.LATENCY_ONLY),
    ),
    BadPlan(
        "gate-step-not-a-step",
        set_("spec.gates.0.steps", ["primary-outage", "primary-outgae"]),
        ("spec.gates", Msg.GATE_STEPS_EXIST),
        model=("primary-outgae",),
    ),
    BadPlan(
        "gate-step-twice",
        set_("spec.gates.0.steps", ["primary-outage", "primary-outage"]),
        ("spec.gates[0].steps",),
        api=("Duplicate value",),
        model=("duplicates",),
    ),
    BadPlan(
        "gate-without-condition",
        delete("spec.gates.0.successCondition"),
        ("spec.gates[0]", Msg.GATE_NEEDS_CONDITION),
    ),
    BadPlan(
        "duplicate-step-names",
        set_("spec.steps.2.name", "kill-a-pod"),
        ("spec.steps", Msg.STEP_NAMES_UNIQUE),
        model=("kill-a-pod",),
    ),
    BadPlan(
        "duplicate-gate-names",
        set_(
            "spec.gates.1",
            {
                "name": "standby-answers",
                "prometheus": {"query": "up"},
                "successCondition": "result[0] == 1",
            },
        ),
        ("spec.gates", Msg.GATE_NAMES_UNIQUE),
    ),
    BadPlan(
        "duplicate-abort-condition-names",
        set_("spec.abortConditions.1", {"name": "everything-failing", "maxErrorRatio": 0.5}),
        ("spec.abortConditions", Msg.ABORT_NAMES_UNIQUE),
    ),
    BadPlan(
        "abort-condition-with-neither-kind",
        set_("spec.abortConditions.0", {"name": "nothing"}),
        ("spec.abortConditions[0]", Msg.ABORT_ONE_KIND),
    ),
    BadPlan(
        "abort-condition-with-both-kinds",
        all_(
            set_("spec.abortConditions.0.prometheus", {"query": "up"}),
            set_("spec.abortConditions.0.condition", "result[0] == 0"),
        ),
        ("spec.abortConditions[0]", Msg.ABORT_ONE_KIND),
    ),
    BadPlan(
        "abort-query-without-condition",
        set_("spec.abortConditions.0", {"name": "q", "prometheus": {"query": "up"}}),
        ("spec.abortConditions[0]", Msg.ABORT_QUERY_AND_CONDITION),
    ),
    BadPlan(
        "abort-condition-without-query",
        set_("spec.abortConditions.0.condition", "result[0] > 1"),
        ("spec.abortConditions[0]", Msg.ABORT_QUERY_AND_CONDITION),
    ),
    BadPlan(
        "time-zone-without-schedule",
        set_("spec.timeZone", "Europe/Berlin"),
        ("spec", Msg.TIME_ZONE_NEEDS_SCHEDULE),
    ),
    BadPlan(
        "probe-traffic-over-the-cap",
        probe_requests(MAX_PROBE_REQUESTS + 1000),
        ("spec.steps", Msg.PROBE_TRAFFIC_CAP),
        model=("(here 1,001,000)",),
    ),
    BadPlan(
        "load-without-a-rate",
        set_("spec.steps.2.action", {"type": "Load"}),
        ("spec.steps[2].action", Msg.LOAD_RATE),
    ),
    BadPlan(
        "rate-on-a-wait",
        set_("spec.steps.2.action", {"type": "Wait", "ratePerSecond": 50.0}),
        ("spec.steps[2].action", Msg.LOAD_RATE),
    ),
    BadPlan(
        "ramp-on-a-failback",
        set_("spec.steps.2.action", {"type": "Failback", "rampSeconds": 5}),
        ("spec.steps[2].action", Msg.LOAD_RATE),
    ),
    BadPlan(
        # 10/s for the rest, but one Load step at 1000/s for 1001 s: over the cap.
        "load-step-over-the-cap",
        set_(
            "spec.steps.2",
            {
                "name": "heavy",
                "action": {"type": "Load", "ratePerSecond": 1000.0},
                "durationSeconds": 1001,
            },
        ),
        ("spec.steps", Msg.PROBE_TRAFFIC_CAP),
    ),
]


def accepted_edge_cases() -> list[tuple[str, Doc]]:
    """Plans at the edge of a rule that must still be accepted (by both sides)."""
    cases: list[tuple[str, Edit]] = [
        (
            "percent-0",
            all_(set_(f"{STEP0_FAULT}.mode", "percent"), set_(f"{STEP0_FAULT}.value", 0)),
        ),
        (
            "percent-100",
            all_(set_(f"{STEP0_FAULT}.mode", "percent"), set_(f"{STEP0_FAULT}.value", 100)),
        ),
        ("fixed-3", all_(set_(f"{STEP0_FAULT}.mode", "fixed"), set_(f"{STEP0_FAULT}.value", 3))),
        ("mode-all", set_(f"{STEP0_FAULT}.mode", "all")),
        ("podkill-crash", set_(f"{STEP0_FAULT}.gracePeriodSeconds", 0)),
        ("node-drain-on-a-node", set_(STEP0_FAULT, {"type": "NodeDrain", "node": "n-1"})),
        ("gpu-loss", set_(STEP0_FAULT, {"type": "GPULoss", "cluster": "standby", "mode": "all"})),
        ("node-failure", set_(STEP0_FAULT, {"type": "NodeFailure", "seed": 42})),
        ("partition", set_(STEP0_FAULT, {"type": "NetworkPartition", "mode": "all"})),
        ("packet-loss", set_(STEP0_FAULT, {"type": "PacketLoss", "lossPercent": 30})),
        (
            "latency",
            set_(
                STEP0_FAULT,
                {"type": "Latency", "latencyMilliseconds": 200, "jitterMilliseconds": 20},
            ),
        ),
        ("model-corruption", set_(STEP0_FAULT, {"type": "ModelCorruption"})),
        ("member-cluster-by-name", set_(f"{STEP0_FAULT}.cluster", "eu-west-2")),
        ("failover-action", set_("spec.steps.2.action.type", "Failover")),
        ("gate-over-the-whole-run", delete("spec.gates.0.steps")),
        (
            "gate-failure-condition-only",
            all_(
                delete("spec.gates.0.successCondition"),
                set_("spec.gates.0.failureCondition", "result[0] == 0"),
            ),
        ),
        (
            "prometheus-abort-condition",
            set_(
                "spec.abortConditions.0",
                {"name": "q", "prometheus": {"query": "up"}, "condition": "result[0] == 0"},
            ),
        ),
        ("schedule", all_(set_("spec.schedule", "*/30 * * * *"), set_("spec.timeZone", "UTC"))),
        ("schedule-shorthand", set_("spec.schedule", "@daily")),
        ("suspended", set_("spec.suspend", True)),
        ("twenty-steps", all_(set_("spec.steps", _many_steps(20)), delete("spec.gates"))),
        ("no-gates-no-checks", all_(delete("spec.gates"), delete("spec.modelChecks"))),
        ("probe-traffic-at-the-cap", probe_requests(MAX_PROBE_REQUESTS)),
        (
            "load-step-with-a-ramp",
            set_("spec.steps.2.action", {"type": "Load", "ratePerSecond": 50.0, "rampSeconds": 5}),
        ),
    ]
    return [(name, edited(edit)) for name, edit in cases]


def minimal_plan(name: str = "minimal", target: str = "tiny-bert") -> Doc:
    """Only what is required: a target and one step."""
    return {
        "apiVersion": "modeldr.io/v1alpha1",
        "kind": "DrillPlan",
        "metadata": {"name": name},
        "spec": {
            "target": {"modelDeployment": target},
            "steps": [
                {"name": "kill-a-pod", "fault": {"type": "PodKill"}, "durationSeconds": 10},
            ],
        },
    }
