"""Fault drivers (drills/faults/): the registry, target planning (selection errors become the
step's Refusal), the taint and cordon bookkeeping of the node faults against a small fake
CoreV1Api, and the infrastructure faults against a real webhook on 127.0.0.1 that speaks
docs/infrastructure-webhook.md. Real member API calls are the integration tests' part."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes import client

from modeldr.api import nodefault
from modeldr.api.drillplan import FAULT_TYPES, Fault
from modeldr.api.drillstatus import FaultRecord, SteadyStateStatus
from modeldr.api.phase import Phase
from modeldr.drills import events, steps
from modeldr.drills.crds import DRILL_CRDS
from modeldr.drills.engine import steps_status
from modeldr.drills.faults import base, infrastructure, nodes, registry
from modeldr.drills.faults.base import Aim, Choice, Placement
from modeldr.drills.faults.infrastructure import ClusterOutage, NodeFailure, provider_for
from modeldr.drills.faults.network import AGENT_WAIT_S
from modeldr.drills.faults.nodes import (
    GPU_LOSS_EFFECT,
    GPU_LOSS_TAINT_VALUE,
    GPULoss,
    NodeDrain,
)
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.faults.pods import PodKill
from modeldr.drills.infra import InfrastructureError, rfc3339
from modeldr.drills.journal import Journal, new_record
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import EXPIRES_PARAMETER, Renewable, first_expiry
from modeldr.drills.select import Candidate
from modeldr.drills.steps import StepRunner
from modeldr.kube.constants import GPU_RESOURCE
from modeldr.kube.members import MemberRegistry
from tests.loopback import StatefulServer, serve
from tests.unit.drill_fakes import (
    TEST_SEAL,
    FakeMember,
    FakeMembers,
    RecordingState,
    make_drill,
    plan_spec,
    sealed,
)

WHERE = Placement("demo", "bert", "primary", "primary", "ml")


def fault(**fields: Any) -> Fault:
    return Fault.model_validate(fields)


def registry_of(*members: FakeMember) -> MemberRegistry:
    return FakeMembers(*members).registry()


def record_of(fault_type: str, **fields: Any) -> FaultRecord:
    doc: dict[str, Any] = {
        "id": "f-abc",
        "step": "s",
        "type": fault_type,
        "cluster": "primary",
        "state": "Applied",
    }
    doc.update(fields)
    return FaultRecord.model_validate(doc)


# --------------------------------------------------------------------------- registry


def test_every_fault_type_is_made_or_refused_never_ignored() -> None:
    made, refused = set(registry.DRIVERS), set(registry.UNSUPPORTED)
    assert made | refused == set(FAULT_TYPES)
    assert not made & refused


def test_driver_for_refuses_unknown_types() -> None:
    assert registry.driver_for("PodKill") is registry.DRIVERS["PodKill"]
    # The network faults are the node agent's (a kernel without netem refuses Latency at the
    # agent, tests/integration/test_network_faults.py).
    assert registry.driver_for("Latency").provider == "agent"
    with pytest.raises(Refusal) as unknown:
        registry.driver_for("Meteor")
    assert unknown.value.reason == "FaultUnsupported"
    assert "not a known fault type" in unknown.value.message


def test_the_crds_fault_prose_comes_from_the_drivers() -> None:
    # Each type is described where it is made; the CRD's `fault.type` says what every one does.
    prose = registry.fault_type_prose()
    for name, driver in registry.DRIVERS.items():
        assert f"{name}: {driver.describe(name)}." in prose
    plan, run = (crd.schema() for crd in DRILL_CRDS)
    fault = plan["properties"]["spec"]["properties"]["steps"]["items"]["properties"]["fault"]
    assert fault["properties"]["type"]["description"] == prose
    snapshot = run["properties"]["spec"]["properties"]["plan"]["properties"]["steps"]
    assert snapshot["items"]["properties"]["fault"]["properties"]["type"]["description"] == prose


def test_who_makes_each_fault() -> None:
    providers = {name: driver.provider for name, driver in registry.DRIVERS.items()}
    assert providers == {
        "PodKill": "member-api",
        "NodeDrain": "member-api",
        "GPULoss": "member-api",
        "NodeFailure": "webhook",
        "ClusterOutage": "webhook",
        "ModelStoreOutage": "webhook",
        "ModelStoreLoss": "webhook",
        "ModelCorruption": "member-api",
        "NetworkPartition": "agent",
        "PacketLoss": "agent",
        "Latency": "agent",
    }


def test_each_driver_owns_its_facts() -> None:
    # Only the infrastructure's faults need a provider named in the member's Secret (the
    # preflight asks the driver); the renewable ones say how long their inject may take.
    needs = {name for name, driver in registry.DRIVERS.items() if driver.needs_infrastructure}
    assert needs == {"NodeFailure", "ClusterOutage", "ModelStoreOutage", "ModelStoreLoss"}
    allowances = {
        name: driver.inject_allowance_s
        for name, driver in registry.DRIVERS.items()
        if isinstance(driver, Renewable)
    }
    assert allowances == {
        "NodeFailure": infrastructure.INJECT_TIMEOUT_S,
        "ClusterOutage": infrastructure.INJECT_TIMEOUT_S,
        "ModelStoreOutage": infrastructure.INJECT_TIMEOUT_S,
        "ModelStoreLoss": infrastructure.INJECT_TIMEOUT_S,
        "NetworkPartition": AGENT_WAIT_S,
        "PacketLoss": AGENT_WAIT_S,
        "Latency": AGENT_WAIT_S,
        "NodeDrain": nodes.NODE_INJECT_ALLOWANCE_S,
        "GPULoss": nodes.NODE_INJECT_ALLOWANCE_S,
    }


# ----------------------------------------------------------------- planning (selection)


@pytest.fixture
def candidates(monkeypatch: pytest.MonkeyPatch) -> list[Candidate]:
    """The model's pods the drivers see in the member (model_pods, which lists them)."""
    found: list[Candidate] = []

    def model_pods(members: Any, where: Placement) -> list[Candidate]:
        assert where == WHERE
        return list(found)

    monkeypatch.setattr(base, "model_pods", model_pods)  # PodKill (choose_pods)
    monkeypatch.setattr(nodes, "model_pods", model_pods)
    return found


