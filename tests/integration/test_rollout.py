"""A verified rollout (spec.rollout) on the sandbox: a new model version goes to the standby
first, is evaluated there against the version serving, and is rolled back (a worse one, the
primary's pods untouched) or promoted (a good one, then on the primary too). The versions are
the examples' (examples/sandbox/rollout-*.yaml, written by sandbox/model_versions.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldr.kube.constants import GROUP, VERSION
from sandbox import kube, objectstores
from sandbox.api import Sandbox
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    create,
    custom,
    manifest,
    serving_everywhere,
    wait_status,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples/sandbox"
GOLDEN_SET = EXAMPLES / "golden-set.yaml"


@pytest.fixture(autouse=True)
def store_secrets(hub_ns: str) -> None:
    """The examples' versions come from the object stores (s3://models/...; operator_up
    published them): the member namespaces get the stores' Secrets, as the demo's have."""
    objectstores.put_member_secrets(hub_ns)


def rollout_phase(phase: str) -> Any:
    return lambda s: (s.get("rollout") or {}).get("phase") == phase


def promoted(digest: str) -> Any:
    """The rollout of `digest` ended Promoted (not the status before it began)."""

    def check(s: dict[str, Any]) -> bool:
        rollout = s.get("rollout") or {}
        return bool(
            rollout.get("phase") == "Promoted"
            and (rollout.get("to") or {}).get("expectedDigest") == digest
        )

    return check


def pod_uids(cluster: str, namespace: str) -> set[str]:
    pods = kube.core(cluster).list_namespaced_pod(
        namespace, label_selector=f"modeldr.io/name={NAME}"
    )
    return {str(p.metadata.uid) for p in pods.items}


def seconds(rollout: dict[str, Any]) -> float:
    started = datetime.fromisoformat(rollout["startedTime"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(rollout["finishedTime"].replace("Z", "+00:00"))
    return (finished - started).total_seconds()


def test_a_worse_version_is_rolled_back_on_the_standby_and_a_good_one_promoted(
    hub_ns: str, sandbox: Sandbox
) -> None:
    kube.core("hub").create_namespaced_config_map(hub_ns, yaml.safe_load(GOLDEN_SET.read_text()))
    md = manifest(
        hub_ns,
        evaluation={"goldenSet": {"configMapRef": {"name": "tiny-bert-golden"}}},
        rollout={"maxF1Drop": 0.05},  # as the example: the better v2 misses 1 of 48
    )
    v1 = md["spec"]["model"]["expectedDigest"]
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    s = wait_status(hub_ns, rollout_phase("Promoted"), "the first version recorded", 30)
    assert s["rollout"]["to"]["expectedDigest"] == v1
    primary_pods = pod_uids("primary", hub_ns)
    # The deliberately worse version (examples/sandbox/rollout-bad.yaml): labels swapped.
    bad = yaml.safe_load((EXAMPLES / "rollout-bad.yaml").read_text())
    custom().patch_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME, bad)
    s = wait_status(hub_ns, rollout_phase("RolledBack"), "the worse version rolled back", 150)
    rollout = s["rollout"]
    evaluation = rollout["evaluation"]
    worse = bad["spec"]["model"]["expectedDigest"]
    assert rollout["to"]["expectedDigest"] == worse, rollout
    assert evaluation["cluster"] == "standby" and evaluation["referenceF1"] > 0.9, evaluation
    assert evaluation["f1"] < 0.1 and evaluation["agreement"] < 0.1, evaluation
    assert "below the serving version" in rollout["message"], rollout
    assert set(evaluation["servedDigests"].values()) == {worse}, evaluation
    print(f"\nrollout of a worse version: rolled back in {seconds(rollout):.1f} s")
    # The primary was never touched; the standby serves the previous version again.
    assert pod_uids("primary", hub_ns) == primary_pods
    wait_status(
        hub_ns,
        lambda s: (s.get("standby") or {}).get("observedDigest") == v1,
        "the standby back on the previous version",
        120,
    )
    # The better version (examples/sandbox/rollout-good.yaml): trained twice as long.
    good = yaml.safe_load((EXAMPLES / "rollout-good.yaml").read_text())
    custom().patch_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME, good)
    new = good["spec"]["model"]["expectedDigest"]
    s = wait_status(hub_ns, promoted(new), "the good version promoted", 240)
    rollout = s["rollout"]
    evaluation = rollout["evaluation"]
    assert evaluation["f1"] >= evaluation["referenceF1"] - 0.05, evaluation
    assert evaluation["agreement"] > 0.95, evaluation
    s = wait_status(
        hub_ns,
        lambda s: {(s.get(r) or {}).get("observedDigest") for r in ("primary", "standby")} == {new},
        "both clusters on the new version",
        60,
    )
    print(f"rollout of a good version: promoted in {seconds(rollout):.1f} s")


def test_a_rollout_with_a_drill_plan_promotes_only_after_the_drill_passed(hub_ns: str) -> None:
    """spec.rollout.drillPlan: once the standby serves the new version, the operator runs the
    plan once (a DrillRun naming it) and promotes only after that run Passed: here the plan
    moves the traffic to the standby (the new version) and back, with no error allowed."""
    kube.core("hub").create_namespaced_config_map(hub_ns, yaml.safe_load(GOLDEN_SET.read_text()))
    plan = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DrillPlan",
        "metadata": {"name": "new-version-serves"},
        "spec": {
            "target": {"modelDeployment": NAME},
            "traffic": {"ratePerSecond": 10, "timeoutMilliseconds": 2000},
            "steadyState": {"durationSeconds": 2, "maxErrorRatio": 0.0},
            "steps": [
                {
                    "name": "on-the-new-version",
                    "action": {"type": "Failover"},
                    "durationSeconds": 6,
                    "expect": {"activeCluster": "standby", "maxErrorRatio": 0.0},
                },
                {
                    "name": "back",
                    "action": {"type": "Failback"},
                    "durationSeconds": 6,
                    "expect": {"activeCluster": "primary", "maxErrorRatio": 0.0},
                },
            ],
            "blastRadius": {"maxPodsPercent": 100},
            # A plan applied starts a run of its own; suspended, only the rollout's runs.
            "suspend": True,
        },
    }
    custom().create_namespaced_custom_object(GROUP, VERSION, hub_ns, "drillplans", plan)
    md = manifest(
        hub_ns,
        evaluation={"goldenSet": {"configMapRef": {"name": "tiny-bert-golden"}}},
        rollout={"maxF1Drop": 0.05, "drillPlan": "new-version-serves"},
    )
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    wait_status(hub_ns, rollout_phase("Promoted"), "the first version recorded", 30)
    good = yaml.safe_load((EXAMPLES / "rollout-good.yaml").read_text())
    custom().patch_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME, good)
    new = good["spec"]["model"]["expectedDigest"]
    s = wait_status(hub_ns, promoted(new), "promoted after the drill", 240)
    rollout = s["rollout"]
    run = custom().get_namespaced_custom_object(
        GROUP, VERSION, hub_ns, "drillruns", rollout["drillRun"]
    )
    assert run["status"]["phase"] == "Passed", run["status"].get("message")
    assert [step["activeCluster"] for step in run["status"]["steps"]] == ["standby", "primary"]
    assert "drill new-version-serves-rollout-" in rollout["message"], rollout
    print(f"\nrollout with a drill plan: promoted in {seconds(rollout):.1f} s")
