"""operator/autoscaling.py: the HPA's floor per role (idle, serving, carrying a failed peer's
replicas for the stabilization window) and the HPA and Deployment the operator renders."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.operator import render
from modeldr.operator.autoscaling import INFLIGHT_METRIC, ScaleMemory, floor

WINDOW = 60


def spec(mode: str = "warm", standby: dict[str, int] | None = None) -> ModelDeploymentSpec:
    raw: dict[str, Any] = {
        "model": {
            "name": "m",
            "task": "sequence-classification",
            "source": "file:///models/m",
            "expectedDigest": "sha256:" + "0" * 64,
        },
        "runtime": {"image": "serve:1", "port": 8080},
        "replicas": 2,
        "clusters": {
            "primary": {"cluster": "east", "namespace": "a"},
            "standby": {"cluster": "west", "namespace": "a", "mode": mode}
            | ({"replicas": 1} if mode == "warm" else {}),
        },
        "autoscaling": {
            "targetInflightPerPod": 0.25,
            "primary": {"minReplicas": 2, "maxReplicas": 4},
            "scaleDownStabilizationSeconds": WINDOW,
        },
    }
    if standby is not None:
        raw["autoscaling"]["standby"] = standby
    return ModelDeploymentSpec.model_validate(raw)


def test_the_primary_serves_at_its_minimum_when_nothing_failed() -> None:
    s = spec()
    assert s.autoscaling is not None
    assert floor(s.autoscaling, s, "primary", True, ScaleMemory(), 0.0) == 2


def test_an_idle_warm_standby_keeps_its_warm_size_and_a_hot_one_its_minimum() -> None:
    warm = spec("warm", {"minReplicas": 3, "maxReplicas": 6})
    hot = spec("hot", {"minReplicas": 3, "maxReplicas": 6})
    assert warm.autoscaling is not None and hot.autoscaling is not None
    assert floor(warm.autoscaling, warm, "standby", False, ScaleMemory(), 0.0) == 1
    assert floor(hot.autoscaling, hot, "standby", False, ScaleMemory(), 0.0) == 3


def test_a_survivor_carries_what_its_failed_peer_ran_until_the_window_after_it_failed() -> None:
    s = spec("warm", {"minReplicas": 1, "maxReplicas": 8})
    assert s.autoscaling is not None
    memory = ScaleMemory()
    memory.observe("primary", True, 4, 0.0, WINDOW)  # the autoscaler had grown it to 4
    memory.observe("standby", True, 1, 0.0, WINDOW)
    memory.observe("primary", False, None, 10.0, WINDOW)  # then it failed
    # Serving for the failed primary: 4 at once, not its own minimum of 1.
    assert floor(s.autoscaling, s, "standby", True, memory, 10.0) == 4
    assert floor(s.autoscaling, s, "standby", True, memory, 10.0 + WINDOW) == 4
    # Last seen failed at 30 s, it recovers with 1 replica: that is not what it carried.
    memory.observe("primary", False, None, 30.0, WINDOW)
    memory.observe("primary", True, 1, 31.0, WINDOW)
    assert floor(s.autoscaling, s, "standby", True, memory, 30.0 + WINDOW) == 4
    # A window after its last failure the autoscaler alone decides.
    assert floor(s.autoscaling, s, "standby", True, memory, 31.0 + WINDOW) == 1


def test_a_cluster_that_failed_while_coming_up_is_still_carried() -> None:
    """Unhealthy until its servers were ready, then healthy with 3, then failed at once: the
    survivor carries the 3 (no window has to pass before a size counts)."""
    s = spec("warm", {"minReplicas": 1, "maxReplicas": 4})
    assert s.autoscaling is not None
    memory = ScaleMemory()
    memory.observe("primary", False, None, 0.0, WINDOW)  # starting
    memory.observe("primary", True, 3, 18.0, WINDOW)
    memory.observe("primary", False, None, 20.0, WINDOW)
    assert floor(s.autoscaling, s, "standby", True, memory, 21.0) == 3


def test_the_carry_is_clipped_to_the_survivors_maximum() -> None:
    s = spec("hot")
    assert s.autoscaling is not None
    memory = ScaleMemory()
    memory.observe("standby", True, 9, 0.0, WINDOW)
    memory.observe("standby", False, None, 1.0, WINDOW)
    assert floor(s.autoscaling, s, "primary", True, memory, 1.0) == 4


def test_a_healthy_peer_is_never_carried_so_two_clusters_cannot_ratchet_each_other() -> None:
    s = spec("hot")
    assert s.autoscaling is not None
    memory = ScaleMemory()
    memory.observe("primary", True, 4, 0.0, WINDOW)
    memory.observe("standby", True, 4, 0.0, WINDOW)
    assert floor(s.autoscaling, s, "standby", True, memory, 5.0) == 2
    assert floor(s.autoscaling, s, "primary", True, memory, 5.0) == 2


def test_the_standby_maximum_defaults_to_the_primarys() -> None:
    s = spec()
    assert s.autoscaling is not None
    assert s.autoscaling.range_of("standby").max_replicas == 4


def test_the_member_objects_gain_an_hpa_on_the_inflight_metric_and_leave_replicas_to_it() -> None:
    s = spec()
    objects = render.member_objects("m", "team", s, "standby", 3)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    assert "replicas" not in deployment["spec"]
    assert hpa["metadata"]["labels"] == deployment["metadata"]["labels"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "m",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 4)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == INFLIGHT_METRIC
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "250m"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == WINDOW


def test_without_autoscaling_the_deployment_keeps_its_replicas_and_there_is_no_hpa() -> None:
    raw = spec().model_dump(by_alias=True, exclude_none=True)
    del raw["autoscaling"]
    fixed = ModelDeploymentSpec.model_validate(raw)
    objects = render.member_objects("m", "team", fixed, "primary", 2)
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "PodDisruptionBudget"]
    assert objects[0]["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    "autoscaling",
    [
        {"targetInflightPerPod": 0, "primary": {"maxReplicas": 2}},
        {"targetInflightPerPod": 1, "primary": {"minReplicas": 0, "maxReplicas": 2}},
        {"targetInflightPerPod": 1},
    ],
)
def test_bad_autoscaling_is_refused(autoscaling: dict[str, Any]) -> None:
    raw = spec().model_dump(by_alias=True, exclude_none=True)
    raw["autoscaling"] = autoscaling
    with pytest.raises(ValidationError):
        ModelDeploymentSpec.model_validate(raw)
