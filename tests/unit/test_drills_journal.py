"""The fault journal (drills/journal.py): record before apply, undo retried with back-off,
undo_all newest first and honest about what it could not undo, idempotent undo."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from kubernetes import client

from modeldr.api.drillplan import Fault
from modeldr.api.drillstatus import OUTSTANDING, DrillRunStatus, FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills import journal as journal_module
from modeldr.drills.faults import registry
from modeldr.drills.faults.base import Choice
from modeldr.drills.journal import UNDO_ATTEMPTS, Journal, new_record
from modeldr.drills.runstate import (
    WRITE_ATTEMPTS,
    RunRef,
    RunState,
    StatusFenced,
    StatusWriteError,
)
from tests.unit.drill_fakes import (
    TEST_SEAL,
    FakeDriver,
    FakeMember,
    FakeMembers,
    RecordingState,
    nowhere,
    sealed,
)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off the journal asks for, without waiting it."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("modeldr.drills.journal.asyncio.sleep", sleep)
    return asked


@pytest.fixture
def state() -> RecordingState:
    return RecordingState()


@pytest.fixture
def members() -> FakeMembers:
    return FakeMembers(FakeMember("primary"), FakeMember("standby"))


def install(monkeypatch: pytest.MonkeyPatch, fault_type: str, driver: FakeDriver) -> None:
    # journal.py imported the registry's DRIVERS dict by name: the same object, so setting
    # an item (not rebinding the attribute) is what both look-ups see.
    assert vars(journal_module)["DRIVERS"] is registry.DRIVERS
    monkeypatch.setitem(registry.DRIVERS, fault_type, driver)


def record(fault_id: str, fault_type: str = "PodKill", state: str = "Applied") -> FaultRecord:
    return FaultRecord.model_validate(
        {"id": fault_id, "step": "s", "type": fault_type, "cluster": "primary", "state": state}
    )


def test_new_record_is_recorded_with_the_plan_and_its_own_parameters(
    state: RecordingState,
) -> None:
    fault = Fault.model_validate({"type": "PodKill", "mode": "fixed", "value": 2})
    plan = Choice(("pod-a", "pod-b"), {"namespace": "ml"}, seed=42)
    first = new_record("kill", fault, FakeDriver(state), "primary", "primary", plan)
    second = new_record("kill", fault, FakeDriver(state), "primary", "primary", plan)
    assert first.state == "Recorded" and first.recorded_at is not None
    assert first.applied_at is None and first.undone_at is None
    assert (first.step, first.type, first.cluster, first.role) == (
        "kill",
        "PodKill",
        "primary",
        "primary",
    )
    assert (first.mode, first.value, first.seed) == ("fixed", 2, 42)
    assert first.targets == ["pod-a", "pod-b"]
    assert first.provider == "fake-provider"
    assert first.id.startswith("f-") and first.id != second.id
    # The engine adds expiresAt to the record's parameters: the plan must not change with it.
    first.parameters["expiresAt"] = "later"
    assert plan.parameters == {"namespace": "ml"}


def test_record_writes_the_status_with_the_fault_recorded(
    state: RecordingState, members: FakeMembers
) -> None:
    journal = Journal(state, members.registry(), TEST_SEAL)
    r = record("f-1", state="Recorded")
    asyncio.run(journal.record(r))
    [written] = state.writes
    assert [f["id"] for f in written["faults"]] == ["f-1"]
    assert written["faults"][0]["state"] == "Recorded"


def test_record_raises_when_the_hub_refuses_the_journal(
    state: RecordingState, members: FakeMembers
) -> None:
    state.fail_writes = 1
    with pytest.raises(StatusWriteError):
        asyncio.run(
            Journal(state, members.registry(), TEST_SEAL).record(record("f-1", state="Recorded"))
        )
    assert not state.writes


def test_applied_marks_the_record_and_writes(state: RecordingState, members: FakeMembers) -> None:
    journal = Journal(state, members.registry(), TEST_SEAL)
    r = record("f-1", state="Recorded")
    asyncio.run(journal.record(r))
    asyncio.run(journal.applied(r))
    assert r.state == "Applied" and r.applied_at is not None
    assert state.writes[-1]["faults"][0]["state"] == "Applied"
    assert "appliedAt" in state.writes[-1]["faults"][0]


def test_undo_retries_with_back_off_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch,
    state: RecordingState,
    members: FakeMembers,
    sleeps: list[float],
) -> None:
    driver = FakeDriver(state)
    driver.undo_failures = 2
    install(monkeypatch, "PodKill", driver)
    r = record("f-1")
    state.status.faults.append(sealed(r))
    assert asyncio.run(Journal(state, members.registry(), TEST_SEAL).undo(r)) is True
    assert driver.kinds() == ["undo", "undo", "undo"]
    assert sleeps == [1.0, 2.0]
    assert r.state == "Undone" and r.undone_at is not None
    assert r.undo_attempts == 3
    assert r.message is None  # the failures' message is cleared once undone
    # Each failure was written with what went wrong, so the status says why it is late.
    messages = [w["faults"][0].get("message", "") for w in state.writes]
    assert any("undo attempt 1 failed" in m and "member unreachable" in m for m in messages)
    assert state.writes[-1]["faults"][0]["state"] == "Undone"


def test_undo_gives_up_after_its_attempts_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
    state: RecordingState,
    members: FakeMembers,
    sleeps: list[float],
) -> None:
    driver = FakeDriver(state)
    driver.undo_always_fails = True
    install(monkeypatch, "PodKill", driver)
    r = record("f-1")
    state.status.faults.append(sealed(r))
    assert asyncio.run(Journal(state, members.registry(), TEST_SEAL).undo(r)) is False
    assert driver.kinds() == ["undo"] * UNDO_ATTEMPTS
    assert r.undo_attempts == UNDO_ATTEMPTS
    assert r.state == "Applied" and r.undone_at is None  # still outstanding: not lied about
    assert r.message is not None and f"undo attempt {UNDO_ATTEMPTS} failed" in r.message
    assert sleeps[:4] == [1.0, 2.0, 4.0, 8.0] and max(sleeps) <= 8.0


def test_undo_goes_on_when_the_status_write_after_it_fails(
    monkeypatch: pytest.MonkeyPatch,
    state: RecordingState,
    members: FakeMembers,
    sleeps: list[float],
) -> None:
    driver = FakeDriver(state)
    install(monkeypatch, "PodKill", driver)
    r = record("f-1")
    state.status.faults.append(sealed(r))
    state.fail_writes = 1
    assert asyncio.run(Journal(state, members.registry(), TEST_SEAL).undo(r)) is True
    assert r.state == "Undone" and state.refused == 1


@pytest.mark.parametrize("done", ["Undone", "Abandoned"])
def test_a_record_that_is_not_outstanding_is_not_undone_again(
    monkeypatch: pytest.MonkeyPatch, state: RecordingState, members: FakeMembers, done: str
) -> None:
    driver = FakeDriver(state)
    install(monkeypatch, "PodKill", driver)
    r = record("f-1", state=done)
    state.status.faults.append(sealed(r))
    journal = Journal(state, members.registry(), TEST_SEAL)
    assert asyncio.run(journal.undo(r)) is True
    assert asyncio.run(journal.undo_all()) == []
    assert driver.calls == [] and state.writes == []
    assert r.state == done and r.undo_attempts == 0


def test_undoing_twice_calls_the_driver_once(
    monkeypatch: pytest.MonkeyPatch, state: RecordingState, members: FakeMembers
) -> None:
    driver = FakeDriver(state)
    install(monkeypatch, "PodKill", driver)
    r = record("f-1")
    state.status.faults.append(sealed(r))
    journal = Journal(state, members.registry(), TEST_SEAL)
    assert asyncio.run(journal.undo(r)) and asyncio.run(journal.undo(r))
    assert driver.kinds() == ["undo"]


def test_a_type_without_a_driver_is_marked_undone_without_a_call(
    monkeypatch: pytest.MonkeyPatch, state: RecordingState, members: FakeMembers
) -> None:
    # A type this version does not make (every type is made at present: pretend Latency is
    # not) was refused before the journal, so a record of it cannot be in force.
    monkeypatch.delitem(registry.DRIVERS, "Latency")
    r = record("f-1", fault_type="Latency", state="Recorded")
    state.status.faults.append(sealed(r))
    assert asyncio.run(Journal(state, members.registry(), TEST_SEAL).undo(r)) is True
    assert r.state == "Undone" and r.undone_at is not None


def test_undo_all_goes_newest_first_and_returns_what_it_could_not_undo(
    monkeypatch: pytest.MonkeyPatch,
    state: RecordingState,
    members: FakeMembers,
    sleeps: list[float],
) -> None:
    order: list[str] = []
    good, bad = FakeDriver(state, "good"), FakeDriver(state, "bad")
    bad.undo_always_fails = True
    install(monkeypatch, "PodKill", good)
    install(monkeypatch, "ClusterOutage", bad)
    original_good, original_bad = good.undo, bad.undo

    def undo_good(m: Any, r: FaultRecord) -> None:
        order.append(r.id)
        original_good(m, r)

    def undo_bad(m: Any, r: FaultRecord) -> None:
        order.append(r.id)
        original_bad(m, r)

    monkeypatch.setattr(good, "undo", undo_good)
    monkeypatch.setattr(bad, "undo", undo_bad)
    state.status.faults = [
        sealed(record("f-0", state="Undone")),
        sealed(record("f-1")),  # oldest outstanding
        sealed(record("f-2", fault_type="ClusterOutage")),
        sealed(record("f-3", state="Recorded")),  # the operator died mid-inject: undone too
    ]
    journal = Journal(state, members.registry(), TEST_SEAL)
    assert [r.id for r in journal.outstanding()] == ["f-1", "f-2", "f-3"]
    left = asyncio.run(journal.undo_all())
    assert order == ["f-3", *["f-2"] * UNDO_ATTEMPTS, "f-1"]
    assert [r.id for r in left] == ["f-2"]
    assert [r.state for r in state.status.faults] == ["Undone", "Undone", "Applied", "Undone"]
    assert [r.id for r in journal.outstanding()] == ["f-2"]


def test_outstanding_means_recorded_or_applied() -> None:
    assert set(OUTSTANDING) == {"Recorded", "Applied"}


# ------------------------------------------------------- the status writer (runstate.py)


class FlakyStatusApi:
    """CustomObjectsApi's status patch answering the statuses in `answers` first (then
    200); keeps every body it was sent."""

    answers: ClassVar[list[int]] = []
    bodies: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def __init__(self, api_client: Any = None) -> None:
        pass

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        type(self).bodies.append((namespace, name, body))
        if self.answers:
            raise client.ApiException(status=self.answers.pop(0), reason="test")
        return body


@pytest.fixture
def status_api(monkeypatch: pytest.MonkeyPatch) -> type[FlakyStatusApi]:
    monkeypatch.setattr(FlakyStatusApi, "answers", [])
    monkeypatch.setattr(FlakyStatusApi, "bodies", [])
    monkeypatch.setattr("modeldr.drills.runstate.client.CustomObjectsApi", FlakyStatusApi)
    return FlakyStatusApi


def _writer(waits: list[float]) -> RunState:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    status = DrillRunStatus(phase=Phase.RUNNING, faults=[record("f-1", state="Recorded")])
    return RunState(nowhere(), RunRef("demo", "run-1", "u"), status, sleep=sleep)


def test_a_status_write_sends_the_whole_status(status_api: type[FlakyStatusApi]) -> None:
    waits: list[float] = []
    asyncio.run(_writer(waits).write())
    [(namespace, name, body)] = status_api.bodies
    assert (namespace, name) == ("demo", "run-1")
    assert body["status"]["phase"] == "Running"
    assert body["status"]["faults"][0]["id"] == "f-1"
    assert waits == []


def test_a_status_write_is_retried_then_taken(status_api: type[FlakyStatusApi]) -> None:
    status_api.answers = [500, 503]
    waits: list[float] = []
    asyncio.run(_writer(waits).write())
    assert len(status_api.bodies) == 3 and waits == [0.5, 1.0]


def test_a_status_write_the_hub_never_takes_raises(status_api: type[FlakyStatusApi]) -> None:
    status_api.answers = [500] * WRITE_ATTEMPTS
    waits: list[float] = []
    with pytest.raises(StatusWriteError):
        asyncio.run(_writer(waits).write())
    assert len(status_api.bodies) == WRITE_ATTEMPTS
    assert waits[:4] == [0.5, 1.0, 2.0, 4.0] and max(waits) <= 4.0


def test_a_status_write_of_a_deleted_run_is_no_error(status_api: type[FlakyStatusApi]) -> None:
    status_api.answers = [404]
    waits: list[float] = []
    asyncio.run(_writer(waits).write())
    assert len(status_api.bodies) == 1 and waits == []


class StoredRun:
    """One DrillRun as the apiserver keeps it: a resourceVersion bumped by every write, a
    merge patch of the status refused (409) when it names another version."""

    def __init__(self) -> None:
        self.version = 1
        self.status: dict[str, Any] = {"phase": "Running"}
        self.gets = 0
        self.patches = 0

    def __call__(self, api_client: Any = None) -> StoredRun:
        return self

    def _object(self) -> dict[str, Any]:
        meta = {"name": "run-1", "resourceVersion": str(self.version)}
        return {"metadata": meta, "status": dict(self.status)}

    def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body = args[5]
        self.patches += 1
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != str(self.version):
            raise client.ApiException(status=409, reason="Conflict")
        self.status = {**self.status, **body["status"]}
        self.version += 1
        return self._object()

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.gets += 1
        return self._object()

    def someone_writes(self, status: dict[str, Any] | None = None) -> None:
        """Another writer: the status (a new leader), or only metadata (kopf)."""
        if status is not None:
            self.status = {**self.status, **status}
        self.version += 1


def _fenced_writer(stored: StoredRun) -> RunState:
    async def sleep(seconds: float) -> None:
        pass

    status = DrillRunStatus(phase=Phase.RUNNING)
    known = dict(stored.status)
    ref = RunRef("demo", "run-1", "u")
    return RunState(nowhere(), ref, status, sleep=sleep, version=str(stored.version), known=known)


def test_a_metadata_only_change_is_no_fence(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = StoredRun()
    monkeypatch.setattr("modeldr.drills.runstate.client.CustomObjectsApi", stored)
    writer = _fenced_writer(stored)
    stored.someone_writes()  # kopf's annotation: the version moves, the status does not
    asyncio.run(writer.write())
    assert stored.patches == 2 and stored.gets == 1 and writer.fenced is None
    asyncio.run(writer.write())  # on the version its own write returned: no conflict
    assert stored.patches == 3 and stored.gets == 1


def test_a_writer_whose_run_someone_else_wrote_is_deposed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A paused former leader wakes up after the new one rolled its run back: its write is
    refused, and so is every later one, without asking the hub again."""
    stored = StoredRun()
    monkeypatch.setattr("modeldr.drills.runstate.client.CustomObjectsApi", stored)
    writer = _fenced_writer(stored)
    asyncio.run(writer.write())
    stored.someone_writes({"phase": "Aborted", "reason": "OperatorRestarted"})
    with pytest.raises(StatusFenced, match="deposed"):
        asyncio.run(writer.write())
    assert stored.status["phase"] == "Aborted"  # the new leader's verdict stands
    patches = stored.patches
    with pytest.raises(StatusFenced):
        asyncio.run(writer.write())
    assert stored.patches == patches and isinstance(StatusFenced("x"), StatusWriteError)


