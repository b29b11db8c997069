"""Node faults that expire on the member side: the marks a drill writes on a Node
(api/nodefault.py) and the agent's reaper that undoes an expired cordon or GPU taint
(agent/nodereaper.py), against a fake CoreV1Api that answers like the apiserver (a stale
resourceVersion is a 409). On the sandbox, with the operator SIGKILLed mid-fault:
tests/integration/test_drill_replica_faults.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from modeldr.agent import nodereaper
from modeldr.api import nodefault
from modeldr.api.networkfault import MAX_EXPIRY_AHEAD_S

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
OURS = client.V1Taint(key="nvidia.com/gpu", value="modeldr.io-drill", effect="NoExecute")
THEIRS = client.V1Taint(key="dedicated", value="ml", effect="NoSchedule")


def node(annotations: dict[str, str], taints: list[client.V1Taint] | None = None) -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(name="gpu-0", resource_version="7", annotations=annotations),
        spec=client.V1NodeSpec(unschedulable=True, taints=taints),
    )


class FakeCore:
    def __init__(self, current: client.V1Node, conflict: bool = False) -> None:
        self.current = current
        self.conflict = conflict
        self.patches: list[dict[str, Any]] = []

    def patch_node(self, name: str, body: dict[str, Any], **_: Any) -> client.V1Node:
        if (
            self.conflict
            or body["metadata"]["resourceVersion"] != self.current.metadata.resource_version
        ):
            raise client.ApiException(status=409, reason="Conflict")
        self.patches.append(body)
        meta, spec = self.current.metadata, self.current.spec
        merged = {**(meta.annotations or {}), **body["metadata"].get("annotations", {})}
        meta.annotations = {k: v for k, v in merged.items() if v is not None}
        meta.resource_version = str(int(meta.resource_version) + 1)
        if "unschedulable" in body.get("spec", {}):
            spec.unschedulable = body["spec"]["unschedulable"]
        if "taints" in body.get("spec", {}):
            spec.taints = [client.V1Taint(**t) for t in body["spec"]["taints"] or []] or None
        return self.current


def test_the_marks_name_the_fault_and_its_expiry_and_come_off_whole() -> None:
    marks = nodefault.marked("cordon", "f-1", NOW)
    assert marks == {
        "modeldr.io/drill-cordon-fault": "f-1",
        "modeldr.io/drill-cordon-expires-at": "2030-01-02T03:04:05+00:00",
    }
    assert nodefault.marks(marks) == [nodefault.Mark("cordon", "f-1", NOW)]
    assert nodefault.unmarked("gpu-loss") == {
        "modeldr.io/drill-gpu-loss-fault": None,
        "modeldr.io/drill-gpu-loss-expires-at": None,
    }


def test_expired_unreadable_and_too_far_ahead_marks_are_due_now() -> None:
    def due(expires: str) -> bool:
        found = nodefault.marks({nodefault.CORDON_FAULT: "f", nodefault.CORDON_EXPIRES: expires})
        return bool(nodefault.due(found, NOW))

    assert due(NOW.isoformat())  # at its expiry exactly: over
    assert not due((NOW + timedelta(seconds=1)).isoformat())
    assert due("tomorrow") and due("2030-01-02T03:04:05")  # unreadable, no zone
    assert due((NOW + timedelta(seconds=MAX_EXPIRY_AHEAD_S + 1)).isoformat())  # the cap
    assert not due((NOW + timedelta(seconds=MAX_EXPIRY_AHEAD_S)).isoformat())
    assert nodefault.marks({"other": "x"}) == []


def test_an_expired_cordon_is_undone_with_the_resource_version_read() -> None:
    current = node(nodefault.marked("cordon", "f-1", NOW - timedelta(seconds=1)))
    core = FakeCore(current)
    again, left = nodereaper.reap(core, current, NOW)
    assert again is None and left.spec.unschedulable is False
    [patch] = core.patches
    assert patch["metadata"]["resourceVersion"] == "7"
    assert left.metadata.annotations == {}


def test_an_expired_gpu_taint_goes_and_every_other_taint_stays() -> None:
    current = node(nodefault.marked("gpu-loss", "f-2", NOW), [THEIRS, OURS])
    current.spec.unschedulable = None
    core = FakeCore(current)
    nodereaper.reap(core, current, NOW)
    assert [(t.key, t.value) for t in current.spec.taints] == [("dedicated", "ml")]
    assert "spec" in core.patches[0] and "unschedulable" not in core.patches[0]["spec"]


def test_a_live_fault_is_left_and_looked_at_again_at_its_expiry() -> None:
    expires = NOW + timedelta(seconds=12)
    both = {**nodefault.marked("cordon", "a", expires), **nodefault.marked("gpu-loss", "b", NOW)}
    current = node(both, [OURS])
    core = FakeCore(current)
    again, _ = nodereaper.reap(core, current, NOW)
    assert again == expires  # the taint undone now, the cordon at its own expiry
    assert current.spec.unschedulable is True and current.spec.taints is None


def test_a_conflict_is_tried_again_a_second_later_and_nothing_is_lost() -> None:
    current = node(nodefault.marked("cordon", "f-1", NOW))
    again, _ = nodereaper.reap(FakeCore(current, conflict=True), current, NOW)
    assert again == NOW + timedelta(seconds=nodereaper.RETRY_S)
    assert current.spec.unschedulable is True


@pytest.mark.parametrize("annotations", [{}, {"team": "ml"}])
def test_a_node_without_marks_is_never_patched(annotations: dict[str, str]) -> None:
    current = node(annotations)
    core = FakeCore(current)
    assert nodereaper.reap(core, current, NOW)[0] is None
    assert core.patches == [] and current.spec.unschedulable is True
