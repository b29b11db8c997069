"""DrillPlan / DrillRun models (modeldr.api.drillplan) and the CRDs generated from them,
without a cluster.

The apiserver side of the same cases is tests/integration/test_drill_crds.py; both use the
bad plans of tests/drill_plans.py. Here: the models accept what DRILLS.md promises, refuse
every bad plan with a message naming the field, default exactly as the CRDs do; every rule
message is a CEL rule of the CRDs, every spec field is described, every list bounded; and the
committed CRDs are what the generator (modeldr/drills/crds.py) writes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modeldr.api import drillplan as SP
from modeldr.api import drillrun as SR
from modeldr.api import drillstatus as ST
from modeldr.api.phase import Phase
from modeldr.drills.crds import DRILL_CRDS, HUB_CRDS
from modeldr.kube.constants import DRILLPLANS, DRILLRUNS, DRILLS_ENABLED, DRILLS_LABEL, GROUP
from modeldr.kube.crds import AGENT_CRDS, Crd, render, write_or_check
from tests.drill_plans import (
    BAD_PLANS,
    DRILLS_MD,
    EXAMPLE_PLAN,
    GOLDEN_SET,
    SAMPLE_PLAN,
    BadPlan,
    accepted_edge_cases,
    load,
    minimal_plan,
    sample_plan,
)

ROOT = Path(__file__).resolve().parents[2]
PLAN_CRD = ROOT / "crds" / f"{GROUP}_{DRILLPLANS}.yaml"
RUN_CRD = ROOT / "crds" / f"{GROUP}_{DRILLRUNS}.yaml"
MODELDEPLOYMENT_EXAMPLE = ROOT / "examples" / "sandbox" / "modeldeployment.yaml"

Schema = dict[str, Any]


def crd_schema(path: Path) -> Schema:
    schema: Schema = yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]
    return schema


def plan_spec_schema() -> Schema:
    spec: Schema = crd_schema(PLAN_CRD)["properties"]["spec"]
    return spec


def refusal(doc: dict[str, Any]) -> str:
    """The models' answer to a plan document, in the apiserver's notation."""
    with pytest.raises(ValidationError) as refused:
        SP.DrillPlanSpec.parse(doc["spec"])
    return "\n".join(SR.spec_errors(refused.value))


# ----------------------------------------------------------------------- accepted plans


def test_sample_plan_is_drills_md_verbatim() -> None:
    if not DRILLS_MD.exists():
        pytest.skip(f"{DRILLS_MD} is not part of this checkout")
    blocks = re.findall(r"```yaml\n(.*?)```", DRILLS_MD.read_text(), re.S)
    assert SAMPLE_PLAN in blocks, "tests/drill_plans.py SAMPLE_PLAN drifted from DRILLS.md"


def test_drills_md_sample_is_accepted() -> None:
    plan = SP.DrillPlanSpec.parse(sample_plan()["spec"])
    assert plan.target.model_deployment == "tiny-bert"
    assert plan.traffic.rate_per_second == 20
    assert plan.step_names == ["kill-a-pod", "primary-outage", "failback"]
    kill, outage, failback = plan.steps
    assert kill.fault is not None and kill.fault.type == "PodKill" and kill.fault.mode == "one"
    assert outage.fault is not None and outage.fault.cluster == "primary"
    # Who makes each fault (and whether it needs a provider) is its driver's fact:
    # tests/unit/test_drills_faults.py::test_each_driver_owns_its_facts.
    assert outage.expect.active_cluster == "standby" and outage.expect.max_rto_seconds == 10
    assert failback.action is not None and failback.action.type == "Failback"
    assert plan.step("failback") is failback
    (gate,) = plan.gates
    assert gate.steps == ["primary-outage"] and gate.count == 4
    assert gate.success_condition == "result[0] > 0" and gate.failure_condition is None
    (abort,) = plan.abort_conditions
    assert abort.max_error_ratio == 0.9 and abort.prometheus is None
    assert plan.model_checks is not None
    assert plan.model_checks.golden_set.config_map_ref.name == "tiny-bert-golden"
    assert plan.model_checks.min_agreement == 0.99 and plan.model_checks.min_f1 == 0.0
    assert plan.blast_radius.max_pods_percent == 50
    assert plan.schedule is None and not plan.suspend


@pytest.mark.parametrize(
    ("doc"), [d for _, d in accepted_edge_cases()], ids=[n for n, _ in accepted_edge_cases()]
)
def test_plans_at_the_edge_of_a_rule_are_accepted(doc: dict[str, Any]) -> None:
    SP.DrillPlanSpec.parse(doc["spec"])


def test_example_plan_targets_the_example_modeldeployment() -> None:
    plan_doc = load(EXAMPLE_PLAN)
    plan = SP.DrillPlanSpec.parse(plan_doc["spec"])
    md = load(MODELDEPLOYMENT_EXAMPLE)
    assert plan.target.model_deployment == md["metadata"]["name"]
    # Applied with -n like the ModelDeployment, so neither names a namespace.
    assert "namespace" not in plan_doc["metadata"] and "namespace" not in md["metadata"]
    assert md["metadata"]["labels"][DRILLS_LABEL] == DRILLS_ENABLED
    # The same drill as DRILLS.md's, steps and expectations unchanged: the failback comes
    # right after the outage (the operator waits for the primary's servers to answer).
    sample = SP.DrillPlanSpec.parse(sample_plan()["spec"])
    # One measured difference, documented in the file: the sandbox's pod kill may cost up to
    # 0.06 of requests (a crashed pod is answered until the hub EndpointSlice drops it).
    kill = plan.step("kill-a-pod")
    assert kill.expect.max_error_ratio == 0.06
    loosened = kill.model_copy(
        update={"expect": kill.expect.model_copy(update={"max_error_ratio": 0.02})}
    )
    # And one addition: the outage also expects correct answers back within 10 s (issue 22's
    # maxTimeToCorrectSeconds, after DRILLS.md's sample was written).
    outage = plan.step("primary-outage")
    assert outage.expect.max_time_to_correct_seconds == 10
    plain = outage.model_copy(
        update={"expect": outage.expect.model_copy(update={"max_time_to_correct_seconds": None})}
    )
    adapted = [
        loosened if step is kill else plain if step is outage else step for step in plan.steps
    ]
    assert adapted == sample.steps
    assert plan.step_names.index("primary-outage") == plan.step_names.index("failback") - 1
    assert plan.abort_conditions == sample.abort_conditions
    assert plan.blast_radius == sample.blast_radius


def test_golden_set_example_fits_the_plan_and_the_model() -> None:
    plan = SP.DrillPlanSpec.parse(load(EXAMPLE_PLAN)["spec"])
    assert plan.model_checks is not None
    ref = plan.model_checks.golden_set.config_map_ref
    config_map = load(GOLDEN_SET)
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == ref.name
    lines = config_map["data"][ref.key].splitlines()
    examples = [json.loads(line) for line in lines]
    assert len(examples) >= 10
    assert {tuple(sorted(e)) for e in examples} == {("label", "text")}
    from modeldr.serving.tiny import DEFAULT_LABELS

    labels = [e["label"] for e in examples]
    assert set(labels) == set(DEFAULT_LABELS)
    # Balanced, so macro F1 means something.
    assert abs(labels.count("positive") - labels.count("negative")) <= 1


# ----------------------------------------------------------------------------- refused


@pytest.mark.parametrize("case", BAD_PLANS, ids=[c.name for c in BAD_PLANS])
def test_bad_plan_is_refused_naming_the_field(case: BadPlan) -> None:
    doc = sample_plan()
    case.edit(doc)
    answer = refusal(doc)
    for fragment in (*case.fragments, *case.model):
        assert fragment in answer, f"{fragment!r} not in:\n{answer}"


def test_bad_plan_in_a_run_snapshot_is_refused() -> None:
    plan = sample_plan()["spec"]
    plan["steps"][0]["action"] = {"type": "Wait"}
    with pytest.raises(ValidationError) as refused:
        SR.DrillRunSpec.parse({"planRef": {"name": "primary-outage"}, "plan": plan})
    (line,) = SR.spec_errors(refused.value)
    assert line == f"spec.plan.steps[0]: {SP.Msg.STEP_FAULT_XOR_ACTION}"


def test_cross_field_messages_name_a_field() -> None:
    # Every message says which field to change: it spells a field of the CRDs camelCase.
    def names(node: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            for key, child in node.get("properties", {}).items():
                found |= {key} | names(child)
            found |= names(node.get("items"))
        return found

    fields = names(crd_schema(PLAN_CRD)) | names(crd_schema(RUN_CRD)) | {"metadata"}
    camel = {f for f in fields if any(c.isupper() for c in f) or "." in f}
    for name, message in vars(SP.Msg).items():
        if name.isupper():
            words = set(re.findall(r"[A-Za-z0-9]+", message))
            dotted = re.search(r"\b[a-z][A-Za-z]*(\[\])?\.[a-z][A-Za-z]*", message)
            assert dotted or words & camel, f"Msg.{name} names no field: {message}"


# ---------------------------------------------------------------------------- defaults


def test_defaults_of_a_minimal_plan() -> None:
    plan = SP.DrillPlanSpec.parse(minimal_plan()["spec"])
    assert plan.traffic.rate_per_second == 10
    assert plan.traffic.timeout_milliseconds == 2000
    assert plan.traffic.inputs == list(SP.DEFAULT_INPUTS) and plan.traffic.url is None
    assert plan.steady_state.duration_seconds == 10
    assert plan.steady_state.max_error_ratio == 0
    (step,) = plan.steps
    assert step.fault is not None
    assert (step.fault.cluster, step.fault.mode, step.fault.value) == ("active", "one", None)
    assert step.expect == SP.Expect.model_validate({})
    assert plan.gates == [] and plan.abort_conditions == [] and plan.model_checks is None
    assert plan.blast_radius.max_pods_percent == 50
    assert (plan.suspend, plan.concurrency_policy, plan.history_limit) == (False, "Forbid", 10)


def test_gate_abort_and_model_check_defaults() -> None:
    gate = SP.Gate.model_validate(
        {"name": "g", "prometheus": {"query": "up"}, "successCondition": "true"}
    )
    assert (gate.interval_seconds, gate.count, gate.initial_delay_seconds) == (10, None, 0)
    assert (gate.failure_limit, gate.inconclusive_limit, gate.consecutive_error_limit) == (0, 0, 0)
    assert gate.steps == [] and gate.prometheus.timeout_seconds == 5
    abort = SP.AbortCondition.model_validate({"name": "a", "maxErrorRatio": 0.5})
    assert abort.window_seconds == 10
    checks = SP.ModelChecks.model_validate({"goldenSet": {"configMapRef": {"name": "golden"}}})
    assert checks.golden_set.config_map_ref.key == "golden.jsonl"
    assert checks.min_agreement == 1.0
    assert checks.min_accuracy is checks.min_f1 is None


def crd_default(schema: Schema, value: Any) -> Any:
    """What the apiserver's structural defaulting makes of `value`: absent properties with a
    default get it, recursively (a defaulted object gets its own properties' defaults)."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in schema:
        for key, child in schema["properties"].items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                value[key] = crd_default(child, value[key])
    elif isinstance(value, list) and "items" in schema:
        value = [crd_default(schema["items"], item) for item in value]
    return value


def without_empty_lists(value: Any) -> Any:
    """A model dump without the empty lists the models default to (the CRD leaves them out)."""
    if isinstance(value, dict):
        return {k: without_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [without_empty_lists(v) for v in value]
    return value


@pytest.mark.parametrize(
    "doc",
    [minimal_plan(), sample_plan(), *(d for _, d in accepted_edge_cases())],
    ids=["minimal", "sample", *(n for n, _ in accepted_edge_cases())],
)
def test_models_default_exactly_like_the_crd(doc: dict[str, Any]) -> None:
    model = SP.DrillPlanSpec.parse(doc["spec"]).model_dump(by_alias=True, exclude_none=True)
    assert without_empty_lists(model) == crd_default(plan_spec_schema(), doc["spec"])


def test_run_spec_by_hand_needs_only_the_plan_ref() -> None:
    run = SR.DrillRunSpec.parse({"planRef": {"name": "primary-outage"}})
    assert run.plan_ref.name == "primary-outage"
    assert run.plan is None and run.plan_generation is None and run.abort is False
    run_schema = crd_schema(RUN_CRD)["properties"]["spec"]
    assert crd_default(run_schema, {"planRef": {"name": "x"}}) == {
        "planRef": {"name": "x"},
        "abort": False,
        "dryRun": False,
    }
    with pytest.raises(ValidationError):
        SR.DrillRunSpec.parse({})


def test_run_update_rules() -> None:
    plan = sample_plan()["spec"]
    by_hand = SR.DrillRunSpec.parse({"planRef": {"name": "p"}})
    filled = SR.DrillRunSpec.parse({"planRef": {"name": "p"}, "plan": plan, "planGeneration": 3})
    # The operator fills in the snapshot of a run created by hand: allowed once.
    assert SR.run_update_errors(by_hand, filled) == []
    changed = copy.deepcopy(plan)
    changed["steps"][0]["durationSeconds"] = 1
    edits = {
        "spec.planRef": {"planRef": {"name": "q"}, "plan": plan, "planGeneration": 3},
        "spec.plan": {"planRef": {"name": "p"}, "plan": changed, "planGeneration": 3},
        "spec.planGeneration": {"planRef": {"name": "p"}, "plan": plan, "planGeneration": 4},
    }
    for field, body in edits.items():
        (error,) = SR.run_update_errors(filled, SR.DrillRunSpec.parse(body))
        assert error.startswith(f"{field}: ")
    aborted = SR.DrillRunSpec.parse({"planRef": {"name": "p"}, "abort": True})
    assert SR.run_update_errors(by_hand, aborted) == []
    assert SR.run_update_errors(aborted, by_hand) == [f"spec.abort: {SP.Msg.ABORT_IRREVERSIBLE}"]


# ------------------------------------------------------------------ the generated CRDs


def test_committed_crds_are_the_generators_output() -> None:
    rendered = render(DRILL_CRDS)
    assert sorted(ROOT / name for name in rendered) == [PLAN_CRD, RUN_CRD]
    for name, text in rendered.items():
        assert (ROOT / name).read_text() == text, (
            f"{name} is out of date: run .venv/bin/python scripts/gen_drill_crds.py"
        )
    assert write_or_check(ROOT, HUB_CRDS, "gen_drill_crds.py", ["--check"]) == 0


def test_the_generator_command_checks(tmp_path: Path) -> None:
    # The command line, as a developer and CI run it; a stale file fails --check.
    script = [sys.executable, str(ROOT / "scripts" / "gen_drill_crds.py"), "--check"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "crds").mkdir()
    (tmp_path / PLAN_CRD.relative_to(ROOT)).write_text("stale")
    assert write_or_check(tmp_path, DRILL_CRDS, "gen_drill_crds.py", ["--check"]) == 1
    assert write_or_check(tmp_path, DRILL_CRDS, "gen_drill_crds.py", []) == 0
    assert write_or_check(tmp_path, DRILL_CRDS, "gen_drill_crds.py", ["--check"]) == 0


def undescribed(node: Schema, path: str) -> list[str]:
    """Fields below `node` with no description."""
    found = []
    for key, child in node.get("properties", {}).items():
        if "description" not in child:
            found.append(f"{path}.{key}")
        found += undescribed(child, f"{path}.{key}")
    if "items" in node:
        found += undescribed(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("crd", [*HUB_CRDS, *AGENT_CRDS], ids=lambda crd: crd.kind)
def test_every_spec_field_has_a_description(crd: Crd) -> None:
    # `kubectl explain` prints them: a field added to a model without one fails here.
    spec = crd.schema()["properties"]["spec"]
    assert "description" in spec
    assert undescribed(spec, "spec") == []


def cel_messages(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        found += [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
        for child in node.values():
            found += cel_messages(child)
    elif isinstance(node, list):
        for child in node:
            found += cel_messages(child)
    return found


def test_every_rule_message_is_a_cel_rule_of_the_crds() -> None:
    # Each Msg is said by the apiserver (a CEL rule) and by the models; no CEL rule says
    # anything the models cannot.
    messages = {v for k, v in vars(SP.Msg).items() if k.isupper()}
    plan, run = (crd.schema() for crd in DRILL_CRDS)
    said = set(cel_messages(plan)) | set(cel_messages(run))
    assert said == messages
    # The plan's rules hold in a run's snapshot too.
    assert cel_messages(run["properties"]["spec"]["properties"]["plan"]) == cel_messages(
        plan["properties"]["spec"]
    )


def test_every_list_is_bounded() -> None:
    # The apiserver estimates CEL cost from maxItems/maxLength; unbounded lists also let one
    # object grow without limit.
    def unbounded(node: Any, path: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "array" and "maxItems" not in node:
                found.append(path)
            bounded_string = "maxLength" in node or "enum" in node or "format" in node
            if node.get("type") == "string" and not bounded_string:
                found.append(path)
            for key, child in node.get("properties", {}).items():
                found += unbounded(child, f"{path}.{key}")
            if "items" in node:
                found += unbounded(node["items"], f"{path}[]")
            if isinstance(node.get("additionalProperties"), dict):
                found += unbounded(node["additionalProperties"], f"{path}{{}}")
        return found

    for crd in (PLAN_CRD, RUN_CRD):
        schema = crd_schema(crd)
        for part in ("spec", "status"):
            assert unbounded(schema["properties"][part], part) == [], crd.name


def test_status_models_round_trip() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    status = ST.DrillRunStatus(
        phase=Phase.RUNNING,
        started_at=now,
        current_step="primary-outage",
        rto_seconds=3.5,
        steady_state=ST.SteadyStateStatus(
            before=ST.WindowStatus(phase=Phase.PASSED, error_ratio=0.0)
        ),
        steps=[ST.StepStatus(name="kill-a-pod", phase=Phase.PASSED, rto_seconds=0.4, requests=300)],
        gates=[
            ST.GateStatus(
                name="standby-answers",
                phase=Phase.RUNNING,
                successful=1,
                measurements=[ST.Measurement(phase="Inconclusive", measured_at=now, value="[]")],
            )
        ],
        abort_conditions=[ST.AbortConditionStatus(name="everything-failing", phase=Phase.RUNNING)],
        model_checks=[ST.ModelCheckStatus(name="baseline", cluster="primary", agreement=1.0)],
        faults=[
            ST.FaultRecord(
                id="r1-primary-outage-1",
                step="primary-outage",
                type="ClusterOutage",
                cluster="primary",
                targets=["primary"],
                provider="webhook",
                recorded_at=now,
                parameters={"outage": "primary"},
            )
        ],
    )
    body = status.dump()
    assert body["startedAt"] == "2026-01-01T12:00:00Z"
    assert body["faults"][0]["state"] == "Recorded"
    assert body["steps"][0] == {
        "name": "kill-a-pod",
        "phase": "Passed",
        "rtoSeconds": 0.4,
        "requests": 300,
    }
    assert ST.DrillRunStatus.parse(body) == status
    plan_status = ST.DrillPlanStatus(
        observed_generation=2,
        last_run=ST.LastRun(name="primary-outage-2-x7k2p", phase=Phase.PASSED, plan_generation=2),
        schedule_message="spec.schedule is accepted; scheduled runs are not started yet",
    )
    assert ST.DrillPlanStatus.parse(plan_status.dump()) == plan_status
    assert ST.DrillRunStatus.parse(None) == ST.DrillRunStatus()