def test_podkill_with_no_pods_is_no_targets(candidates: list[Candidate]) -> None:
    with pytest.raises(Refusal) as caught:
        PodKill().choose(registry_of(), Aim(WHERE, fault(type="PodKill"), 1, 50))
    assert caught.value.reason == "NoTargets"
    assert "bert in primary" in caught.value.message


def test_podkill_beyond_the_blast_radius_is_refused(candidates: list[Candidate]) -> None:
    candidates += [Candidate(f"p{i}", "n1") for i in range(4)]
    with pytest.raises(Refusal) as caught:
        PodKill().choose(registry_of(), Aim(WHERE, fault(type="PodKill", mode="all"), 1, 50))
    assert caught.value.reason == "BlastRadiusExceeded"


def test_podkill_plan_records_targets_seed_and_grace(candidates: list[Candidate]) -> None:
    candidates += [Candidate(f"p{i}", "n1") for i in range(4)]
    f = fault(type="PodKill", mode="fixed", value=2, gracePeriodSeconds=0)
    plan = PodKill().choose(registry_of(), Aim(WHERE, f, 11, 50))
    again = PodKill().choose(registry_of(), Aim(WHERE, f, 11, 50))
    assert len(plan.targets) == 2 and set(plan.targets) <= {"p0", "p1", "p2", "p3"}
    assert plan.targets == again.targets  # the seed chooses them again
    assert plan.seed == 11
    assert plan.parameters == {"namespace": "ml", "gracePeriodSeconds": "0"}


def test_a_node_fault_targets_a_node_of_the_model_and_its_pods(
    candidates: list[Candidate], core: FakeCore
) -> None:
    candidates += [
        Candidate("p0", "n1"),
        Candidate("p1", "n2"),
        Candidate("p2", "n2"),
        Candidate("p3", None),
    ]
    core.add("n2", [])
    plan = GPULoss().choose(MEMBERS, Aim(WHERE, fault(type="GPULoss", node="n2"), 3, 50))
    assert plan.targets == ("p1", "p2")
    assert plan.parameters == {"node": "n2", "namespace": "ml"}
    with pytest.raises(Refusal) as caught:
        GPULoss().choose(MEMBERS, Aim(WHERE, fault(type="GPULoss", node="n9"), 3, 50))
    assert caught.value.reason == "NoTargets" and "n9" in caught.value.message
    with pytest.raises(Refusal) as too_many:
        GPULoss().choose(MEMBERS, Aim(WHERE, fault(type="GPULoss", node="n2"), 3, 25))
    assert too_many.value.reason == "BlastRadiusExceeded"


# ---------------------------------------------------------------- a fake CoreV1Api


