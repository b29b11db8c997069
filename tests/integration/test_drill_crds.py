"""The DrillPlan and DrillRun CRDs on the hub's real apiserver: what `kubectl apply` accepts,
refuses (with a message naming the field), defaults and shows.

The bad plans are those of tests/drill_plans.py, which the pydantic models must refuse too
(tests/unit/test_drills_spec.py): a rule on one side only fails one of the two tests. The CRDs
are applied server-side from crds/ with test_crds.py's helpers. Objects created for real (not
dry-run) are suspended plans and runs whose status the test writes at once as finished, so a
drill engine running on the sandbox has nothing to execute.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from modeldr.api.drillplan import DrillPlanSpec, Msg
from modeldr.api.drillrun import DrillRunSpec
from modeldr.kube.constants import (
    API_VERSION,
    DRILL_PLAN_LABEL,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    VERSION,
    crd_name,
)
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.operator_up import operator_down
from tests.drill_plans import (
    BAD_PLANS,
    EXAMPLE_PLAN,
    GOLDEN_SET,
    BadPlan,
    Doc,
    accepted_edge_cases,
    minimal_plan,
    sample_plan,
)
from tests.integration.test_crds import apply_crds, dry_run_apply, kubectl
from tests.unit.test_drills_spec import without_empty_lists

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def drill_crds(sandbox: Sandbox) -> None:
    apply_crds()
    for plural in (DRILLPLANS, DRILLRUNS):
        kubectl("wait", "--for=condition=Established", f"crd/{crd_name(plural)}", "--timeout=30s")
    # Discovery (short names, categories) may lag the Established condition by a moment.
    kube.wait_for(
        lambda: kubectl("get", "dp,drun", "-A", check=False).returncode == 0,
        timeout=30,
        what="the drillplans and drillruns APIs to be served",
    )


@pytest.fixture(scope="module", autouse=True)
def no_operator(sandbox: Sandbox) -> None:
    """These tests are the apiserver's: they write runs and their statuses by hand, which a
    running operator would pick up and run (and overwrite) between two of their calls. The
    modules that need the operator start it again (their `operator` fixture)."""
    operator_down()


@pytest.fixture
def ns(drill_crds: None, hub_namespace: str) -> Iterator[str]:
    yield hub_namespace


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub"))


def in_namespace(doc: Doc) -> Doc:
    """The document without a namespace of its own (the test's comes from -n)."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("namespace", None)
    return doc


def server_defaulted(namespace: str, doc: Doc) -> Doc:
    """The object as the apiserver would store it (server dry-run)."""
    result = kubectl(
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(doc),
    )
    stored: Doc = json.loads(result.stdout)
    return stored


def api_error(exc: ApiException) -> str:
    return str(json.loads(exc.body)["message"])


# ----------------------------------------------------------------------------- accepted


def test_crd_apply_is_idempotent(drill_crds: None) -> None:
    ext = client.ApiextensionsV1Api(kube.api_client("hub"))
    before = [ext.read_custom_resource_definition(crd_name(p)) for p in (DRILLPLANS, DRILLRUNS)]
    apply_crds()
    after = [ext.read_custom_resource_definition(crd_name(p)) for p in (DRILLPLANS, DRILLRUNS)]
    for old, new in zip(before, after, strict=True):
        assert new.metadata.resource_version == old.metadata.resource_version
        assert new.spec.versions[0].subresources.status is not None


def test_drills_md_sample_plan_is_accepted(ns: str) -> None:
    # As it stands, but in the test's namespace rather than modeldr-demo.
    doc = sample_plan()
    doc["metadata"]["namespace"] = ns
    result = dry_run_apply(ns, doc)
    assert result.returncode == 0, result.stderr
    assert "created (server dry run)" in result.stdout


@pytest.mark.parametrize("example", [EXAMPLE_PLAN, GOLDEN_SET], ids=["drillplan", "golden-set"])
def test_sandbox_examples_are_accepted(ns: str, example: Any) -> None:
    result = kubectl("apply", "--dry-run=server", "-n", ns, "-f", str(example))
    assert "created (server dry run)" in result.stdout


@pytest.mark.parametrize(
    "doc", [d for _, d in accepted_edge_cases()], ids=[n for n, _ in accepted_edge_cases()]
)
def test_plans_at_the_edge_of_a_rule_are_accepted(ns: str, doc: Doc) -> None:
    result = dry_run_apply(ns, in_namespace(doc))
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------ refused


@pytest.mark.parametrize("case", BAD_PLANS, ids=[c.name for c in BAD_PLANS])
def test_bad_plan_is_refused_naming_the_field(ns: str, case: BadPlan) -> None:
    doc = in_namespace(sample_plan())
    case.edit(doc)
    result = dry_run_apply(ns, doc)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    for fragment in (*case.fragments, *case.api):
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def test_plan_name_must_fit_the_run_label(ns: str) -> None:
    doc = in_namespace(sample_plan())
    doc["metadata"]["name"] = "p" * 53
    result = dry_run_apply(ns, doc)
    assert result.returncode != 0 and Msg.PLAN_NAME in result.stderr, result.stderr


def run_doc(name: str, plan: Doc | None = None, **spec: Any) -> Doc:
    body: Doc = {"planRef": {"name": "primary-outage"}, **spec}
    if plan is not None:
        body["plan"] = plan
    return {
        "apiVersion": API_VERSION,
        "kind": DRILLRUN_KIND,
        "metadata": {"name": name, "labels": {DRILL_PLAN_LABEL: "primary-outage"}},
        "spec": body,
    }


def test_bad_plan_in_a_run_snapshot_is_refused(ns: str) -> None:
    plan = sample_plan()["spec"]
    plan["steps"][0]["action"] = {"type": "Wait"}
    result = dry_run_apply(ns, run_doc("bad-snapshot", plan))
    assert result.returncode != 0
    assert f"spec.plan.steps[0]: Invalid value: {Msg.STEP_FAULT_XOR_ACTION}" in result.stderr


def test_run_without_plan_ref_is_refused(ns: str) -> None:
    doc = run_doc("no-ref")
    del doc["spec"]["planRef"]
    result = dry_run_apply(ns, doc)
    assert result.returncode != 0 and "spec.planRef: Required value" in result.stderr


# ----------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("doc", [minimal_plan(), sample_plan()], ids=["minimal", "sample"])
def test_apiserver_defaults_are_the_models_defaults(ns: str, doc: Doc) -> None:
    stored = server_defaulted(ns, in_namespace(doc))["spec"]
    model = DrillPlanSpec.parse(doc["spec"]).model_dump(by_alias=True, exclude_none=True)
    assert stored == without_empty_lists(model)


def test_minimal_plan_is_defaulted(ns: str) -> None:
    spec = server_defaulted(ns, minimal_plan())["spec"]
    assert spec["traffic"] == {
        "ratePerSecond": 10,
        "timeoutMilliseconds": 2000,
        "inputs": ["modeldr drill probe: is this service answering?"],
    }
    assert spec["steadyState"] == {
        "durationSeconds": 10,
        "maxErrorRatio": 0,
        "waitForTargetSeconds": 180,
    }
    assert spec["steps"][0]["fault"] == {"type": "PodKill", "cluster": "active", "mode": "one"}
    assert spec["steps"][0]["expect"] == {}
    assert spec["blastRadius"] == {"maxPodsPercent": 50}
    assert (spec["suspend"], spec["concurrencyPolicy"], spec["historyLimit"]) == (
        False,
        "Forbid",
        10,
    )
    assert "gates" not in spec and "modelChecks" not in spec and "schedule" not in spec


def test_gate_defaults(ns: str) -> None:
    doc = minimal_plan()
    doc["spec"]["gates"] = [
        {"name": "g", "prometheus": {"query": "up"}, "failureCondition": "false"}
    ]
    doc["spec"]["abortConditions"] = [{"name": "a", "maxErrorRatio": 0.5}]
    doc["spec"]["modelChecks"] = {"goldenSet": {"configMapRef": {"name": "golden"}}}
    spec = server_defaulted(ns, doc)["spec"]
    assert spec["gates"][0] == {
        "name": "g",
        "prometheus": {"query": "up", "timeoutSeconds": 5},
        "failureCondition": "false",
        "intervalSeconds": 10,
        "initialDelaySeconds": 0,
        "failureLimit": 0,
        "inconclusiveLimit": 0,
        "consecutiveErrorLimit": 0,
    }
    assert spec["abortConditions"][0] == {"name": "a", "maxErrorRatio": 0.5, "windowSeconds": 10}
    assert spec["modelChecks"] == {
        "goldenSet": {"configMapRef": {"name": "golden", "key": "golden.jsonl"}},
        "minAgreement": 1,
    }


def test_run_by_hand_with_plan_ref_only_is_accepted(ns: str) -> None:
    stored = server_defaulted(ns, run_doc("by-hand"))
    assert stored["spec"] == {
        "planRef": {"name": "primary-outage"},
        "abort": False,
        "dryRun": False,
    }
    assert DrillRunSpec.parse(stored["spec"]).plan is None


# -------------------------------------------------- printer columns, short names, status


def create(namespace: str, plural: str, doc: Doc) -> Doc:
    body: Doc = custom().create_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc)
    return body


