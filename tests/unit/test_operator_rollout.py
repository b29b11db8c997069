"""The verified rollout's state machine (operator/rollout.py): the new version on the standby
first, the primary untouched until it is verified, rolled back when not, and by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiException

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.operator import rollout
from modeldr.operator.rollout import PROMOTED, PROMOTING, ROLLED_BACK, VERIFYING, step
from modeldr.operator.rollouts import Verdict, act_on, served_digest
from tests.specs import minimal_spec_dict

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
V1 = "sha256:" + "1" * 64
V2 = "sha256:" + "2" * 64
V3 = "sha256:" + "3" * 64


def spec(digest: str, **extra: Any) -> ModelDeploymentSpec:
    raw = minimal_spec_dict(
        rollout={}, evaluation={"goldenSet": {"configMapRef": {"name": "g"}}}, **extra
    )
    raw["model"] |= {"expectedDigest": digest, "source": f"file:///m/{digest[7:11]}"}
    return ModelDeploymentSpec.parse(raw)


def digests(s: rollout.RolloutStep) -> tuple[str, str]:
    return s.models["primary"].expected_digest, s.models["standby"].expected_digest


def first(digest: str = V1) -> dict[str, Any]:
    recorded = step(spec(digest), None, {"primary": None, "standby": None}, None, NOW).status
    assert recorded is not None
    return recorded


def test_the_first_model_is_recorded_promoted_and_runs_everywhere() -> None:
    recorded = first()
    assert recorded["phase"] == PROMOTED and recorded["to"]["expectedDigest"] == V1
    same = step(spec(V1), recorded, {"primary": V1, "standby": V1}, None, NOW)
    assert same.status == recorded and digests(same) == (V1, V1) and not same.events


def test_without_spec_rollout_both_clusters_run_spec_model_at_once() -> None:
    plain = ModelDeploymentSpec.parse(minimal_spec_dict())
    s = step(plain, first(), {"primary": None, "standby": None}, None, NOW)
    assert s.status is None and s.models["primary"] == plain.model == s.models["standby"]


def test_a_new_version_goes_to_the_standby_first_and_is_verified_once_served() -> None:
    begun = step(spec(V2), first(), {"primary": V1, "standby": V1}, None, NOW)
    assert begun.status is not None and begun.status["phase"] == VERIFYING
    assert digests(begun) == (V1, V2)  # the primary untouched
    assert begun.status["from"]["expectedDigest"] == V1 and begun.events[0][1] == "RolloutStarted"
    waiting = step(spec(V2), begun.status, {"primary": V1, "standby": None}, None, NOW)
    assert not waiting.verify and "waiting for every ready standby replica" in str(waiting.status)
    ready = step(spec(V2), begun.status, {"primary": V1, "standby": V2}, None, NOW)
    assert ready.verify and digests(ready) == (V1, V2)


def test_verified_promotes_to_the_primary_then_promoted_once_it_serves() -> None:
    begun = step(spec(V2), first(), {"primary": V1, "standby": V1}, None, NOW).status
    assert begun is not None
    promoting = act_on(spec(V2), begun, Verdict(True, "F1 1", {"f1": 1.0}), NOW)
    assert promoting.status is not None and promoting.status["phase"] == PROMOTING
    assert promoting.status["evaluation"] == {"f1": 1.0} and digests(promoting) == (V2, V2)
    still = step(spec(V2), promoting.status, {"primary": None, "standby": V2}, None, NOW)
    assert still.status is not None and still.status["phase"] == PROMOTING
    done = step(spec(V2), promoting.status, {"primary": V2, "standby": V2}, None, NOW)
    assert done.status is not None and done.status["phase"] == PROMOTED
    assert done.events[0][1] == "RolloutPromoted" and digests(done) == (V2, V2)


def test_not_verified_rolls_the_standby_back_and_is_not_tried_again() -> None:
    begun = step(spec(V2), first(), {"primary": V1, "standby": V1}, None, NOW).status
    assert begun is not None
    back = act_on(spec(V2), begun, Verdict(False, "F1 0.5 below 0.96", {"f1": 0.5}), NOW)
    assert back.status is not None and back.status["phase"] == ROLLED_BACK
    assert back.status["message"] == "F1 0.5 below 0.96" and digests(back) == (V1, V1)
    assert back.events[0][0] == "Warning"
    # spec.model still names the rejected version: nothing is tried again.
    again = step(spec(V2), back.status, {"primary": V1, "standby": V1}, None, NOW)
    assert again.status == back.status and digests(again) == (V1, V1) and not again.verify
    # A third version begins a new rollout from the version serving (V1).
    third = step(spec(V3), back.status, {"primary": V1, "standby": V1}, None, NOW)
    assert third.status is not None and third.status["phase"] == VERIFYING
    assert third.status["from"]["expectedDigest"] == V1 and digests(third) == (V1, V3)
    # Going back to the serving version ends it: Promoted, V1 everywhere.
    reverted = step(spec(V1), back.status, {"primary": V1, "standby": V1}, None, NOW)
    assert reverted.status is not None and reverted.status["phase"] == PROMOTED
    assert digests(reverted) == (V1, V1)


def test_by_hand_promote_skips_verification_and_abort_rolls_back() -> None:
    begun = step(spec(V2), first(), {"primary": V1, "standby": V1}, None, NOW).status
    promoted = step(spec(V2), begun, {"primary": V1, "standby": None}, "promote", NOW)
    assert promoted.status is not None and promoted.status["phase"] == PROMOTING
    assert promoted.clear_request and "promoted by hand" in promoted.status["message"]
    aborted = step(spec(V2), promoted.status, {"primary": None, "standby": V2}, "abort", NOW)
    assert aborted.status is not None and aborted.status["phase"] == ROLLED_BACK
    assert digests(aborted) == (V1, V1)


def test_a_change_mid_rollout_restarts_it_from_the_version_serving() -> None:
    begun = step(spec(V2), first(), {"primary": V1, "standby": V1}, None, NOW).status
    restarted = step(spec(V3), begun, {"primary": V1, "standby": V2}, None, NOW)
    assert restarted.status is not None and restarted.status["phase"] == VERIFYING
    assert restarted.status["from"]["expectedDigest"] == V1 and digests(restarted) == (V1, V3)


def test_served_digest_needs_every_replica_on_the_new_template() -> None:
    def snapshot(replicas: int, updated: int, ready: int) -> Any:
        deployment = {
            "metadata": {"generation": 2},
            "spec": {
                "replicas": 2,
                "template": {"metadata": {"annotations": {"modeldr.io/expected-digest": V2}}},
            },
            "status": {
                "observedGeneration": 2,
                "replicas": replicas,
                "updatedReplicas": updated,
                "readyReplicas": ready,
            },
        }
        return type("S", (), {"deployments": {("ml", "m"): deployment}})()

    assert served_digest(snapshot(2, 2, 2), "ml", "m") == V2
    assert served_digest(snapshot(3, 2, 2), "ml", "m") is None  # an old replica still runs
    assert served_digest(snapshot(2, 2, 0), "ml", "m") is None


class FakeRuns:
    """CustomObjectsApi's calls rollouts.drill makes: the plan read, the run created, and
    the run read until it ends (`phases`, one per read)."""

    def __init__(self, target: str, phases: list[str]) -> None:
        self.target, self.phases = target, phases
        self.created: list[dict[str, Any]] = []

    def get_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, name: str
    ) -> dict[str, Any]:
        if plural == "drillplans":
            if name != "check":
                raise ApiException(status=404, reason="Not Found")
            return {"spec": {"target": {"modelDeployment": self.target}}}
        return {"status": {"phase": self.phases.pop(0), "message": "measured"}}

    def create_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = args[4]
        self.created.append(body)
        return body


def run_drill(monkeypatch: Any, runs: FakeRuns, plan: str = "check") -> tuple[str, str, str]:
    import asyncio

    import kubernetes.client

    from modeldr.operator import rollouts

    monkeypatch.setattr(kubernetes.client, "CustomObjectsApi", lambda hub: runs)
    monkeypatch.setattr(rollouts, "DRILL_POLL_S", 0.0)
    runtime = type("Runtime", (), {"hub": None})()
    ctl: Any = type("Ctl", (), {"runtime": runtime, "namespace": "ns", "name": "tiny-bert"})()
    return asyncio.run(rollouts.drill(ctl, plan, V2))


def test_the_rollout_drill_runs_the_plan_once_and_waits_for_its_verdict(monkeypatch: Any) -> None:
    runs = FakeRuns("tiny-bert", ["Pending", "Running", "Passed"])
    name, phase, why = run_drill(monkeypatch, runs)
    assert (phase, why) == ("Passed", "measured") and name == "check-rollout-22222222"
    (manifest,) = runs.created
    assert manifest["spec"] == {"planRef": {"name": "check"}}
    assert manifest["metadata"]["labels"] == {"modeldr.io/drill-plan": "check"}
    failed = run_drill(monkeypatch, FakeRuns("tiny-bert", ["Failed"]))
    assert failed[1] == "Failed"


def test_a_rollout_drill_that_cannot_run_is_an_error_not_a_pass(monkeypatch: Any) -> None:
    other = FakeRuns("another-model", [])
    assert run_drill(monkeypatch, other)[1:] == (
        "Error",
        "DrillPlan check targets 'another-model', not tiny-bert",
    )
    assert other.created == []
    missing = run_drill(monkeypatch, FakeRuns("tiny-bert", []), plan="nope")
    assert missing[1] == "Error" and "404" in missing[2]
