"""Member pollers: which daemons a new snapshot wakes, and the objects a ModelDeployment owns."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldr.kube.constants import NAME_LABEL, NAMESPACE_LABEL
from modeldr.kube.errors import MemberError
from modeldr.operator.monitor import ClusterMonitor, Key, Snapshot, keys_to_wake

A: Key = ("ml", "bert")
B: Key = ("ml", "gpt")
C: Key = ("other", "bert")


def ok(addresses: dict[Key, tuple[str, ...]] | None = None) -> Snapshot:
    return Snapshot("primary", time.monotonic(), datetime.now(UTC), ready_addresses=addresses or {})


def failed(previous: Snapshot) -> Snapshot:
    return Snapshot(
        "primary",
        time.monotonic(),
        datetime.now(UTC),
        error="apiserver unreachable: connection refused",
        ready_addresses=previous.ready_addresses,
    )


def test_a_cluster_turning_unreachable_wakes_every_watched_model() -> None:
    before = ok({A: ("127.1.0.1",), B: ("127.1.0.2",)})
    assert keys_to_wake(before, failed(before), [A, B, C]) == {A, B, C}


def test_a_cluster_coming_back_wakes_every_watched_model() -> None:
    before = ok({A: ("127.1.0.1",)})
    assert keys_to_wake(failed(before), ok({A: ("127.1.0.1",)}), [A, B]) == {A, B}


def test_the_first_poll_wakes_everyone() -> None:
    first = Snapshot("primary", time.monotonic(), datetime.now(UTC), error="not polled yet")
    assert keys_to_wake(first, ok(), [A]) == {A}


def test_only_models_whose_ready_addresses_changed_are_woken() -> None:
    before = ok({A: ("127.1.0.1", "127.1.0.2"), B: ("127.1.0.3",)})
    after = ok({A: ("127.1.0.1",), B: ("127.1.0.3",)})
    assert keys_to_wake(before, after, [A, B]) == {A}
    # Endpoints appearing or disappearing entirely count as a change too.
    assert keys_to_wake(ok(), ok({B: ("127.1.0.3",)}), [A, B]) == {B}
    assert keys_to_wake(before, ok({B: ("127.1.0.3",)}), [A, B]) == {A}
    # A change of a model nobody watches wakes nobody.
    assert keys_to_wake(before, after, [B, C]) == set()


def test_nothing_changes_while_the_cluster_stays_unreachable() -> None:
    before = failed(ok({A: ("127.1.0.1",)}))
    still = Snapshot("primary", time.monotonic(), datetime.now(UTC), error="timed out")
    assert keys_to_wake(before, still, [A, B]) == set()


def test_an_unchanged_healthy_snapshot_wakes_nobody() -> None:
    assert keys_to_wake(ok({A: ("127.1.0.1",)}), ok({A: ("127.1.0.1",)}), [A]) == set()


class _NoMembers:
    def get(self, cluster: str) -> Any:
        raise MemberError(cluster, "no Secret")


def test_publish_calls_the_watchers_of_the_woken_keys() -> None:
    monitor = ClusterMonitor("primary", _NoMembers())  # type: ignore[arg-type]
    monitor.stop()
    monitor._thread.join(timeout=5)
    calls: list[str] = []
    monitor.watch(A, lambda: calls.append("a"))
    monitor.watch(B, lambda: calls.append("b"))

    def broken() -> None:
        raise RuntimeError("event loop closed")

    monitor.watch(B, broken)  # never stops the poller or the other watchers
    monitor._publish(ok({A: ("127.1.0.1",), B: ("127.1.0.2",)}))  # reachable again
    assert sorted(calls) == ["a", "b"]
    calls.clear()
    monitor._publish(ok({A: ("127.1.0.9",), B: ("127.1.0.2",)}))
    assert calls == ["a"]
    calls.clear()
    monitor.unwatch(B, broken)
    monitor._publish(failed(monitor.snapshot))
    assert sorted(calls) == ["a", "b"]


def _obj(namespace: str, name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}


OWNED = {
    "app.kubernetes.io/managed-by": "modeldr",
    NAME_LABEL: "bert",
    NAMESPACE_LABEL: "team-a",
}


def test_owned_namespaces_match_every_owner_label() -> None:
    snapshot = Snapshot(
        "primary",
        time.monotonic(),
        datetime.now(UTC),
        deployments={
            ("ml", "bert"): _obj("ml", "bert", **OWNED),
            ("old", "bert"): _obj("old", "bert", **OWNED),
            # Another hub namespace's ModelDeployment of the same name.
            ("x", "bert"): _obj("x", "bert", **{**OWNED, NAMESPACE_LABEL: "team-b"}),
            # Not managed by modeldr.
            ("y", "bert"): _obj("y", "bert", **{**OWNED, "app.kubernetes.io/managed-by": "me"}),
        },
        services={("svc-only", "bert"): _obj("svc-only", "bert", **OWNED)},
        pdbs={("ml", "gpt"): _obj("ml", "gpt", **{**OWNED, NAME_LABEL: "gpt"})},
    )
    assert snapshot.owned_namespaces("bert", "team-a") == {"ml", "old", "svc-only"}
    assert snapshot.owned_namespaces("bert", "team-b") == {"x"}
    assert snapshot.owned_namespaces("gpt", "team-a") == {"ml"}
    assert snapshot.owned_namespaces("nope", "team-a") == set()


def test_ready_nodes_and_node_addresses_give_node_port_entry_points() -> None:
    from modeldr.api.modeldeployment import ModelDeploymentSpec
    from modeldr.operator.monitor import node_addresses, ready_addresses, ready_nodes
    from modeldr.operator.tick import entry_addresses, entry_port

    slices = [
        {
            "metadata": {
                "namespace": "ml",
                "name": "bert-x",
                "labels": {"kubernetes.io/service-name": "bert"},
            },
            "endpoints": [
                {"addresses": ["10.1.0.5"], "nodeName": "w1", "conditions": {"ready": True}},
                {"addresses": ["10.1.0.6"], "nodeName": "w1", "conditions": {"ready": True}},
                {"addresses": ["10.1.1.7"], "nodeName": "w2", "conditions": {"ready": False}},
                {
                    "addresses": ["10.1.2.8"],
                    "nodeName": "w3",
                    "conditions": {"ready": True, "terminating": True},
                },
            ],
        }
    ]
    nodes = [
        {
            "metadata": {"name": "w1"},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "w1"},
                    {"type": "InternalIP", "address": "172.30.0.3"},
                ]
            },
        },
        {
            "metadata": {"name": "w2"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.4"}]},
        },
    ]
    snapshot = Snapshot(
        "primary",
        time.monotonic(),
        datetime.now(UTC),
        ready_addresses=ready_addresses(slices),
        ready_nodes=ready_nodes(slices),
        node_addresses=node_addresses(nodes),
    )
    assert snapshot.ready_nodes[A] == ("w1",)
    assert snapshot.node_addresses == {"w1": "172.30.0.3", "w2": "172.30.0.4"}
    base = {
        "model": {
            "name": "m",
            "task": "sequence-classification",
            "source": "file:///m",
            "expectedDigest": "sha256:" + "0" * 64,
        },
        "runtime": {"image": "img", "port": 8080},
        "replicas": 1,
        "clusters": {
            "primary": {"cluster": "p", "namespace": "ml"},
            "standby": {"cluster": "s", "namespace": "ml", "mode": "hot"},
        },
    }
    pods = ModelDeploymentSpec.parse(base)
    assert entry_addresses(pods, snapshot, A) == ("10.1.0.5", "10.1.0.6")
    assert entry_port(pods) == 8080
    node_ports = ModelDeploymentSpec.parse(
        {**base, "traffic": {"endpointSlice": {"addresses": "nodePorts", "nodePort": 30080}}}
    )
    assert entry_addresses(node_ports, snapshot, A) == ("172.30.0.3",)
    assert entry_port(node_ports) == 30080
    # A ready node the monitor has no address for yet is left out, not guessed.
    assert entry_addresses(node_ports, Snapshot("p", 0.0, datetime.now(UTC)), A) == ()


def test_a_model_whose_ready_nodes_changed_is_woken() -> None:
    old = Snapshot(
        "primary", 0.0, datetime.now(UTC), ready_addresses={A: ("x",)}, ready_nodes={A: ("w1",)}
    )
    new = Snapshot(
        "primary", 0.0, datetime.now(UTC), ready_addresses={A: ("x",)}, ready_nodes={A: ("w2",)}
    )
    assert keys_to_wake(old, new, [A, B]) == {A}


def test_hpas_an_identity_may_not_list_are_none_not_a_failed_cluster(monkeypatch: Any) -> None:
    """An older member identity without HPA rights: the snapshot has no HPAs (logged once),
    never an unreachable cluster (which would count toward a failover)."""
    from kubernetes import client

    from modeldr.operator import monitor

    answers: list[Any] = [client.ApiException(status=403), [{"metadata": {"name": "bert"}}]]

    def list_items(api: Any, path: str, query: dict[str, str]) -> list[dict[str, Any]]:
        assert path == "/apis/autoscaling/v2/horizontalpodautoscalers"
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    monkeypatch.setattr(monitor, "list_items", list_items)
    poller = ClusterMonitor.__new__(ClusterMonitor)  # no polling thread
    poller.cluster, poller._hpas_refused = "primary", False
    assert poller._list_hpas(None, {}) == [] and poller._hpas_refused
    assert poller._list_hpas(None, {}) == [{"metadata": {"name": "bert"}}]
    # Anything else is the cluster's failure, as before.
    answers.append(client.ApiException(status=500))
    with pytest.raises(client.ApiException):
        poller._list_hpas(None, {})
