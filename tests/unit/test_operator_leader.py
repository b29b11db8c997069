"""Leader election decisions (client-go semantics on the local monotonic clock), the renew
loop's reactions to failed renewals and to a peer taking the Lease, and the JSON log lines.

The Lease API itself is exercised for real in tests/integration/test_operator_process.py;
here `try_acquire_or_renew` is replaced by a scripted sequence of outcomes."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from kubernetes import client

from modeldr.kube.logs import DropNudges, JsonFormatter
from modeldr.operator import metrics
from modeldr.operator.leader import LeaderElector, may_acquire, record_key


def lease(holder: str, duration: int = 15, renewed: str = "2026-01-01T12:00:00Z") -> dict[str, Any]:
    return {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": duration}


def test_lease_free_or_mine_may_be_taken() -> None:
    assert may_acquire({}, "me", observed_at=100.0, now=100.0)
    assert may_acquire({"holderIdentity": ""}, "me", 100.0, 100.0)
    assert may_acquire(lease("me"), "me", 100.0, 100.0)


def test_lease_of_a_live_peer_is_respected_until_it_expires() -> None:
    # Measured from when this process saw the record change, not from the peer's renewTime
    # (which comes from the peer's wall clock).
    assert not may_acquire(lease("peer"), "me", observed_at=100.0, now=105.0)
    assert not may_acquire(lease("peer"), "me", 100.0, 114.9)
    assert may_acquire(lease("peer"), "me", 100.0, 115.0)
    # A released lease (no holder, duration 1 s) is free at once.
    assert may_acquire(lease("", duration=1), "me", 100.0, 100.0)


def test_a_renewal_is_a_new_record() -> None:
    first = lease("peer", renewed="2026-01-01T12:00:00Z")
    renewed = lease("peer", renewed="2026-01-01T12:00:02Z")
    assert record_key(first) != record_key(renewed)
    assert record_key(first) == record_key(dict(first))
    assert record_key({})[0] == ""


class Scripted(LeaderElector):
    """An elector whose attempts follow a script: True (held), False with a holder, or an
    exception (apiserver unreachable); the last entry repeats. Lease duration 1.5 s, renew
    deadline 0.5 s, retry period 0.05 s."""

    def __init__(self, outcomes: Iterable[bool | str | Exception]) -> None:
        super().__init__(
            client.ApiClient(client.Configuration()),
            "ns",
            "lease",
            "me",
            lease_duration_s=1.5,
            renew_deadline_s=0.5,
            retry_period_s=0.05,
        )
        self.outcomes = list(outcomes)
        self.attempts = 0

    def try_acquire_or_renew(self) -> bool:
        outcome = self.outcomes[min(self.attempts, len(self.outcomes) - 1)]
        self.attempts += 1
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is True:
            self.observed_holder = self.identity
            return True
        self.observed_holder = outcome or ""
        return False


def test_acquire_waits_for_the_lease_then_marks_leader() -> None:
    elector = Scripted(["peer", "peer", True])
    assert asyncio.run(elector.acquire(asyncio.Event()))
    assert elector.is_leader and elector.attempts == 3
    assert metrics.LEADER._value.get() == 1


def test_acquire_gives_up_when_stopped() -> None:
    elector = Scripted(["peer"])

    async def scenario() -> bool:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await elector.acquire(stop)

    assert not asyncio.run(scenario())
    assert not elector.is_leader


def test_hold_keeps_renewing_until_stopped() -> None:
    elector = Scripted([True])
    elector.is_leader = True

    async def scenario() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.4, stop.set)
        await elector.hold(stop)

    asyncio.run(scenario())
    assert elector.is_leader and elector.attempts >= 3


def test_hold_gives_up_after_the_renew_deadline() -> None:
    elector = Scripted([True, ConnectionRefusedError("apiserver down")])
    elector.is_leader = True
    started = time.monotonic()
    asyncio.run(elector.hold(asyncio.Event()))
    elapsed = time.monotonic() - started
    assert not elector.is_leader and metrics.LEADER._value.get() == 0
    # Lost after the renew deadline (0.5 s past the last renewal), well before a peer may
    # take the Lease over (lease duration 1.5 s).
    assert 0.5 <= elapsed < 1.5


def test_hold_stops_at_once_when_a_peer_holds_the_lease() -> None:
    elector = Scripted([True, "intruder"])
    elector.is_leader = True
    started = time.monotonic()
    asyncio.run(elector.hold(asyncio.Event()))
    assert not elector.is_leader and elector.attempts == 2
    assert time.monotonic() - started < 0.5


def test_a_hanging_renewal_is_cut_at_the_deadline() -> None:
    class Hanging(Scripted):
        def try_acquire_or_renew(self) -> bool:
            if self.attempts:
                time.sleep(1.0)  # a renewal stuck on the network
            return super().try_acquire_or_renew()

    elector = Hanging([True])
    elector.is_leader = True

    async def scenario() -> float:
        started = time.monotonic()
        await elector.hold(asyncio.Event())
        return time.monotonic() - started

    # (asyncio.run then waits for the stuck thread; the operator exits without waiting.)
    assert asyncio.run(scenario()) < 0.9
    assert not elector.is_leader


def test_json_log_lines() -> None:
    record = logging.LogRecord("modeldr.operator", logging.WARNING, __file__, 1, "x=%d", (3,), None)
    record.k8s_ref = {"namespace": "ns", "name": "md", "kind": "ModelDeployment", "uid": "u"}
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message", "object"}
    assert line["level"] == "warning" and line["message"] == "x=3"
    assert line["logger"] == "modeldr.operator"
    assert line["object"] == {"namespace": "ns", "name": "md", "kind": "ModelDeployment"}


def test_json_log_lines_carry_exceptions() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("kopf", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert "object" not in line and "RuntimeError: boom" in line["exception"]


def test_nudge_lines_are_dropped() -> None:
    drop = DropNudges()
    noisy = logging.LogRecord(
        "kopf.objects", 20, __file__, 1, "Handler '_nudge' succeeded.", (), None
    )
    useful = logging.LogRecord("kopf.objects", 20, __file__, 1, "Handler 'x' succeeded.", (), None)
    assert not drop.filter(noisy) and drop.filter(useful)
