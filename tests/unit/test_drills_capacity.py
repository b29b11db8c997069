"""The standby-capacity preflight reads the standby's GPU nodes and pods as they are when the
run starts (a loopback apiserver stand-in answering the two lists), and capacity it cannot
learn is not enough: CapacityUnknown, never a pass."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from modeldr.drills.refusal import Refusal
from modeldr.drills.run import check_standby_capacity
from modeldr.operator.runtime import Runtime
from tests.loopback import serve
from tests.specs import minimal_spec
from tests.unit.drill_fakes import FakeMember, FakeMembers, target

GPU = "nvidia.com/gpu"


def cold_target(replicas: int = 2) -> Any:
    spec = minimal_spec(
        replicas=replicas,
        resources={"gpusPerReplica": 1},
        clusters={
            "primary": {"cluster": "primary", "namespace": "ml"},
            "standby": {"cluster": "standby", "namespace": "ml", "mode": "cold"},
        },
    )
    return target(spec)


def runtime(*members: FakeMember) -> Runtime:
    return cast(Runtime, SimpleNamespace(members=FakeMembers(*members).registry()))


class Apiserver(BaseHTTPRequestHandler):
    """GET /api/v1/nodes and /api/v1/pods (by spec.nodeName), from the test's state."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        url = urlparse(self.path)
        state["asked"].append(url.path)
        if url.path == "/api/v1/nodes":
            items = state["nodes"]
        else:
            selector = parse_qs(url.query).get("fieldSelector", [""])[0]
            node = selector.split(",")[0].removeprefix("spec.nodeName=")
            items = [p for p in state["pods"] if p["spec"]["nodeName"] == node]
        data = json.dumps({"items": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def node(name: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {}},
        "status": {
            "allocatable": {GPU: str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
        "spec": {},
    }


def hog(node_name: str, gpus: int) -> dict[str, Any]:
    limits = {"limits": {GPU: str(gpus)}}
    return {
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "resources": limits}]},
        "status": {"phase": "Running"},
    }


def test_the_standby_is_read_as_it_is_now() -> None:
    state: dict[str, Any] = {"nodes": [node("gpu-0", 1)], "pods": [], "asked": []}
    with serve(Apiserver, state) as url:
        standby = FakeMember("standby", client.ApiClient(client.Configuration(host=url)))
        rt = runtime(standby)
        with pytest.raises(Refusal) as short:
            check_standby_capacity(rt, cold_target(replicas=2))  # needs 2, 1 free
        assert short.value.reason == "StandbyCapacityInsufficient"
        assert "needs 2 free GPUs" in short.value.message and "it has 1" in short.value.message
        state["nodes"].append(node("gpu-1", 1))
        check_standby_capacity(rt, cold_target(replicas=2))  # 2 free now: passes
        state["pods"].append(hog("gpu-1", 1))  # taken a moment later: refused at once
        with pytest.raises(Refusal) as taken:
            check_standby_capacity(rt, cold_target(replicas=2))
        assert taken.value.reason == "StandbyCapacityInsufficient"
    assert "/api/v1/pods" in state["asked"]


def test_capacity_that_cannot_be_learned_is_not_enough() -> None:
    with pytest.raises(Refusal) as no_secret:
        check_standby_capacity(runtime(), cold_target())
    assert no_secret.value.reason == "CapacityUnknown"
    assert "could not be read" in no_secret.value.message
    # A member that does not answer (closed port): the same.
    with pytest.raises(Refusal) as unreachable:
        check_standby_capacity(runtime(FakeMember("standby")), cold_target())
    assert unreachable.value.reason == "CapacityUnknown"


def test_a_hot_standby_needs_nothing_and_reads_nothing() -> None:
    hot = target(
        minimal_spec(
            replicas=2,
            resources={"gpusPerReplica": 1},
            clusters={
                "primary": {"cluster": "primary", "namespace": "ml"},
                "standby": {"cluster": "standby", "namespace": "ml", "mode": "hot"},
            },
        )
    )
    check_standby_capacity(runtime(), hot)  # no member at all: nothing asked