def patch_status(namespace: str, plural: str, name: str, status: Doc) -> Doc:
    body: Doc = custom().patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, {"status": status}
    )
    return body


def suspended_plan() -> Doc:
    doc = in_namespace(sample_plan())
    doc["spec"]["suspend"] = True  # a drill engine starts no run of it
    return doc


FINISHED = {
    "phase": "Passed",
    "reason": "AllHeld",
    "message": "every expectation, gate and model check held",
    "startedAt": "2026-01-01T00:00:00Z",
    "finishedAt": "2026-01-01T00:01:30Z",
    "currentStep": "failback",
    "rtoSeconds": 3.2,
    "activeCluster": "primary",
}


def test_printer_columns_short_names_and_category(ns: str) -> None:
    create(ns, DRILLPLANS, suspended_plan())
    run = create(ns, DRILLRUNS, run_doc("primary-outage-1"))
    # Finished at once: nothing for an engine to pick up.
    patch_status(ns, DRILLRUNS, "primary-outage-1", FINISHED)
    patch_status(
        ns,
        DRILLPLANS,
        "primary-outage",
        {"lastRun": {"name": "primary-outage-1", "phase": "Passed", "planGeneration": 1}},
    )
    assert run["spec"]["abort"] is False

    table = kubectl("get", "dp", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "TARGET", "LAST", "RUN", "VERDICT", "AGE"]
    assert table[1].split()[:4] == ["primary-outage", "tiny-bert", "primary-outage-1", "Passed"]
    wide = kubectl("get", "dp", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["SCHEDULE", "SUSPEND"]
    assert wide[1].split()[-1] == "true"

    table = kubectl("get", "drun", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "PLAN", "PHASE", "STEP", "RTO", "AGE"]
    assert table[1].split()[:5] == [
        "primary-outage-1",
        "primary-outage",
        "Passed",
        "failback",
        "3.2",
    ]
    wide = kubectl("get", "drun", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["REASON", "ACTIVE"]
    assert wide[1].split()[-2:] == ["AllHeld", "primary"]

    # The full names and the category work too.
    names = kubectl("get", "drillplans,drillruns", "-n", ns, "-o", "name").stdout.split()
    assert names == [
        f"drillplan.{GROUP}/primary-outage",
        f"drillrun.{GROUP}/primary-outage-1",
    ]
    category = kubectl("get", "modeldr", "-n", ns, "-o", "name").stdout.split()
    assert set(names) <= set(category)
    by_label = kubectl(
        "get", "drun", "-n", ns, "-l", f"{DRILL_PLAN_LABEL}=primary-outage", "-o", "name"
    )
    assert by_label.stdout.split() == [f"drillrun.{GROUP}/primary-outage-1"]


def test_status_is_a_subresource_with_a_schema(ns: str) -> None:
    api = custom()
    create(ns, DRILLRUNS, run_doc("status-run"))
    record = {
        **FINISHED,
        "steps": [
            {
                "name": "kill-a-pod",
                "phase": "Passed",
                "rtoSeconds": 0.4,
                "errorRatio": 0.01,
                "p99LatencyMs": 41.5,
                "activeCluster": "primary",
                "requests": 300,
                "failedRequests": 3,
            }
        ],
        "gates": [
            {
                "name": "standby-answers",
                "phase": "Passed",
                "successful": 4,
                "measurements": [
                    {"phase": "Successful", "measuredAt": "2026-01-01T00:00:40Z", "value": "[3.5]"}
                ],
            }
        ],
        "modelChecks": [{"name": "baseline", "cluster": "primary", "agreement": 1, "f1": 0.5}],
        "faults": [
            {
                "id": "status-run-1",
                "step": "kill-a-pod",
                "type": "PodKill",
                "cluster": "primary",
                "targets": ["tiny-bert-abc12"],
                "seed": 7,
                "state": "Undone",
                "appliedAt": "2026-01-01T00:00:10Z",
                "undoneAt": "2026-01-01T00:00:25Z",
                "parameters": {"gracePeriodSeconds": "0"},
            }
        ],
    }
    written = patch_status(ns, DRILLRUNS, "status-run", record)
    # Nothing the engine writes is pruned.
    for key, value in record.items():
        assert written["status"][key] == value, key

    # The main resource ignores status, and /status ignores spec.
    again = api.patch_namespaced_custom_object(
        GROUP, VERSION, ns, DRILLRUNS, "status-run", {"status": {"phase": "Failed"}}
    )
    assert again["status"]["phase"] == "Passed"
    spec_too = patch_status(ns, DRILLRUNS, "status-run", {"phase": "Passed"})
    assert spec_too["spec"] == again["spec"]

    bad_statuses: list[tuple[Doc, str]] = [
        ({"phase": "Bogus"}, 'Unsupported value: "Bogus"'),
        ({"reason": "not one word"}, "status.reason"),
        ({"faults": [{"id": "x", "step": "s", "type": "Meteor", "cluster": "c"}]}, "Meteor"),
    ]
    for bad, fragment in bad_statuses:
        with pytest.raises(ApiException) as refused:
            patch_status(ns, DRILLRUNS, "status-run", bad)
        assert refused.value.status == 422
        assert fragment in api_error(refused.value)


def test_run_spec_transition_rules(ns: str) -> None:
    api = custom()

    def patch(name: str, spec: Doc) -> Doc:
        body: Doc = api.patch_namespaced_custom_object(
            GROUP, VERSION, ns, DRILLRUNS, name, {"spec": spec}
        )
        return body

    def refused(name: str, spec: Doc) -> str:
        with pytest.raises(ApiException) as exc:
            patch(name, spec)
        assert exc.value.status == 422
        return api_error(exc.value)

    plan = sample_plan()["spec"]
    # A run by hand: the operator fills in the snapshot once.
    create(ns, DRILLRUNS, run_doc("by-hand"))
    patch_status(ns, DRILLRUNS, "by-hand", FINISHED)
    filled = patch("by-hand", {"plan": plan, "planGeneration": 1})
    assert filled["spec"]["plan"]["steps"][0]["name"] == "kill-a-pod"

    changed = copy.deepcopy(plan)
    changed["steps"][0]["durationSeconds"] = 1
    assert Msg.PLAN_SNAPSHOT_IMMUTABLE in refused("by-hand", {"plan": changed})
    assert Msg.PLAN_GENERATION_IMMUTABLE in refused("by-hand", {"planGeneration": 2})
    assert Msg.PLAN_REF_IMMUTABLE in refused("by-hand", {"planRef": {"name": "other"}})
    assert patch("by-hand", {"abort": True})["spec"]["abort"] is True
    assert Msg.ABORT_IRREVERSIBLE in refused("by-hand", {"abort": False})
