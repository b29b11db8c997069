"""Status, health and snapshot parsing (pure)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.capacity import GpuCapacity, gpu_capacity
from modeldr.kube.constants import DIGEST_ANNOTATION, Role
from modeldr.operator.health import cluster_health
from modeldr.operator.monitor import Snapshot, ready_addresses
from modeldr.operator.status import (
    Observed,
    build_status,
    failover_ready,
    observed_digest,
    set_condition,
)
from tests.specs import minimal_spec_dict

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    conditions, flipped = set_condition([], "Ready", True, "Serving", "ok", NOW, 1)
    assert not flipped and conditions[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    later = NOW + timedelta(minutes=1)
    conditions, flipped = set_condition(conditions, "Ready", True, "Serving", "still", later, 2)
    assert not flipped and conditions[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert conditions[0]["message"] == "still" and conditions[0]["observedGeneration"] == 2
    conditions, flipped = set_condition(conditions, "Ready", False, "NotServing", "x", later, 2)
    assert flipped and conditions[0]["lastTransitionTime"] == "2026-01-01T00:01:00Z"


def _slice(ns: str, svc: str, endpoints: list[tuple[str, bool, bool]]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": r, "terminating": t}}
            for a, r, t in endpoints
        ],
    }


def test_ready_addresses_skip_not_ready_and_terminating() -> None:
    slices = [
        _slice("ns", "m", [("127.1.0.2", True, False), ("127.1.0.3", False, False)]),
        _slice("ns", "m", [("127.1.0.4", True, True), ("127.1.0.1", True, False)]),
        _slice("ns", "empty", []),
    ]
    out = ready_addresses(slices)
    assert out[("ns", "m")] == ("127.1.0.1", "127.1.0.2")
    assert out[("ns", "empty")] == ()


def _node(name: str, product: str, gpus: int, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _pod(node: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


def test_gpu_capacity_counts_ready_nodes_and_live_pods() -> None:
    nodes = [_node("a", "H100", 8), _node("b", "H100", 8, ready=False), _node("c", "A10", 4)]
    pods = [_pod("a", 2), _pod("a", 1, "Succeeded"), _pod("c", 4), _pod("b", 8)]
    capacity = gpu_capacity(nodes, pods)
    assert capacity.free("H100") == 6
    assert capacity.free("A10") == 0
    assert capacity.free(None) == 6


def _snapshot(**kwargs: Any) -> Snapshot:
    return Snapshot("standby", time.monotonic(), NOW, **kwargs)


def test_cluster_health() -> None:
    assert not cluster_health(_snapshot(error="apiserver unreachable"), "ns", "m").healthy
    assert "does not exist" in cluster_health(_snapshot(), "ns", "m").reason
    deployment = {"status": {"readyReplicas": 2}}
    no_endpoints = _snapshot(deployments={("ns", "m"): deployment})
    assert "no ready endpoints" in cluster_health(no_endpoints, "ns", "m").reason
    ok = _snapshot(
        deployments={("ns", "m"): deployment}, ready_addresses={("ns", "m"): ("127.2.0.1",)}
    )
    health = cluster_health(ok, "ns", "m")
    assert health.healthy and health.ready_replicas == 2
    stale = Snapshot(
        "standby",
        time.monotonic() - 60,
        NOW,
        deployments=ok.deployments,
        ready_addresses=ok.ready_addresses,
    )
    assert "no fresh observation" in cluster_health(stale, "ns", "m").reason
    codes = [
        cluster_health(s, "ns", "m").code
        for s in (_snapshot(error="x"), stale, _snapshot(), no_endpoints, ok)
    ]
    assert codes == ["Unreachable", "NotObserved", "NoDeployment", "NoReadyEndpoints", "Healthy"]
    rejected = _snapshot(
        error="credentials rejected: apiserver answered 401 Unauthorized", credentials_rejected=True
    )
    health = cluster_health(rejected, "ns", "m")
    assert (health.healthy, health.code) == (False, "CredentialsRejected")
    assert "401" in health.reason


def test_observed_digest_only_once_rolled_out() -> None:
    template = {"metadata": {"annotations": {DIGEST_ANNOTATION: "sha256:abc"}}}
    d: dict[str, Any] = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": template},
        "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2},
    }
    assert observed_digest(d) == "sha256:abc"
    d["status"]["updatedReplicas"] = 1  # rollout of a new digest in progress
    assert observed_digest(d) is None
    assert observed_digest(None) is None


def test_failover_ready_checks_reachability_readiness_and_gpus() -> None:
    from modeldr.operator.failover import Health

    up, down = Health(True, "ok", 1), Health(False, "no ready endpoints")
    snap = _snapshot(gpus=GpuCapacity({"H100": 8}, {"H100": 7}))
    assert failover_ready("hot", up, snap, 0, 1, "H100")[0]
    assert not failover_ready("hot", down, snap, 0, 1, "H100")[0]
    ok, why = failover_ready("warm", up, snap, 2, 1, "H100")
    assert not ok and "1 free GPUs of product H100, needs 2" in why
    assert failover_ready("cold", down, snap, 1, 1, "H100")[0]
    assert not failover_ready("cold", up, _snapshot(error="unreachable"), 1, 1, None)[0]


def test_slim_keeps_what_the_operator_reads() -> None:
    from modeldr.operator.monitor import slim

    obj = {
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "labels": {"a": "b"},
            "generation": 3,
            "managedFields": [{"manager": "modeldr"}],
            "annotations": {"big": "x" * 1000},
        },
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 2},
    }
    assert slim(obj) == {
        "metadata": {"name": "m", "namespace": "ns", "labels": {"a": "b"}, "generation": 3},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 2},
    }


def test_only_gpu_nodes_are_polled_for_pods() -> None:
    from modeldr.kube.capacity import gpu_node_names

    nodes = [_node("gpu-0", "H100", 8), _node("cpu-0", "none", 0)]
    assert gpu_node_names(nodes) == ["gpu-0"]


def _gpu_spec(mode: str, **clusters: dict[str, Any]) -> ModelDeploymentSpec:
    raw = minimal_spec_dict(replicas=2, resources={"gpusPerReplica": 1, "gpuProduct": "H100"})
    raw["clusters"]["standby"]["mode"] = mode
    if mode == "warm":
        raw["clusters"]["standby"]["replicas"] = 1
    for role, extra in clusters.items():
        raw["clusters"][role].update(extra)
    return ModelDeploymentSpec.parse(raw)


def _observed(spec: ModelDeploymentSpec, active: Role = "primary") -> Observed:
    from modeldr.operator.failover import Decision, Health

    # Both clusters have 4 free H100 and 1 free A100.
    gpus = GpuCapacity({"H100": 8, "A100": 4}, {"H100": 4, "A100": 3})
    snapshots: dict[Role, Snapshot] = {
        role: Snapshot(role, time.monotonic(), NOW, gpus=gpus) for role in ("primary", "standby")
    }
    health: dict[Role, Health] = {
        "primary": Health(True, "ok", 2),
        "standby": Health(True, "ok", 1),
    }
    return Observed("bert", spec, active, True, Decision(), snapshots, health, True, "", ())


def test_free_gpus_and_failover_readiness_count_each_clusters_own_gpu_product() -> None:
    same = build_status(_observed(_gpu_spec("warm")), 1, None, None)
    assert same.status["primary"]["freeGPUs"] == same.status["standby"]["freeGPUs"] == 4
    assert same.can_fail_over

    a100 = {"resources": {"gpuProduct": "A100"}}
    report = build_status(_observed(_gpu_spec("warm", standby=a100)), 1, None, None)
    assert report.status["primary"]["freeGPUs"] == 4
    assert report.status["standby"]["freeGPUs"] == 1
    # A warm standby of 1 must add 1 replica of 1 GPU on failover: 1 free A100 suffice.
    assert report.can_fail_over
    cold = build_status(_observed(_gpu_spec("cold", standby=a100)), 1, None, None)
    assert not cold.can_fail_over  # 2 replicas to start, 1 free A100
    assert any("1 free GPUs of product A100, needs 2" in c[3] for c in cold.changes)

    # While the standby is active the primary is the one to take over: its product counts.
    back = _gpu_spec("cold", primary=a100)
    reverse = build_status(_observed(back, "standby"), 1, None, None)
    assert reverse.status["primary"]["freeGPUs"] == 1


def test_ready_says_what_clients_get_and_each_cluster_how_many_answer() -> None:
    from dataclasses import replace

    from modeldr.operator.failover import Health

    seen = _observed(_gpu_spec("hot"))
    loading = Health(
        False,
        "2 ready endpoints; client probe (readiness, from its ready endpoints): 0 of 2 answered "
        "within 1000 ms, below the 50% needed; failures: HTTP 503: model is loading x2",
        2,
        "ServersNotAnswering",
        "0/2",
    )
    report = build_status(replace(seen, health={**seen.health, "primary": loading}), 1, None, None)
    ready = next(c for c in report.changes if c[0] == "Ready")
    # The endpoints are Ready as the member reports them; the servers answer 503.
    assert ready[1] is False and ready[2] == "ServersNotAnswering"
    assert "0 of 2 answered" in ready[3] and "HTTP 503: model is loading x2" in ready[3]
    assert report.status["primary"]["answering"] == "0/2"
    assert "answering" not in report.status["standby"]  # no probe result: nothing claimed
    assert not report.serving

    gone = Health(False, "no ready endpoints for Service ns/bert", 0, "NoReadyEndpoints")
    down = build_status(replace(seen, health={**seen.health, "primary": gone}), 1, None, None)
    assert next(c for c in down.changes if c[0] == "Ready")[2] == "NoReadyEndpoints"
    unrouted = build_status(replace(seen, traffic_routed=False), 1, None, None)
    assert next(c for c in unrouted.changes if c[0] == "Ready")[2] == "TrafficNotRouted"
    serving = build_status(seen, 1, None, None)
    assert next(c for c in serving.changes if c[0] == "Ready")[2] == "Serving"
