"""Renewing a fault's expiry while its step runs: every order the operator gives expires by
itself (the agent or the provider undoes it), so the operator pushes the expiry on, every
third of the plan's `faultExpirySeconds`, for as long as the step holds the fault. An
operator that dies, or is cut off from the member, stops renewing: the fault is gone within
one expiry period, with no operator involved.

A driver that can renew has `renew(members, record, expires_at)` (agent orders: patch
`expiresAt`; infrastructure faults: the provider's `/renew`). Faults with nothing to expire
(PodKill, NodeDrain, ...) have none and are not renewed.

A fault can lapse while its step runs: the driver learns that it is no longer in force (the
order is gone, an agent reports it Removed or Error, the provider has undone it: `renew`
raises a Refusal with reason FAULT_LAPSED), or no renewal has succeeded for a whole expiry
period (it may have expired). Either way the renewal stops and says why (`lapsed`); the step
then cannot be Passed (drills/steps.py: Inconclusive, FaultLapsed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from modeldr.api.drillstatus import FaultRecord
from modeldr.drills.refusal import Refusal
from modeldr.kube.members import MemberRegistry

log = logging.getLogger("modeldr.drills.renewal")

RENEWALS_PER_PERIOD = 3
# The record's parameter that says when the fault undoes itself (the agent's order, the
# infrastructure provider's fault): set by the step before the inject, pushed on by renewals.
EXPIRES_PARAMETER = "expiresAt"
#: The reason of a step whose fault was not in force for all of it.
FAULT_LAPSED = "FaultLapsed"


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
        #: Why the fault is known, or feared, not to be in force any more (None: it is).
        self.lapsed: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"renew-{self.record.id}")

    async def _run(self) -> None:
        interval = self.period_s / RENEWALS_PER_PERIOD
        loop = asyncio.get_running_loop()
        # The fault's expiry when injected is at least a period ahead of the first call.
        renewed_at = loop.time()
        while not self._stop.is_set():
            started = loop.time()
            try:
                expires = next_expiry(self.period_s)
                await asyncio.to_thread(self.driver.renew, self.members, self.record, expires)
                self.renewals += 1
                renewed_at = started
            except Exception as exc:  # a missed renewal: the next may land; if none does,
                if isinstance(exc, Refusal) and exc.reason == FAULT_LAPSED:
                    self.lapsed = exc.message
                    log.warning("%s %s lapsed: %s", self.record.type, self.record.id, exc)
                    return  # renewing a fault that ended could make it again
                self.failures += 1  # the fault expires by itself (the safe direction)
                log.warning("renewing %s %s: %s", self.record.type, self.record.id, exc)
                if started - renewed_at >= self.period_s:
                    self.lapsed = (
                        f"no renewal succeeded for {started - renewed_at:.0f} s, a whole expiry "
                        f"period ({self.period_s:g} s): the fault may have ended by itself "
                        f"(last error: {exc})"
                    )[:1024]
                    log.warning("%s %s: %s", self.record.type, self.record.id, self.lapsed)
                    return
            # Every third of a period from the start of the last call, however long it took.
            wait = max(0.0, started + interval - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.shield(self._task)