@dataclass
class FakeCore:
    """Nodes and evictions of one member, as CoreV1Api calls see them; a patch with a stale
    resourceVersion is a 409, as the apiserver answers."""

    nodes: dict[str, client.V1Node] = field(default_factory=dict)
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    evictions: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    eviction_status: dict[str, int] = field(default_factory=dict)

    def __call__(self, api_client: Any = None) -> FakeCore:
        return self  # stands in for the CoreV1Api class: every "instance" is this one

    def add(
        self,
        name: str,
        taints: list[client.V1Taint] | None = None,
        unschedulable: bool | None = None,
    ) -> None:
        self.nodes[name] = client.V1Node(
            metadata=client.V1ObjectMeta(name=name, resource_version="1"),
            spec=client.V1NodeSpec(taints=taints, unschedulable=unschedulable),
        )

    def read_node(self, name: str, **kwargs: Any) -> client.V1Node:
        if name not in self.nodes:
            raise client.ApiException(status=404, reason="NotFound")
        return self.nodes[name]

    def patch_node(self, name: str, body: dict[str, Any], **kwargs: Any) -> client.V1Node:
        node = self.read_node(name)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != node.metadata.resource_version:
            raise client.ApiException(status=409, reason="Conflict")
        self.patches.append((name, body))
        annotations = (body.get("metadata") or {}).get("annotations")
        if annotations is not None:  # a merge patch: None removes a key
            merged = {**(node.metadata.annotations or {}), **annotations}
            node.metadata.annotations = {k: v for k, v in merged.items() if v is not None}
        spec = body.get("spec") or {}
        if "unschedulable" in spec:
            node.spec.unschedulable = spec["unschedulable"]
        if "taints" in spec:
            node.spec.taints = [
                client.V1Taint(
                    key=t["key"],
                    value=t.get("value"),
                    effect=t["effect"],
                    time_added=t.get("timeAdded"),
                )
                for t in spec["taints"] or []
            ] or None
        node.metadata.resource_version = str(int(node.metadata.resource_version) + 1)
        return node

    def create_namespaced_pod_eviction(
        self, name: str, namespace: str, body: dict[str, Any], **kwargs: Any
    ) -> None:
        self.evictions.append((name, namespace, body))
        status = self.eviction_status.get(name)
        if status is not None:
            raise client.ApiException(status=status, reason="test")

    def taints(self, name: str) -> list[tuple[str, str | None, str]]:
        return [(t.key, t.value, t.effect) for t in self.nodes[name].spec.taints or []]


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    fake = FakeCore()
    monkeypatch.setattr("modeldr.drills.faults.nodes.client.CoreV1Api", fake)
    return fake


MEMBERS = registry_of(FakeMember("primary"))
OURS = (GPU_RESOURCE, GPU_LOSS_TAINT_VALUE, GPU_LOSS_EFFECT)


EXPIRES = "2030-01-01T00:01:00+00:00"


def gpu_record(**parameters: str) -> FaultRecord:
    return record_of(
        "GPULoss",
        targets=["p1", "p2"],
        parameters={"node": "n1", "namespace": "ml", "expiresAt": EXPIRES, **parameters},
    )


# -------------------------------------------------------------- taints: the pure parts