def test_an_entry_the_operator_did_not_seal_is_never_acted_on(
    monkeypatch: pytest.MonkeyPatch, state: RecordingState, members: FakeMembers
) -> None:
    """Added to the status by hand, edited (another node, another cluster), or copied from
    another run: its seal does not verify, so undo touches nothing and says so."""
    driver = FakeDriver(state)
    install(monkeypatch, "NodeDrain", driver)
    genuine = sealed(record("f-1", fault_type="NodeDrain"))
    genuine.parameters["node"] = "n1"
    genuine = sealed(genuine)
    added = record("f-2", fault_type="NodeDrain")  # no seal at all
    edited = sealed(record("f-3", fault_type="NodeDrain"))
    edited.parameters["node"] = "someone-elses-node"  # changed after sealing
    moved = sealed(record("f-4", fault_type="NodeDrain"))
    moved.cluster = "standby"
    copied = sealed(record("f-5", fault_type="NodeDrain"), run_uid="another-run")
    state.status.faults = [genuine, added, edited, moved, copied]
    journal = Journal(state, members.registry(), TEST_SEAL)
    assert asyncio.run(journal.undo_all()) == []
    assert driver.calls == [("undo", "f-1")]
    assert [r.state for r in state.status.faults] == ["Undone", *["Forged"] * 4]
    assert "never acted on" in (added.message or "")
    assert journal.outstanding() == []
    # Refreshed expiry and other parameters undo does not read keep the seal valid.
    renewed = sealed(record("f-6", fault_type="NodeDrain"))
    renewed.parameters["expiresAt"] = "2030-01-01T00:00:00Z"
    assert TEST_SEAL.verifies("uid-1", renewed)
