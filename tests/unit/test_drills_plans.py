"""DrillPlans (drills/plans.py): the run a generation starts, when none is started, history
pruning, the snapshot of a hand-made run and the plan's lastRun derived from its runs and
written by the plan's daemon — against a fake CustomObjectsApi that keeps objects in memory
and answers 404/409 as the apiserver does."""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kubernetes import client

from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.phase import Phase
from modeldr.drills import manifests, plans
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunRef
from modeldr.kube.constants import (
    API_VERSION,
    DRILL_PLAN_LABEL,
    DRILLPLAN_KIND,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    VERSION,
)
from tests.unit.drill_fakes import nowhere

SPEC: dict[str, Any] = {
    "target": {"modelDeployment": "tiny-bert"},
    "steps": [{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 5}],
}


class FakeCustomObjects:
    """CustomObjectsApi over a dict {(plural, namespace, name): object}, shared by every
    instance of a test; every call is kept in `calls` as (method, plural, name)."""

    objects: ClassVar[dict[tuple[str, str, str], dict[str, Any]]] = {}
    calls: ClassVar[list[tuple[str, str, str]]] = []
    fail: ClassVar[dict[str, Exception]] = {}

    def __init__(self, api_client: Any = None) -> None:
        self.api_client = api_client

    def _check(self, method: str, plural: str, name: str) -> None:
        type(self).calls.append((method, plural, name))
        if method in self.fail:
            raise self.fail[method]

    def create_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self._check("create", plural, name)
        assert (group, version) == (GROUP, VERSION)
        key = (plural, namespace, name)
        if key in self.objects:
            raise client.ApiException(status=409, reason="AlreadyExists")
        stored = copy.deepcopy(body)
        stored["metadata"].setdefault("creationTimestamp", "2030-01-01T00:00:00Z")
        self.objects[key] = stored
        return stored

    def list_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        *,
        label_selector: str = "",
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._check("list", plural, label_selector)
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        items = [
            copy.deepcopy(obj)
            for (p, ns, _), obj in self.objects.items()
            if p == plural
            and ns == namespace
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]
        return {"items": items}

    def delete_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any
    ) -> dict[str, Any]:
        self._check("delete", plural, name)
        if self.objects.pop((plural, namespace, name), None) is None:
            raise client.ApiException(status=404, reason="NotFound")
        return {}

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any
    ) -> dict[str, Any]:
        self._check("get", plural, name)
        found = self.objects.get((plural, namespace, name))
        if found is None:
            raise client.ApiException(status=404, reason="NotFound")
        return copy.deepcopy(found)

    def patch_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._check("patch", plural, name)
        obj = self.objects.setdefault((plural, namespace, name), {"metadata": {"name": name}})
        for key, value in body.items():
            obj.setdefault(key, {}).update(copy.deepcopy(value))
        return obj

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._check("patch_status", plural, name)
        obj = self.objects.get((plural, namespace, name))
        if obj is None:
            raise client.ApiException(status=404, reason="NotFound")
        obj.setdefault("status", {}).update(copy.deepcopy(body["status"]))
        return obj


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> type[FakeCustomObjects]:
    monkeypatch.setattr(FakeCustomObjects, "objects", {})
    monkeypatch.setattr(FakeCustomObjects, "calls", [])
    monkeypatch.setattr(FakeCustomObjects, "fail", {})
    monkeypatch.setattr("modeldr.drills.plans.client.CustomObjectsApi", FakeCustomObjects)
    return FakeCustomObjects


def creates(api: type[FakeCustomObjects]) -> list[str]:
    return [name for method, _, name in api.calls if method == "create"]


def reconcile(generation: int, spec: dict[str, Any], status: Any = None) -> dict[str, Any]:
    return plans.reconcile_plan(nowhere(), "demo", "nightly", "plan-uid", generation, spec, status)


def run_obj(name: str, created: str, phase: str | None, plan: str = "nightly") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "demo",
            "creationTimestamp": created,
            "labels": {DRILL_PLAN_LABEL: plan},
        },
        "spec": {"planRef": {"name": plan}},
    }
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


# -------------------------------------------------------------------------- manifests


def test_run_name_is_plan_and_generation() -> None:
    assert manifests.run_name("nightly", 7) == "nightly-7"


