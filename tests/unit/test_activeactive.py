"""operator/activeactive.py: weights withdrawn on a failed check, given back after the hold-down."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import Role
from modeldr.operator.activeactive import (
    HELD_DOWN,
    NO_WEIGHT,
    SERVING,
    UNHEALTHY,
    ClusterShare,
    WeightState,
    weigh,
)


def spec(weights: dict[str, int] | None = None, hold_down: int = 30) -> ModelDeploymentSpec:
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
            "standby": {"cluster": "west", "namespace": "a", "mode": "hot"},
        },
        "failover": {"failback": {"holdDownSeconds": hold_down}},
        "traffic": {
            "provider": "haproxy",
            "mode": "activeActive",
            "haproxy": {"frontendPort": 19301},
        },
    }
    if weights is not None:
        raw["traffic"]["weights"] = weights
    return ModelDeploymentSpec.model_validate(raw)


BOTH: dict[Role, bool] = {"primary": True, "standby": True}


def health(primary: bool, standby: bool) -> dict[Role, bool]:
    return {"primary": primary, "standby": standby}


def weights_of(shares: Mapping[Role, ClusterShare]) -> dict[str, tuple[int, str]]:
    return {role: (share.weight, share.state) for role, share in shares.items()}


def test_both_healthy_serve_by_their_configured_weights() -> None:
    shares = weigh(spec({"primary": 70, "standby": 30}), WeightState(), BOTH, 0.0)
    assert weights_of(shares) == {"primary": (70, SERVING), "standby": (30, SERVING)}


def test_a_failed_check_withdraws_at_once_and_the_hold_down_gives_it_back() -> None:
    md, state = spec(hold_down=30), WeightState()
    weigh(md, state, BOTH, 0.0)
    down = weigh(md, state, health(False, True), 5.0)
    assert weights_of(down) == {"primary": (0, UNHEALTHY), "standby": (50, SERVING)}
    healthy_again = weigh(md, state, BOTH, 10.0)
    assert weights_of(healthy_again)["primary"] == (0, HELD_DOWN)
    assert "30 s" in healthy_again["primary"].message
    assert weights_of(weigh(md, state, BOTH, 39.0))["primary"] == (0, HELD_DOWN)
    assert weights_of(weigh(md, state, BOTH, 40.0))["primary"] == (50, SERVING)


def test_a_failure_during_the_hold_down_starts_it_again() -> None:
    md, state = spec(hold_down=30), WeightState()
    weigh(md, state, BOTH, -1.0)
    weigh(md, state, health(False, True), 0.0)
    weigh(md, state, BOTH, 10.0)
    weigh(md, state, health(False, True), 20.0)
    weigh(md, state, BOTH, 25.0)
    assert weights_of(weigh(md, state, BOTH, 50.0))["primary"] == (0, HELD_DOWN)
    assert weights_of(weigh(md, state, BOTH, 55.0))["primary"] == (50, SERVING)


def test_a_zero_weight_is_never_given_traffic() -> None:
    shares = weigh(spec({"primary": 100, "standby": 0}), WeightState(), BOTH, 0.0)
    assert weights_of(shares) == {"primary": (100, SERVING), "standby": (0, NO_WEIGHT)}


def test_a_held_down_cluster_serves_at_once_when_no_other_does() -> None:
    md, state = spec(hold_down=300), WeightState()
    weigh(md, state, BOTH, -1.0)
    weigh(md, state, health(False, True), 0.0)
    weigh(md, state, BOTH, 10.0)  # primary held down
    shares = weigh(md, state, health(True, False), 20.0)
    assert weights_of(shares) == {"primary": (50, SERVING), "standby": (0, UNHEALTHY)}
    assert "before its hold-down" in shares["primary"].message


def test_no_healthy_cluster_keeps_the_configured_weights() -> None:
    shares = weigh(spec(), WeightState(), health(False, False), 0.0)
    assert {role: share.weight for role, share in shares.items()} == {"primary": 50, "standby": 50}
    assert all("no cluster is healthy" in share.message for share in shares.values())


def test_a_cluster_coming_up_for_the_first_time_serves_as_soon_as_it_passes() -> None:
    md, state = spec(hold_down=300), WeightState()
    starting = weigh(md, state, health(True, False), 0.0)
    assert weights_of(starting)["standby"] == (0, UNHEALTHY)
    assert weights_of(weigh(md, state, BOTH, 5.0))["standby"] == (50, SERVING)
    weigh(md, state, health(True, False), 10.0)  # it served: now a failure holds it down
    assert weights_of(weigh(md, state, BOTH, 15.0))["standby"] == (0, HELD_DOWN)