def test_taints_keep_every_field_the_node_has() -> None:
    added = datetime(2030, 1, 1, tzinfo=UTC)
    node = client.V1Node(
        spec=client.V1NodeSpec(
            taints=[
                client.V1Taint(key="dedicated", value="ml", effect="NoSchedule"),
                client.V1Taint(key="flaky", effect="NoExecute", time_added=added),
            ]
        )
    )
    assert nodes._taints(node) == [
        {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
        {"key": "flaky", "value": None, "effect": "NoExecute", "timeAdded": added},
    ]
    assert nodes._taints(client.V1Node(spec=client.V1NodeSpec())) == []


@pytest.mark.parametrize(
    ("taint", "ours"),
    [
        ({"key": GPU_RESOURCE, "value": GPU_LOSS_TAINT_VALUE, "effect": "NoExecute"}, True),
        ({"key": GPU_RESOURCE, "value": "someone-else", "effect": "NoExecute"}, False),
        ({"key": GPU_RESOURCE, "value": GPU_LOSS_TAINT_VALUE, "effect": "NoSchedule"}, False),
        ({"key": "other", "value": GPU_LOSS_TAINT_VALUE, "effect": "NoExecute"}, False),
        ({"key": GPU_RESOURCE, "effect": "NoExecute"}, False),
    ],
)
def test_only_the_drills_own_taint_is_ours(taint: dict[str, Any], ours: bool) -> None:
    assert nodes._is_ours(taint) is ours


# ------------------------------------------------------ GPULoss and NodeDrain, fake API


def test_gpu_loss_adds_its_taint_once_keeps_others_and_evicts_the_pods(core: FakeCore) -> None:
    core.add("n1", [client.V1Taint(key="dedicated", value="ml", effect="NoSchedule")])
    record = gpu_record()
    GPULoss().inject(MEMBERS, record)
    assert sorted(core.taints("n1")) == sorted([("dedicated", "ml", "NoSchedule"), OURS])
    [(_, body)] = core.patches
    assert body["metadata"]["resourceVersion"] == "1"  # a concurrent change is a 409
    assert [(pod, ns) for pod, ns, _ in core.evictions] == [("p1", "ml"), ("p2", "ml")]
    assert all(b["kind"] == "Eviction" for _, _, b in core.evictions)
    GPULoss().inject(MEMBERS, record)  # a retried inject: no second taint
    assert len(core.patches) == 1
    assert sorted(core.taints("n1")) == sorted([("dedicated", "ml", "NoSchedule"), OURS])


def test_gpu_loss_undo_removes_only_its_taint(core: FakeCore) -> None:
    core.add(
        "n1",
        [
            client.V1Taint(key="dedicated", value="ml", effect="NoSchedule"),
            client.V1Taint(key=GPU_RESOURCE, value="someone-else", effect="NoSchedule"),
            client.V1Taint(key=GPU_RESOURCE, value=GPU_LOSS_TAINT_VALUE, effect=GPU_LOSS_EFFECT),
        ],
    )
    record = gpu_record()
    core.nodes["n1"].metadata.annotations = {nodefault.GPU_LOSS_FAULT: record.id}
    GPULoss().undo(MEMBERS, record)
    assert core.taints("n1") == [
        ("dedicated", "ml", "NoSchedule"),
        (GPU_RESOURCE, "someone-else", "NoSchedule"),
    ]
    GPULoss().undo(MEMBERS, record)  # idempotent: nothing of ours left, no patch
    assert len(core.patches) == 1


@pytest.mark.parametrize("driver", [NodeDrain(), GPULoss()], ids=["drain", "gpu-loss"])
def test_a_node_fault_undo_touches_no_node_without_its_id(
    core: FakeCore, driver: NodeDrain | GPULoss
) -> None:
    """A cordon or taint that another fault, a person or an edited journal names: left."""
    taint = client.V1Taint(key=GPU_RESOURCE, value=GPU_LOSS_TAINT_VALUE, effect=GPU_LOSS_EFFECT)
    core.add("n1", [taint], unschedulable=True)
    record = drain_record() if isinstance(driver, NodeDrain) else gpu_record()
    for holder in (None, "f-someone-else"):
        core.nodes["n1"].metadata.annotations = (
            {}
            if holder is None
            else {nodefault.CORDON_FAULT: holder, nodefault.GPU_LOSS_FAULT: holder}
        )
        driver.undo(MEMBERS, record)
    assert core.patches == []
    assert core.nodes["n1"].spec.unschedulable is True and core.taints("n1")


def test_gpu_loss_undo_of_the_only_taint_clears_the_list(core: FakeCore) -> None:
    core.add("n1")
    GPULoss().inject(MEMBERS, gpu_record())
    GPULoss().undo(MEMBERS, gpu_record())
    assert core.nodes["n1"].spec.taints is None
    assert core.patches[-1][1]["spec"] == {"taints": None}


def test_gpu_loss_undo_of_a_node_that_is_gone_is_done(core: FakeCore) -> None:
    GPULoss().undo(MEMBERS, gpu_record())
    assert core.patches == []


def test_gpu_loss_passes_the_grace_period_to_evictions(core: FakeCore) -> None:
    core.add("n1")
    GPULoss().inject(MEMBERS, gpu_record(gracePeriodSeconds="0"))
    assert all(b["deleteOptions"] == {"gracePeriodSeconds": 0} for _, _, b in core.evictions)


@pytest.mark.parametrize("status", [429, 404])
def test_an_eviction_refused_by_a_pdb_or_of_a_pod_gone_is_fine(core: FakeCore, status: int) -> None:
    core.add("n1")
    core.eviction_status["p1"] = status
    record = gpu_record()
    GPULoss().inject(MEMBERS, record)
    assert [pod for pod, _, _ in core.evictions] == ["p1", "p2"]
    # What the budget refused is recorded and said in the step's message.
    summary = GPULoss().observe(MEMBERS, record)
    assert summary.phase is Phase.PASSED
    if status == 429:
        assert record.parameters["refusedByPodDisruptionBudget"] == "p1"
        assert "1 of 2 pods evicted; the PodDisruptionBudget refused 1 (p1)" in summary.message
    else:
        assert "refusedByPodDisruptionBudget" not in record.parameters
        assert summary.message.endswith("2 of 2 pods evicted")


def test_another_eviction_error_fails_the_inject(core: FakeCore) -> None:
    core.add("n1")
    core.eviction_status["p1"] = 500
    with pytest.raises(client.ApiException):
        GPULoss().inject(MEMBERS, gpu_record())


def test_node_drain_cordons_evicts_and_undo_uncordons(core: FakeCore) -> None:
    core.add("n1")
    record = drain_record()
    NodeDrain().inject(MEMBERS, record)
    assert core.nodes["n1"].spec.unschedulable is True
    # The node carries the fault's id and expiry: its agent undoes the cordon at expiry.
    assert core.nodes["n1"].metadata.annotations == {
        nodefault.CORDON_FAULT: record.id,
        nodefault.CORDON_EXPIRES: EXPIRES,
    }
    assert [pod for pod, _, _ in core.evictions] == ["p1"]
    NodeDrain().undo(MEMBERS, record)
    assert core.nodes["n1"].spec.unschedulable is False
    assert core.nodes["n1"].metadata.annotations == {}
    del core.nodes["n1"]
    NodeDrain().undo(MEMBERS, record)  # the node is gone: nothing to put back


def drain_record() -> FaultRecord:
    parameters = {"node": "n1", "namespace": "ml", "expiresAt": EXPIRES}
    return record_of("NodeDrain", targets=["p1"], parameters=parameters)


@pytest.mark.parametrize("driver", [NodeDrain(), GPULoss()], ids=["drain", "gpu-loss"])
def test_a_node_fault_renews_its_expiry_on_the_node_and_lapses_when_its_marks_go(
    core: FakeCore, driver: NodeDrain | GPULoss
) -> None:
    core.add("n1")
    record = drain_record() if isinstance(driver, NodeDrain) else gpu_record()
    kind: nodefault.Kind = "cordon" if isinstance(driver, NodeDrain) else "gpu-loss"
    fault_key, expires_key = nodefault.ANNOTATIONS[kind]
    driver.inject(MEMBERS, record)
    later = datetime(2030, 1, 1, 0, 2, tzinfo=UTC)
    driver.renew(MEMBERS, record, later)
    assert core.nodes["n1"].metadata.annotations[expires_key] == later.isoformat()
    # The node's agent undid it at expiry (or someone did): the fault lapsed.
    core.nodes["n1"].metadata.annotations = {}
    with pytest.raises(Refusal) as lapsed:
        driver.renew(MEMBERS, record, later)
    assert lapsed.value.reason == "FaultLapsed" and fault_key in lapsed.value.message
    del core.nodes["n1"]
    with pytest.raises(Refusal, match="is gone"):
        driver.renew(MEMBERS, record, later)


def test_node_drain_refuses_a_node_cordoned_by_someone_else(
    core: FakeCore, candidates: list[Candidate]
) -> None:
    candidates.append(Candidate("p1", "n1"))
    core.add("n1", unschedulable=True)
    with pytest.raises(Refusal) as caught:
        NodeDrain().choose(MEMBERS, Aim(WHERE, fault(type="NodeDrain"), 1, 100))
    assert caught.value.reason == "NodeAlreadyCordoned"
    core.nodes["n1"].spec.unschedulable = False
    assert NodeDrain().choose(MEMBERS, Aim(WHERE, fault(type="NodeDrain"), 1, 100)).targets == (
        "p1",
    )


# ------------------------------------------------ the infrastructure webhook, for real


@dataclass
class Webhook:
    """What the provider received and keeps in force; `fail` answers the next requests of a
    path with these statuses."""

    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: StatefulServer

    def do_GET(self) -> None:
        hook = self.server.state
        with hook.lock:
            hook.seen.append(("GET", self.path, None))
            self._answer(200, {"faults": list(hook.faults.values())})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        hook = self.server.state
        with hook.lock:
            hook.seen.append(("POST", self.path, body))
            if self.headers.get("Authorization") != "Bearer test-token":
                self._answer(401, {"error": "no valid bearer token"})
                return
            pending = hook.fail.get(self.path)
            if pending:
                status = pending.pop(0)
                self._answer(status, {"error": f"test says {status}"})
                return
            if self.path == "/inject":
                if body.get("cluster") not in ("primary", "standby"):
                    self._answer(400, {"error": f"unknown cluster {body.get('cluster')!r}"})
                    return
                hook.faults.setdefault(body["id"], dict(body))
                self._answer(200, {"ok": True})
            elif self.path == "/undo":
                hook.faults.pop(body["id"], None)  # unknown ids are fine
                self._answer(200, {"ok": True})
            elif self.path == "/renew":
                if body["id"] not in hook.faults:
                    self._answer(404, {"error": f"no fault {body['id']!r} in force"})
                    return
                hook.faults[body["id"]]["expiresAt"] = body["expiresAt"]
                self._answer(200, {"ok": True})
            else:
                self._answer(404, {"error": "no such path"})

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def hook() -> Webhook:
    return Webhook()


@pytest.fixture
def url(hook: Webhook) -> Iterator[str]:
    with serve(_Handler, hook) as base:
        yield base


def with_provider(url: str | None) -> MemberRegistry:
    return registry_of(
        FakeMember("primary", infrastructure_url=url), FakeMember("standby", infrastructure_url=url)
    )


@pytest.mark.parametrize("driver", [ClusterOutage(), NodeFailure()], ids=["outage", "node"])
def test_no_provider_is_no_provider_before_anything_is_sent(
    url: str, hook: Webhook, driver: ClusterOutage | NodeFailure
) -> None:
    kind = "ClusterOutage" if isinstance(driver, ClusterOutage) else "NodeFailure"
    with pytest.raises(Refusal) as caught:
        driver.choose(with_provider(None), Aim(WHERE, fault(type=kind), 1, 50))
    assert caught.value.reason == "NoProvider"
    assert "infrastructure-webhook-url" in caught.value.message
    assert hook.seen == []


def test_a_member_without_a_secret_or_with_a_bad_url_has_no_provider(url: str) -> None:
    with pytest.raises(Refusal) as missing:
        provider_for(registry_of(), "primary")
    assert missing.value.reason == "NoProvider" and "primary" in missing.value.message
    with pytest.raises(Refusal) as bad:
        provider_for(with_provider("ftp://somewhere"), "primary")
    assert bad.value.reason == "NoProvider" and "http(s)" in bad.value.message


def test_a_provider_without_a_token_is_never_called(url: str, hook: Webhook) -> None:
    members = registry_of(FakeMember("primary", infrastructure_url=url, infrastructure_token=None))
    with pytest.raises(Refusal) as caught:
        ClusterOutage().choose(members, Aim(WHERE, fault(type="ClusterOutage"), 1, 50))
    assert caught.value.reason == "NoProvider"
    assert "infrastructure-webhook-token" in caught.value.message
    assert hook.seen == []


def test_renewal_is_the_providers_renew_and_never_an_inject(url: str, hook: Webhook) -> None:
    members = with_provider(url)
    record = _journalled("ClusterOutage", ClusterOutage())
    ClusterOutage().inject(members, record)
    later = datetime.now(UTC) + timedelta(seconds=20)
    ClusterOutage().renew(members, record, later)
    assert [(m, p) for m, p, _ in hook.seen] == [("POST", "/inject"), ("POST", "/renew")]
    assert hook.seen[-1][2] == {"id": record.id, "expiresAt": rfc3339(later)}
    ClusterOutage().undo(members, record)
    # A renewal after the undo: refused by the provider (404), nothing made again; to the
    # step, a fault that lapsed.
    with pytest.raises(Refusal) as late:
        ClusterOutage().renew(members, record, later)
    assert late.value.reason == "FaultLapsed" and hook.faults == {}
    assert "HTTP 404" in late.value.message
    hook.fail["/renew"] = [503]  # a provider that cannot answer now: not (yet) a lapse
    with pytest.raises(InfrastructureError) as transient:
        ClusterOutage().renew(members, record, later)
    assert not transient.value.permanent


def test_a_cluster_outage_plans_the_whole_cluster(url: str, hook: Webhook) -> None:
    plan = ClusterOutage().choose(
        with_provider(url), Aim(WHERE, fault(type="ClusterOutage"), 5, 50)
    )
    assert plan.targets == ("primary",)
    assert plan.parameters == {"namespace": "ml"} and plan.seed == 5
    assert hook.seen == []  # planning asks the provider nothing


def _journalled(kind: str, driver: ClusterOutage | NodeFailure, **parameters: str) -> FaultRecord:
    plan = Choice(("primary",), {"namespace": "ml", **parameters}, 5)
    record = new_record("outage", fault(type=kind), driver, "primary", "primary", plan)
    record.parameters[EXPIRES_PARAMETER] = first_expiry(40, 60)
    return record


def test_inject_and_undo_carry_the_journal_id_and_expiry(url: str, hook: Webhook) -> None:
    members = with_provider(url)
    record = _journalled("ClusterOutage", ClusterOutage())
    ClusterOutage().inject(members, record)
    [(method, path, body)] = hook.seen
    assert (method, path) == ("POST", "/inject")
    assert body["id"] == record.id and body["type"] == "ClusterOutage"
    assert body["cluster"] == "primary" and "node" not in body
    sent = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    recorded = datetime.fromisoformat(record.parameters[EXPIRES_PARAMETER])
    assert recorded <= sent < recorded + timedelta(seconds=1)  # rounded up, never earlier
    assert sent > datetime.now(UTC) + timedelta(seconds=90)
    assert list(hook.faults) == [record.id]
    ClusterOutage().inject(members, record)  # a retried inject: the same id, nothing new
    assert list(hook.faults) == [record.id]
    ClusterOutage().undo(members, record)
    assert hook.seen[-1] == ("POST", "/undo", {"id": record.id})
    assert hook.faults == {}
    ClusterOutage().undo(members, record)  # undone already: still fine


def test_a_node_failure_names_its_node(url: str, hook: Webhook) -> None:
    record = _journalled("NodeFailure", NodeFailure(), node="gpu-3")
    NodeFailure().inject(with_provider(url), record)
    body = hook.seen[0][2]
    assert (body["type"], body["node"], body["id"]) == ("NodeFailure", "gpu-3", record.id)


def test_a_refused_inject_is_inject_failed_with_the_providers_words(
    url: str, hook: Webhook
) -> None:
    record = _journalled("ClusterOutage", ClusterOutage())
    record.cluster = "elsewhere"
    members = registry_of(FakeMember("elsewhere", infrastructure_url=url))
    with pytest.raises(Refusal) as caught:
        ClusterOutage().inject(members, record)
    assert caught.value.reason == "InjectFailed"
    assert "unknown cluster 'elsewhere'" in caught.value.message


def test_a_transient_undo_failure_propagates_for_the_journal_to_retry(
    url: str, hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook.fail["/undo"] = [503]
    record = _journalled("ClusterOutage", ClusterOutage())
    with pytest.raises(InfrastructureError) as caught:
        ClusterOutage().undo(with_provider(url), record)
    assert caught.value.permanent is False

    # Through the journal: retried with the same id until the provider takes it.
    hook.fail["/undo"] = [503, 500]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr("modeldr.drills.journal.asyncio.sleep", sleep)
    state = RecordingState()
    state.status.faults.append(sealed(record))
    assert asyncio.run(Journal(state, with_provider(url), TEST_SEAL).undo(record)) is True
    undos = [body for _, path, body in hook.seen if path == "/undo"]
    assert undos == [{"id": record.id}] * 4  # the one above, then 503, 500, 200
    assert record.state == "Undone" and record.undo_attempts == 3 and sleeps == [1.0, 2.0]


def test_a_cluster_outage_step_without_a_provider_ends_error_with_nothing_injected(
    url: str, hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "target_status", lambda hub, t: {"activeCluster": "primary"})
    monkeypatch.setattr(events, "post_event", lambda *args: None)
    plan = plan_spec(
        steps=[
            {
                "name": "outage",
                "fault": {"type": "ClusterOutage", "cluster": "standby"},
                "durationSeconds": 1,
            }
        ]
    )
    members = FakeMembers(FakeMember("primary", infrastructure_url=url), FakeMember("standby"))
    state = RecordingState()
    drill = make_drill(plan, state, members)
    state.status.steps, state.status.steady_state = steps_status(plan), SteadyStateStatus()
    part = asyncio.run(StepRunner(drill, None).run(0, plan.steps[0]))
    assert (part.phase, part.reason) == (Phase.ERROR, "NoProvider")
    assert "'standby'" in part.message and "infrastructure-webhook-url" in part.message
    assert state.status.faults == [] and hook.seen == []
    assert state.status.steps[0].phase is Phase.ERROR


def test_a_cluster_outage_step_with_a_provider_goes_dark_and_comes_back(
    url: str, hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "target_status", lambda hub, t: {"activeCluster": "primary"})
    monkeypatch.setattr(events, "post_event", lambda *args: None)
    plan, state = one_outage_step(url)
    [record] = state.status.faults
    # The inject, its renewals (/renew, at once after it, with now + the plan's expiry
    # period), then the undo; no renewal after the undo.
    calls = [(m, p) for m, p, _ in hook.seen]
    assert calls[0] == ("POST", "/inject") and calls[-1] == ("POST", "/undo"), calls
    assert set(calls[1:-1]) == {("POST", "/renew")}, calls
    assert {body["id"] for _, _, body in hook.seen} == {record.id}
    first, renewed = (datetime.fromisoformat(hook.seen[i][2]["expiresAt"]) for i in (0, 1))
    period = timedelta(seconds=plan.fault_expiry_seconds)
    assert renewed < first  # the first covers the longest inject; renewals one period
    assert renewed - datetime.now(UTC) <= period + timedelta(seconds=1)
    assert record.provider == "webhook" and record.state == "Undone" and hook.faults == {}
    assert infrastructure.PROVIDER == "webhook"


def one_outage_step(url: str) -> tuple[Any, RecordingState]:
    """A one-second ClusterOutage step run against the fake provider at `url`."""
    plan = plan_spec(
        steps=[
            {
                "name": "outage",
                "fault": {"type": "ClusterOutage", "cluster": "primary"},
                "durationSeconds": 1,
            }
        ]
    )
    state = RecordingState()
    drill = make_drill(plan, state, FakeMembers(FakeMember("primary", infrastructure_url=url)))
    state.status.steps, state.status.steady_state = steps_status(plan), SteadyStateStatus()
    asyncio.run(StepRunner(drill, None).run(0, plan.steps[0]))
    return plan, state


def test_a_step_whose_fault_lapsed_is_inconclusive_never_passed(
    url: str, hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider undid the outage by itself mid-step (its renewals answered 404): what
    the step measured after that proves nothing about the fault."""
    monkeypatch.setattr(steps, "target_status", lambda hub, t: {"activeCluster": "primary"})
    monkeypatch.setattr(events, "post_event", lambda *args: None)
    hook.fail["/renew"] = [404] * 20
    _, state = one_outage_step(url)
    [step] = state.status.steps
    assert step.phase is Phase.INCONCLUSIVE and step.reason == "FaultLapsed", step
    assert "ClusterOutage lapsed" in (step.message or "")
    # One renewal was refused, none came after it; the undo still ran.
    calls = [p for _, p, _ in hook.seen]
    assert calls.count("/renew") == 1 and calls[-1] == "/undo", calls


def test_gpu_loss_refuses_a_node_whose_gpus_are_tainted_away_already(
    candidates: list[Candidate], core: FakeCore
) -> None:
    """Someone else's nvidia.com/gpu NoExecute taint: the GPUs are gone already, and the
    apiserver would refuse a second taint of that key and effect."""
    candidates += [Candidate("p1", "n2")]
    core.add("n2", [client.V1Taint(key=GPU_RESOURCE, value="broken", effect="NoExecute")])
    with pytest.raises(Refusal) as caught:
        GPULoss().choose(MEMBERS, Aim(WHERE, fault(type="GPULoss", node="n2"), 3, 100))
    assert caught.value.reason == "NodeAlreadyTainted" and "n2" in caught.value.message


def test_fault_parameters_are_named_once_and_read_back_typed() -> None:
    written = FaultParameters(
        namespace="ml", node="n1", grace_period_seconds=0, loss_percent=30, expires_at="t"
    ).record()
    # The journal's keys: what status.faults[].parameters held before the model existed, so
    # a new leader reads an old leader's records.
    assert written == {
        "namespace": "ml",
        "node": "n1",
        "gracePeriodSeconds": "0",
        "lossPercent": "30",
        "expiresAt": "t",
    }
    read = FaultParameters.of(written)
    assert read.grace_period_seconds == 0 and read.loss_percent == 30 and read.node_name == "n1"
    assert FaultParameters.of({"namespace": "ml", "fromANewerOperator": "x"}).namespace == "ml"
    with pytest.raises(KeyError):
        _ = FaultParameters.of({"namespace": "ml"}).node_name


# ------------------------------------------------------ ModelStoreOutage's observation


def _pod(name: str, ready: bool, message: str = "", deleting: bool = False) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if ready else {"waiting": {"reason": "x"}}
    last = {"terminated": {"exitCode": 3, "message": message}} if message else {}
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T07:00:00Z"
    return {
        "metadata": meta,
        "status": {"containerStatuses": [{"ready": ready, "state": state, "lastState": last}]},
    }


def test_a_store_outage_passes_when_every_pod_is_ready_and_names_a_refusal() -> None:
    from modeldr.drills.faults.infrastructure import assess_restarted

    passed = assess_restarted([_pod("a", True), _pod("b", True), _pod("c", False, "", True)], "p")
    assert (passed.phase, passed.reason) == ("Passed", "LoadedWithoutTheStore")
    assert "all 2 model pods in p Ready" in passed.message
    refusal = "modeldr-serve: refusing to start: cannot fetch the model, no store answered: x"
    failed = assess_restarted([_pod("a", True), _pod("b", False, "log\n" + refusal)], "p")
    assert (failed.phase, failed.reason) == ("Failed", "ModelUnavailable")
    assert failed.message.endswith(refusal) and "pod b in p" in failed.message
    starting = assess_restarted([_pod("a", True), _pod("b", False)], "p")
    assert (starting.phase, starting.reason) == ("Failed", "ReplicasNotReady")
    assert "1 of 2 model pods" in starting.message
