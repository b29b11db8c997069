"""Renewing a fault's expiry while its step runs: every order the operator gives expires by
itself (the agent or the provider undoes it), so the operator pushes the expiry on, every
third of the plan's `faultExpirySeconds`, for as long as the step holds the fault. An
operator that dies, or is cut off from the member, stops renewing: the fault is gone within
one expiry period, with no operator involved.

A driver that can renew has `renew(members, record, expires_at)` (agent orders: patch
`expiresAt`; infrastructure faults: the same inject again with the new expiry). Faults with
nothing to expire (PodKill, NodeDrain, ...) have none and are not renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from modeldr.api.drillstatus import FaultRecord
from modeldr.kube.members import MemberRegistry

log = logging.getLogger("modeldr.drills.renewal")

RENEWALS_PER_PERIOD = 3
# The record's parameter that says when the fault undoes itself (the agent's order, the
# infrastructure provider's fault): set by the step before the inject, pushed on by renewals.
EXPIRES_PARAMETER = "expiresAt"


@runtime_checkable
class Renewable(Protocol):
    # How long an inject may take: the first expiry counts from its end.
    inject_allowance_s: float

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        """Push the fault's expiry to `expires_at`; idempotent; never re-creates an undone
        fault."""


def first_expiry(allowance_s: float, period_s: float) -> str:
    """The expiry a renewable fault is injected with: one period after the longest its
    inject may take."""
    return (datetime.now(UTC) + timedelta(seconds=allowance_s + period_s)).isoformat()


def recorded_expiry(record: FaultRecord) -> datetime | None:
    """The expiry the record was injected with (None where it has none)."""
    raw = record.parameters.get(EXPIRES_PARAMETER)
    return datetime.fromisoformat(raw) if raw else None


def next_expiry(period_s: float, at: datetime | None = None) -> datetime:
    return (at or datetime.now(UTC)) + timedelta(seconds=period_s)


class Renewal:
    """Renews one fault at once, then every period/3, until `stop()`; a call in flight is
    waited for (never cancelled), so no renewal can land after the undo that follows."""

    def __init__(
        self, driver: Renewable, members: MemberRegistry, record: FaultRecord, period_s: float
    ) -> None:
        self.driver = driver
        self.members = members
        self.record = record
        self.period_s = period_s
        self.renewals = 0
        self.failures = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"renew-{self.record.id}")

    async def _run(self) -> None:
        interval = self.period_s / RENEWALS_PER_PERIOD
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            started = loop.time()
            try:
                expires = next_expiry(self.period_s)
                await asyncio.to_thread(self.driver.renew, self.members, self.record, expires)
                self.renewals += 1
            except Exception as exc:  # a missed renewal: the next may land; if none does,
                self.failures += 1  # the fault expires by itself (the safe direction)
                log.warning("renewing %s %s: %s", self.record.type, self.record.id, exc)
            # Every third of a period from the start of the last call, however long it took.
            wait = max(0.0, started + interval - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.shield(self._task)
