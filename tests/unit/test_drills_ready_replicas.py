"""A step's ready replicas come from the ModelDeployment's status; an unreachable cluster's
count is stale, so it is not reported (minReplicas is then unknown, never met by old news)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from modeldr.drills.steps import StepRunner


def runner(status: dict[str, Any]) -> StepRunner:
    drill = SimpleNamespace(target_status=lambda: status, target=SimpleNamespace(name="md"))
    return StepRunner(drill, None)  # type: ignore[arg-type]


def test_ready_replicas_of_reachable_clusters_only() -> None:
    status = {
        "primary": {"reachable": False, "readyReplicas": 2},
        "standby": {"reachable": True, "readyReplicas": 2},
    }
    assert runner(status)._ready_replicas() == {"standby": 2}
    assert runner({"primary": {"readyReplicas": 1}})._ready_replicas() == {"primary": 1}
    assert runner({})._ready_replicas() is None


def test_an_unreadable_status_is_no_evidence() -> None:
    def broken() -> dict[str, Any]:
        raise OSError("hub unreachable")

    drill = SimpleNamespace(target_status=broken, target=SimpleNamespace(name="md"))
    assert StepRunner(drill, None)._ready_replicas() is None  # type: ignore[arg-type]
