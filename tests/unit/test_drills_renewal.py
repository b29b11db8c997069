"""The renewal loop: at once, then every third of the period (counted from the start of each
call), on through failed calls, and never a call after stop() returns."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import cast

from modeldr.api.drillstatus import FaultRecord
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import FAULT_LAPSED, Renewable, Renewal
from modeldr.kube.members import MemberRegistry

RECORD = FaultRecord.model_validate(
    {"id": "f-1", "step": "s", "type": "NetworkPartition", "cluster": "primary"}
)


class Driver:
    inject_allowance_s = 1.0

    def __init__(self, *, fail: int = 0, slow_s: float = 0.0, lapse: bool = False) -> None:
        self.calls: list[tuple[float, datetime]] = []
        self.fail = fail
        self.slow_s = slow_s
        self.lapse = lapse
        self.in_flight = threading.Event()

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        self.in_flight.set()
        time.sleep(self.slow_s)
        self.calls.append((time.monotonic(), expires_at))
        self.in_flight.clear()
        if self.lapse:
            raise Refusal(FAULT_LAPSED, "node gpu-0: Removed (expired: the agent removed it)")
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the member did not answer")


def _run(driver: Driver, period_s: float, hold_s: float) -> Renewal:
    async def go() -> Renewal:
        renewal = Renewal(driver, cast(MemberRegistry, None), RECORD, period_s)
        renewal.start()
        await asyncio.sleep(hold_s)
        await renewal.stop()
        return renewal

    return asyncio.run(go())


def test_renewals_come_at_once_then_every_third_of_the_period() -> None:
    driver = Driver()
    assert isinstance(driver, Renewable)
    before = datetime.now(UTC)
    renewal = _run(driver, period_s=0.6, hold_s=0.7)
    times = [t for t, _ in driver.calls]
    assert 2 <= len(times) <= 5, times  # at 0, 0.2, 0.4, 0.6 (s)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.1 <= g <= 0.5 for g in gaps), gaps  # margin for a loaded machine
    period = timedelta(seconds=0.6)
    for _, expires in driver.calls:  # each one: now + the period
        assert before + period <= expires <= datetime.now(UTC) + period
    assert renewal.renewals == len(times) and renewal.failures == 0


def test_failed_renewals_are_counted_and_the_next_ones_still_come() -> None:
    driver = Driver(fail=2)
    renewal = _run(driver, period_s=0.3, hold_s=0.45)
    assert renewal.failures == 2 and renewal.renewals >= 1


def test_a_slow_call_is_waited_for_and_none_comes_after_stop() -> None:
    driver = Driver(slow_s=0.3)
    _run(driver, period_s=0.3, hold_s=0.05)  # stop() while the first call is in flight
    assert len(driver.calls) == 1 and not driver.in_flight.is_set()
    time.sleep(0.3)
    assert len(driver.calls) == 1


def test_a_fault_known_not_in_force_lapses_and_is_never_renewed_again() -> None:
    driver = Driver(lapse=True)
    renewal = _run(driver, period_s=0.3, hold_s=0.4)
    assert len(driver.calls) == 1  # renewing an ended fault could make it again
    assert renewal.lapsed == "node gpu-0: Removed (expired: the agent removed it)"


def test_a_whole_period_without_a_successful_renewal_is_a_lapse() -> None:
    driver = Driver(fail=100)
    renewal = _run(driver, period_s=0.3, hold_s=0.6)
    assert renewal.lapsed is not None and "no renewal succeeded for" in renewal.lapsed
    assert "the member did not answer" in renewal.lapsed
    stopped_at = len(driver.calls)
    assert 3 <= stopped_at <= 5, driver.calls  # 0, 0.1, 0.2, 0.3 s: then it gave up
    assert renewal.failures == stopped_at


def test_failures_shorter_than_a_period_are_no_lapse() -> None:
    driver = Driver(fail=2)
    renewal = _run(driver, period_s=0.6, hold_s=0.7)
    assert renewal.lapsed is None and renewal.renewals >= 1
