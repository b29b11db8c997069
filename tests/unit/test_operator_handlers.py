"""Pieces of the ModelDeployment daemon that need no cluster: the write guard shared with the
deletion handler, the poller registrations, and what the status says about past placements.
Each test builds its own Runtime (no module state to patch)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldr.kube.config import OperatorConfig
from modeldr.kube.errors import Closing, MemberError
from modeldr.operator import metrics, reconcile
from modeldr.operator.daemonstate import DaemonState, Writes, ending, status_clusters
from modeldr.operator.monitor import Monitors, Snapshot
from modeldr.operator.runtime import Runtime, writes_of
from tests.specs import minimal_spec


def test_writes_refuse_new_calls_once_closed() -> None:
    writes = Writes()
    assert writes.run(lambda: 42) == 42
    writes.close()
    with pytest.raises(Closing):
        writes.run(lambda: 1)
    writes.close()  # idempotent: the deletion handler retries


def test_close_waits_for_the_write_in_flight() -> None:
    writes = Writes()
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_write() -> None:
        started.set()
        release.wait(5)
        order.append("write finished")

    worker = threading.Thread(target=writes.run, args=(slow_write,))
    worker.start()
    assert started.wait(5)

    def close() -> None:
        writes.close()
        order.append("closed")

    closer = threading.Thread(target=close)
    closer.start()
    time.sleep(0.1)
    assert order == []  # close() is waiting for the write
    release.set()
    worker.join(5)
    closer.join(5)
    assert order == ["write finished", "closed"]


def test_writes_live_in_the_objects_memo() -> None:
    memo: dict[str, Any] = {}
    first = writes_of(memo)
    assert writes_of(memo) is first


def test_status_clusters() -> None:
    status = {"primary": {"cluster": "east"}, "standby": {"cluster": "west"}, "phase": "Ready"}
    assert status_clusters(status) == {"east", "west"}
    assert status_clusters({"primary": {"cluster": "east"}}) == {"east"}
    assert status_clusters(None) == set()
    assert status_clusters({"primary": None}) == set()


class _Stopped:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value


def test_ending_on_deletion_or_stop() -> None:
    assert not ending({}, _Stopped(False))
    assert ending({"deletionTimestamp": "2026-01-01T00:00:00Z"}, _Stopped(False))
    assert ending({}, _Stopped(True))


class _NoMembers:
    def get(self, cluster: str) -> Any:
        raise MemberError(cluster, "no Secret")


def _runtime(members: Any) -> Runtime:
    """A runtime with the given member registry and no hub (these tests never call it)."""
    return Runtime(OperatorConfig(), None, members, Monitors(members))


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = _runtime(_NoMembers())
    yield rt
    rt.stop()


def _watchers(monitors: Monitors, cluster: str) -> dict[Any, set[Any]]:
    return dict(monitors.get(cluster)._watchers)


def test_watch_follows_the_spec_placement(runtime: Runtime) -> None:
    monitors = runtime.monitors
    ctl = DaemonState(runtime, "team-a", "bert", "uid-1")
    ctl.wake = lambda: None
    spec = minimal_spec()  # primary and standby clusters, namespace ml in both
    reconcile.watch(ctl, spec)
    assert _watchers(monitors, "primary") == {("ml", "bert"): {ctl.wake}}
    assert _watchers(monitors, "standby") == {("ml", "bert"): {ctl.wake}}

    moved = minimal_spec(
        clusters={
            "primary": {"cluster": "primary", "namespace": "ml"},
            "standby": {"cluster": "west", "namespace": "ml2", "mode": "hot"},
        }
    )
    reconcile.watch(ctl, moved)
    assert _watchers(monitors, "standby") == {}
    assert _watchers(monitors, "west") == {("ml2", "bert"): {ctl.wake}}
    assert ctl.watching == {("primary", ("ml", "bert")), ("west", ("ml2", "bert"))}


class _RecordingMembers:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, cluster: str) -> Any:
        self.asked.append(cluster)
        raise MemberError(cluster, "no Secret labelled modeldr.io/member-cluster")


def _empty_snapshot() -> Snapshot:
    return Snapshot("primary", time.monotonic(), datetime.now(UTC))


@pytest.fixture
def recording() -> Iterator[Runtime]:
    """A runtime whose member registry records lookups (and knows no member)."""
    rt = _runtime(_RecordingMembers())
    yield rt
    rt.stop()


def test_a_member_error_is_its_own_reconcile_error_reason(recording: Runtime) -> None:
    members = recording.members
    assert isinstance(members, _RecordingMembers)
    ctl = DaemonState(recording, "team-a", "member-error", "uid-2")
    error = asyncio.run(
        reconcile.reconcile_member(ctl, minimal_spec(), "primary", _empty_snapshot(), 1, {})
    )
    assert "no Secret labelled" in error
    # The Secret lookup ran in a worker thread, inside the write guard.
    assert members.asked == ["primary"]
    errors = metrics.RECONCILE_ERRORS.labels("team-a", "member-error", "primary", "member")
    assert errors._value.get() == 1
    conflicts = metrics.RECONCILE_ERRORS.labels("team-a", "member-error", "primary", "conflict")
    assert conflicts._value.get() == 0


def test_no_member_write_once_the_deletion_handler_closed_the_guard(
    recording: Runtime,
) -> None:
    ctl = DaemonState(recording, "team-a", "deleting", "uid-3")
    ctl.writes.close()
    with pytest.raises(Closing):
        asyncio.run(
            reconcile.reconcile_member(ctl, minimal_spec(), "primary", _empty_snapshot(), 1, {})
        )
    assert isinstance(recording.members, _RecordingMembers)
    assert recording.members.asked == []


def test_a_dead_entry_point_leaves_the_traffic_after_one_probe_check_and_comes_back(
    runtime: Runtime,
) -> None:
    from modeldr.operator import tick
    from modeldr.operator.failover import Health
    from tests.loopback import serve
    from tests.unit.test_operator_clientprobe import Model

    with serve(Model, {"mode": "ok", "seen": []}) as url:
        port = int(url.rsplit(":", 1)[1])
        # 127.0.0.1 answers; nothing listens on 127.0.0.9 at that port (connection refused).
        spec = minimal_spec(
            runtime={"image": "img", "port": port},
            failover={"probe": {"sampleSize": 2, "timeoutMilliseconds": 500}},
        )
        ctl = DaemonState(runtime, "team-a", "bert", "uid-9")
        snapshot = Snapshot(
            "primary",
            time.monotonic(),
            datetime.now(UTC),
            ready_addresses={("ml", "bert"): ("127.0.0.1", "127.0.0.9")},
        )
        seen = tick.Seen({"primary": snapshot, "standby": snapshot}, {})
        healthy = Health(True, "2 ready endpoints", 2)

        def check() -> Health:
            return asyncio.run(tick.with_probe(ctl, spec, "primary", healthy, snapshot))

        # Before any check nothing is judged, nothing left out.
        assert tick.ready_addresses(ctl, spec, seen, "primary") == ("127.0.0.1", "127.0.0.9")
        first = check()
        assert first.healthy  # one of two answered: the cluster passes at 50%
        assert (first.code, first.answering) == ("Healthy", "1/2")
        # The traffic lists only the address that answered.
        assert tick.ready_addresses(ctl, spec, seen, "primary") == ("127.0.0.1",)
        # With the probe switched off nothing is judged, nothing left out.
        plain = minimal_spec(
            runtime={"image": "img", "port": port}, failover={"probe": {"enabled": False}}
        )
        assert tick.ready_addresses(ctl, plain, seen, "primary") == ("127.0.0.1", "127.0.0.9")
        ctl.ejections["primary"].record({"127.0.0.9"}, set(), time.monotonic())
        assert tick.ready_addresses(ctl, spec, seen, "primary") == ("127.0.0.1", "127.0.0.9")