def test_run_manifest_is_owned_labelled_and_snapshots_the_plan() -> None:
    manifest = manifests.run_manifest("nightly", "plan-uid", 3, SPEC)
    assert manifest["apiVersion"] == API_VERSION and manifest["kind"] == DRILLRUN_KIND
    meta = manifest["metadata"]
    assert meta["name"] == "nightly-3"
    assert meta["labels"] == {DRILL_PLAN_LABEL: "nightly"}
    [owner] = meta["ownerReferences"]
    assert owner == {
        "apiVersion": API_VERSION,
        "kind": DRILLPLAN_KIND,
        "name": "nightly",
        "uid": "plan-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert manifest["spec"] == {"planRef": {"name": "nightly"}, "plan": SPEC, "planGeneration": 3}
    # The manifest is a valid DrillRun spec: the snapshot parses as the plan it copies.
    parsed = DrillRunSpec.parse(manifest["spec"])
    assert parsed.plan is not None and parsed.plan.target.model_deployment == "tiny-bert"
    assert parsed.plan_generation == 3


# -------------------------------------------------------------------- reconcile_plan


def test_a_new_generation_without_a_schedule_starts_one_run(api: type[FakeCustomObjects]) -> None:
    status = reconcile(2, SPEC, {"observedGeneration": 1})
    assert creates(api) == ["nightly-2"]
    # The handler's one field: the schedule's are the daemon's (it clears them).
    assert status == {"observedGeneration": 2}
    created = api.objects[(DRILLRUNS, "demo", "nightly-2")]
    assert created["spec"]["plan"] == SPEC and created["spec"]["planGeneration"] == 2
    # History is pruned with the plan's limit once the run exists.
    assert ("list", DRILLRUNS, f"{DRILL_PLAN_LABEL}=nightly") in api.calls


def test_a_plan_never_seen_starts_its_run(api: type[FakeCustomObjects]) -> None:
    reconcile(1, SPEC, None)
    assert creates(api) == ["nightly-1"]


def test_the_same_generation_starts_nothing(api: type[FakeCustomObjects]) -> None:
    status = reconcile(4, SPEC, {"observedGeneration": 4})
    assert api.calls == []
    assert status["observedGeneration"] == 4


def test_a_suspended_plan_starts_nothing(api: type[FakeCustomObjects]) -> None:
    status = reconcile(5, {**SPEC, "suspend": True}, {"observedGeneration": 4})
    assert api.calls == []
    assert status == {"observedGeneration": 5}


def test_a_scheduled_plan_starts_no_run_on_apply(api: type[FakeCustomObjects]) -> None:
    # Its schedule starts its runs (the plan's daemon), and writes its schedule status.
    status = reconcile(6, {**SPEC, "schedule": "0 3 * * *"}, {"observedGeneration": 5})
    assert api.calls == []
    assert status == {"observedGeneration": 6}


def test_a_run_that_exists_already_is_fine(api: type[FakeCustomObjects]) -> None:
    # A retried handler, or an operator that restarted between create and status write.
    existing = run_obj("nightly-2", "2030-01-01T00:00:00Z", "Running")
    api.objects[(DRILLRUNS, "demo", "nightly-2")] = existing
    status = reconcile(2, SPEC, {"observedGeneration": 1})
    assert status["observedGeneration"] == 2
    assert creates(api) == ["nightly-2"]
    assert api.objects[(DRILLRUNS, "demo", "nightly-2")] is existing  # not replaced


def test_other_create_errors_propagate(api: type[FakeCustomObjects]) -> None:
    api.fail["create"] = client.ApiException(status=403, reason="Forbidden")
    with pytest.raises(client.ApiException):
        reconcile(2, SPEC, {"observedGeneration": 1})


def test_an_invalid_plan_raises_before_anything_is_created(api: type[FakeCustomObjects]) -> None:
    with pytest.raises(ValueError, match="steps"):
        reconcile(2, {"target": {"modelDeployment": "tiny-bert"}, "steps": []}, None)
    assert api.calls == []


# --------------------------------------------------------------------- prune_history


def test_prune_deletes_the_oldest_ended_runs_beyond_the_limit(
    api: type[FakeCustomObjects],
) -> None:
    runs = [
        run_obj("r1", "2030-01-01T00:00:01Z", "Passed"),
        run_obj("r2", "2030-01-01T00:00:02Z", "Running"),  # oldest but one: in flight
        run_obj("r3", "2030-01-01T00:00:03Z", "Failed"),
        run_obj("r4", "2030-01-01T00:00:04Z", None),  # Pending: not ended
        run_obj("r5", "2030-01-01T00:00:05Z", "Aborted"),
        run_obj("r6", "2030-01-01T00:00:06Z", "Error"),
        run_obj("o1", "2020-01-01T00:00:00Z", "Passed", plan="other"),  # another plan's
    ]
    for run in runs:
        api.objects[(DRILLRUNS, "demo", run["metadata"]["name"])] = run
    assert plans.prune_history(nowhere(), "demo", "nightly", 2) == 2
    deleted = [name for method, _, name in api.calls if method == "delete"]
    assert deleted == ["r1", "r3"]
    left = sorted(name for (_, _, name) in api.objects)
    assert left == ["o1", "r2", "r4", "r5", "r6"]


def test_prune_never_deletes_a_running_run(api: type[FakeCustomObjects]) -> None:
    for i in range(5):
        api.objects[(DRILLRUNS, "demo", f"r{i}")] = run_obj(
            f"r{i}", f"2030-01-01T00:00:0{i}Z", "Running"
        )
    assert plans.prune_history(nowhere(), "demo", "nightly", 1) == 0
    assert not [c for c in api.calls if c[0] == "delete"]


def test_prune_within_the_limit_deletes_nothing(api: type[FakeCustomObjects]) -> None:
    for i in range(3):
        api.objects[(DRILLRUNS, "demo", f"r{i}")] = run_obj(
            f"r{i}", f"2030-01-01T00:00:0{i}Z", "Passed"
        )
    assert plans.prune_history(nowhere(), "demo", "nightly", 3) == 0


def test_prune_of_a_run_deleted_meanwhile_is_fine(
    api: type[FakeCustomObjects], monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        api.objects[(DRILLRUNS, "demo", f"r{i}")] = run_obj(
            f"r{i}", f"2030-01-01T00:00:0{i}Z", "Passed"
        )
    real_delete = FakeCustomObjects.delete_namespaced_custom_object

    def delete_twice(self: FakeCustomObjects, *args: Any, **kwargs: Any) -> dict[str, Any]:
        real_delete(self, *args, **kwargs)  # someone else deleted it first
        return real_delete(self, *args, **kwargs)  # 404

    monkeypatch.setattr(FakeCustomObjects, "delete_namespaced_custom_object", delete_twice)
    assert plans.prune_history(nowhere(), "demo", "nightly", 1) == 2


def test_reconcile_prunes_with_the_plans_history_limit(api: type[FakeCustomObjects]) -> None:
    for i in range(4):
        api.objects[(DRILLRUNS, "demo", f"nightly-{i + 1}")] = run_obj(
            f"nightly-{i + 1}", f"2030-01-01T00:00:0{i}Z", "Passed"
        )
    reconcile(5, {**SPEC, "historyLimit": 2}, {"observedGeneration": 4})
    assert sorted(name for (_, _, name) in api.objects) == ["nightly-3", "nightly-4", "nightly-5"]


# ----------------------------------------------------------------- snapshot_into_run


def test_a_hand_made_run_gets_the_plans_spec_and_generation(
    api: type[FakeCustomObjects],
) -> None:
    api.objects[(DRILLPLANS, "demo", "nightly")] = {
        "metadata": {"name": "nightly", "generation": 9},
        "spec": SPEC,
    }
    by_hand = run_obj("by-hand", "2030-01-01T00:00:00Z", None)
    del by_hand["metadata"]["labels"]  # kubectl apply of a run that names only its plan
    api.objects[(DRILLRUNS, "demo", "by-hand")] = by_hand
    ref = RunRef("demo", "by-hand", "run-uid")
    plan = plans.snapshot_into_run(
        nowhere(), ref, DrillRunSpec.parse({"planRef": {"name": "nightly"}})
    )
    assert plan.target.model_deployment == "tiny-bert" and plan.step_names == ["kill"]
    run = api.objects[(DRILLRUNS, "demo", "by-hand")]
    assert run["spec"]["plan"] == SPEC and run["spec"]["planGeneration"] == 9
    # Labelled as the plan's: it counts in the history its historyLimit bounds.
    assert run["metadata"]["labels"] == {DRILL_PLAN_LABEL: "nightly"}


def test_a_hand_made_run_of_a_missing_plan_is_refused(api: type[FakeCustomObjects]) -> None:
    ref = RunRef("demo", "by-hand", "run-uid")
    with pytest.raises(Refusal) as caught:
        plans.snapshot_into_run(nowhere(), ref, DrillRunSpec.parse({"planRef": {"name": "gone"}}))
    assert caught.value.reason == "PlanNotFound" and "demo/gone" in caught.value.message
    assert not [c for c in api.calls if c[0] == "patch"]


# ------------------------------------------------------------------ derive_last_runs


def plan_with_runs(api: type[FakeCustomObjects], *runs: dict[str, Any]) -> None:
    api.objects[(DRILLPLANS, "demo", "nightly")] = {
        "metadata": {"name": "nightly", "namespace": "demo"},
        "spec": SPEC,
    }
    for run in runs:
        api.objects[(DRILLRUNS, "demo", run["metadata"]["name"])] = run


def ended(name: str, phase: str, finished: str, plan: str = "nightly") -> dict[str, Any]:
    run = run_obj(name, "2030-01-01T00:00:00Z", phase, plan)
    run["status"] |= {"startedAt": "2030-01-01T00:00:00Z", "finishedAt": finished}
    return run


def plan_writes(api: type[FakeCustomObjects]) -> int:
    return len([c for c in api.calls if c[:2] == ("patch_status", DRILLPLANS)])


def test_the_plans_last_run_is_derived_from_its_runs_and_written_once(
    api: type[FakeCustomObjects],
) -> None:
    plan_with_runs(
        api,
        ended("nightly-1", "Passed", "2030-01-01T00:02:00Z"),
        ended("nightly-2", "Failed", "2030-01-01T00:03:00Z"),
        ended("other-1", "Passed", "2030-01-01T00:09:00Z", plan="other"),
        run_obj("nightly-3", "2030-01-01T00:04:00Z", None),  # Pending
    )
    written = plans.derive_last_runs(nowhere(), "demo", "nightly")
    last = api.objects[(DRILLPLANS, "demo", "nightly")]["status"]["lastRun"]
    assert written == {"lastRun": last}
    assert last["name"] == "nightly-2" and Phase(last["phase"]) is Phase.FAILED
    assert last["finishedAt"] == "2030-01-01T00:03:00Z" and last["rtoSeconds"] is None
    # The runs are read once, the whole namespace (a run made by hand may carry no label).
    assert ("list", DRILLRUNS, "") in api.calls
    # Nothing changed: nothing written.
    assert plans.derive_last_runs(nowhere(), "demo", "nightly") == {}
    assert plan_writes(api) == 1
    # Its other fields are left alone (a merge patch of lastRun only).
    assert set(api.objects[(DRILLPLANS, "demo", "nightly")]["status"]) == {"lastRun"}


def test_a_run_deleted_before_the_list_still_counts_as_its_event_showed_it(
    api: type[FakeCustomObjects],
) -> None:
    plan_with_runs(api, ended("nightly-1", "Passed", "2030-01-01T00:02:00Z"))
    # nightly-2 ended, then went (pruned, deleted) before the daemon listed the runs.
    seen = [ended("nightly-2", "Aborted", "2030-01-01T00:05:00Z")]
    plans.derive_last_runs(nowhere(), "demo", "nightly", seen)
    last = api.objects[(DRILLPLANS, "demo", "nightly")]["status"]["lastRun"]
    assert (last["name"], last["phase"]) == ("nightly-2", "Aborted")
    # The next derivation (no event) keeps the record: nightly-1 is older.
    assert plans.derive_last_runs(nowhere(), "demo", "nightly") == {}
    # A listed run wins over what an event showed of it earlier.
    stale = [run_obj("nightly-1", "2030-01-01T00:00:00Z", "Running")]
    assert plans.derive_last_runs(nowhere(), "demo", "nightly", stale) == {}


def test_the_last_run_of_a_plan_gone_is_not_written(api: type[FakeCustomObjects]) -> None:
    api.objects[(DRILLRUNS, "demo", "nightly-1")] = ended(
        "nightly-1", "Passed", "2030-01-01T00:02:00Z"
    )
    assert plans.derive_last_runs(nowhere(), "demo", "nightly") == {}
    assert plan_writes(api) == 0


def test_a_failed_read_raises_for_the_daemon_to_retry(api: type[FakeCustomObjects]) -> None:
    plan_with_runs(api, ended("nightly-1", "Passed", "2030-01-01T00:02:00Z"))
    api.fail["list"] = client.ApiException(status=500, reason="boom")
    with pytest.raises(client.ApiException):
        plans.derive_last_runs(nowhere(), "demo", "nightly")
    assert plan_writes(api) == 0


# ------------------------------------------------------------------ one writer


def test_the_plans_status_is_written_in_one_place() -> None:
    """Every status write of a DrillPlan in the drills goes through plans.write_status (the
    daemon's merge patches); the create/update handler's observedGeneration goes through
    kopf's patch. No run, engine or report code writes a plan."""
    drills = Path(plans.__file__).resolve().parent
    writers = []
    for path in sorted(drills.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for call in ast.walk(fn):
                if (
                    isinstance(call, ast.Attribute)
                    and call.attr == "patch_namespaced_custom_object_status"
                    and "DRILLPLANS" in ast.unparse(fn)
                ):
                    writers.append(f"{path.name}:{fn.name}")
    assert writers == ["plans.py:write_status"]
    assert not hasattr(plans, "record_last_run")
