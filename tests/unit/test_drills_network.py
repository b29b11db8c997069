"""The drills' network driver without a cluster: what it plans (modes as PodKill, the
effect's parameters), and how it judges the agents' reports (every node Applied; else
FaultUnsupported, InjectFailed or NoAgent, each saying which node and why). Against real
agents: tests/integration/test_network_faults.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from modeldr.api.drillplan import Fault
from modeldr.api.drillstatus import FaultRecord
from modeldr.drills.faults import base
from modeldr.drills.faults.base import Aim, Placement
from modeldr.drills.faults.network import NetworkFault
from modeldr.drills.refusal import Refusal
from modeldr.drills.select import Candidate
from modeldr.kube.members import MemberRegistry

WHERE = Placement("demo", "bert", "primary", "primary", "ml")
MEMBERS = cast(MemberRegistry, None)
RECORD = FaultRecord.model_validate(
    {"id": "f-1", "step": "s", "type": "Latency", "cluster": "primary", "targets": ["p1"]}
)


@pytest.fixture
def pods(monkeypatch: pytest.MonkeyPatch) -> list[Candidate]:
    found = [Candidate("p1", "gpu-0"), Candidate("p2", "gpu-1")]
    monkeypatch.setattr(base, "model_pods", lambda members, where: list(found))
    return found


def fault(**fields: Any) -> Fault:
    return Fault.model_validate({"cluster": "primary", **fields})


def test_packet_loss_plans_its_percent_and_targets_like_pod_kill(pods: list[Candidate]) -> None:
    plan = NetworkFault().choose(
        MEMBERS, Aim(WHERE, fault(type="PacketLoss", lossPercent=20, mode="all"), 7, 100)
    )
    assert plan.targets == ("p1", "p2") and plan.seed == 7
    assert plan.parameters == {"namespace": "ml", "lossPercent": "20"}


def test_latency_plans_its_delay_and_jitter(pods: list[Candidate]) -> None:
    aim = Aim(WHERE, fault(type="Latency", latencyMilliseconds=200, jitterMilliseconds=20), 1, 50)
    plan = NetworkFault().choose(MEMBERS, aim)
    assert len(plan.targets) == 1  # mode one
    assert plan.parameters == {
        "namespace": "ml",
        "latencyMilliseconds": "200",
        "jitterMilliseconds": "20",
    }


def test_the_blast_radius_is_enforced_before_anything_is_made(pods: list[Candidate]) -> None:
    with pytest.raises(Refusal) as caught:
        NetworkFault().choose(
            MEMBERS, Aim(WHERE, fault(type="NetworkPartition", mode="all"), 1, 50)
        )
    assert caught.value.reason == "BlastRadiusExceeded"


def judge(reports: dict[str, Any], nodes: tuple[str, ...] = ("gpu-0", "gpu-1")) -> Refusal | None:
    return NetworkFault._judge(RECORD, list(nodes), reports)


def test_every_node_applied_is_done() -> None:
    assert judge({"gpu-0": {"state": "Applied"}, "gpu-1": {"state": "Applied"}}) is None


def test_a_node_without_netem_makes_it_unsupported_with_the_agents_reason() -> None:
    with pytest.raises(Refusal) as caught:
        judge({"gpu-0": {"state": "Unsupported", "message": "kernel x has no tc netem"}})
    assert caught.value.reason == "FaultUnsupported"
    assert "gpu-0" in caught.value.message and "no tc netem" in caught.value.message
    assert "nothing was injected" in caught.value.message


def test_a_failed_apply_is_inject_failed() -> None:
    with pytest.raises(Refusal) as caught:
        judge({"gpu-0": {"state": "Applied"}, "gpu-1": {"state": "Error", "message": "nft: x"}})
    assert caught.value.reason == "InjectFailed" and "gpu-1" in caught.value.message


def test_a_silent_node_is_no_agent_naming_it() -> None:
    error = judge({"gpu-0": {"state": "Applied"}})
    assert error is not None and error.reason == "NoAgent"
    assert "gpu-1" in error.message and "gpu-0" not in error.message.split("node(s)")[1]
    # A report of an expired order (Removed) is no answer for a new inject either.
    removed = judge({"gpu-0": {"state": "Removed"}}, ("gpu-0",))
    assert removed is not None and removed.reason == "NoAgent"


class FakeOrders:
    """The member API as undo sees it: one order whose nodes report Removed after
    `confirm_after` reads once its expiry was moved into the past (or never)."""

    def __init__(self, nodes: dict[str, str], confirm_after: int | None) -> None:
        self.order: dict[str, Any] | None = {
            "spec": {"expiresAt": "2030-01-01T00:00:00+00:00"},
            "status": {"nodes": {n: {"state": s} for n, s in nodes.items()}},
        }
        self.confirm_after = confirm_after
        self.calls: list[str] = []
        self.reads_since_end = 0

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(f"patch expiresAt={args[5]['spec']['expiresAt'][:4]}")

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        self.calls.append("get")
        self.reads_since_end += 1
        if self.order is not None and self.reads_since_end == self.confirm_after:
            for report in self.order["status"]["nodes"].values():
                report["state"] = "Removed"
        return self.order

    def delete_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append("delete")
        self.order = None


def undo_with(monkeypatch: pytest.MonkeyPatch, api: FakeOrders) -> None:
    from modeldr.drills.faults import network

    monkeypatch.setattr(network, "_custom", lambda members, cluster: api)
    monkeypatch.setattr("modeldr.drills.faults.network.time.sleep", lambda s: None)
    record = RECORD.model_copy(update={"parameters": {"namespace": "ml"}})
    NetworkFault().undo(MEMBERS, record)


def test_undo_ends_the_order_waits_for_every_node_s_removed_then_deletes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeOrders({"gpu-0": "Applied", "gpu-1": "Applied"}, confirm_after=3)
    undo_with(monkeypatch, api)
    # expiresAt moved into the past first, the delete only once no node reports Applied.
    assert api.calls[0].startswith("patch expiresAt=20")
    assert api.calls[1:] == ["get", "get", "get", "delete", "get"]


def test_undo_names_the_nodes_that_never_confirm_and_still_deletes_the_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr("modeldr.drills.faults.network.time.monotonic", lambda: float(next(clock)))
    api = FakeOrders({"gpu-0": "Removed", "gpu-1": "Applied"}, confirm_after=None)
    with pytest.raises(Refusal) as failed:
        undo_with(monkeypatch, api)
    assert failed.value.reason == "UndoFailed"
    assert "gpu-1" in str(failed.value) and "gpu-0" not in str(failed.value)
    assert "delete" in api.calls and api.order is None


def test_nodes_that_never_applied_an_order_are_not_waited_for() -> None:
    from modeldr.drills.faults.network import still_applied

    order = {"status": {"nodes": {"a": {"state": "Error"}, "b": {"state": "Applied"}}}}
    assert still_applied(order) == ["b"]
    assert still_applied({}) == []


def test_a_renewal_finds_an_order_that_is_gone_or_not_applied_everywhere_lapsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modeldr.drills.faults import network

    record = RECORD.model_copy(update={"parameters": {"namespace": "ml"}})
    later = datetime.now(UTC) + timedelta(seconds=15)
    answers: list[dict[str, Any] | None] = [
        {
            "spec": {"nodes": ["gpu-0", "gpu-1"]},
            "status": {"nodes": {"gpu-0": {"state": "Applied"}, "gpu-1": {"state": "Applied"}}},
        },
        {
            "spec": {"nodes": ["gpu-0", "gpu-1"]},
            "status": {
                "nodes": {
                    "gpu-0": {"state": "Applied"},
                    "gpu-1": {"state": "Error", "message": "targets refused"},
                }
            },
        },
        None,  # 404: the order is gone
    ]
    monkeypatch.setattr(network, "_set_expiry", lambda members, rec, at: answers.pop(0))
    NetworkFault().renew(MEMBERS, record, later)  # every node Applied: renewed
    with pytest.raises(Refusal) as refused:
        NetworkFault().renew(MEMBERS, record, later)
    assert refused.value.reason == "FaultLapsed"
    assert "node gpu-1: Error (targets refused)" in refused.value.message
    with pytest.raises(Refusal) as gone:
        NetworkFault().renew(MEMBERS, record, later)
    assert gone.value.reason == "FaultLapsed" and "is gone" in gone.value.message
