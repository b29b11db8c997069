"""The fault journal: every fault is written to the run's status before it is applied, and
undone from what the status says, on every path (the step's end, failure, abort, deletion,
a new leader). Undo is idempotent, so undoing twice, or undoing what never got applied, is
harmless."""

from __future__ import annotations

import asyncio
import logging
import uuid

from modeldr.api.drillplan import Fault
from modeldr.api.drillstatus import OUTSTANDING, FaultRecord
from modeldr.drills.faults.base import Choice, FaultDriver
from modeldr.drills.faults.registry import DRIVERS
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunState, now
from modeldr.kube.constants import Role
from modeldr.kube.members import MemberRegistry
from modeldr.kube.seal import JournalSeal

log = logging.getLogger(__name__)
# Undo is retried this many times (with back-off) before the record says it failed.
UNDO_ATTEMPTS = 5


def new_record(
    step: str, fault: Fault, driver: FaultDriver, cluster: str, role: Role, plan: Choice
) -> FaultRecord:
    return FaultRecord.model_validate(
        {
            "id": f"f-{uuid.uuid4().hex[:12]}",
            "step": step,
            "type": fault.type,
            "cluster": cluster,
            "role": role,
            "mode": fault.mode,
            "value": fault.value,
            "seed": plan.seed,
            "targets": list(plan.targets),
            "provider": driver.provider,
            "state": "Recorded",
            "recordedAt": now(),
            "parameters": plan.parameters,
        }
    )


class Journal:
    def __init__(self, state: RunState, members: MemberRegistry, seal: JournalSeal) -> None:
        self.state = state
        self.members = members
        self.seal = seal

    async def record(self, record: FaultRecord) -> None:
        """Seal and write the record; only then may the fault be applied (raises when the hub
        did not take it)."""
        record.signature = self.seal.seal(self.state.ref.uid, record)
        self.state.status.faults.append(record)
        await self.state.write()

    def forged(self, record: FaultRecord) -> bool:
        """True, with the record marked Forged, when its seal does not verify: an entry the
        operator did not write, or one edited since. Nothing is done for it."""
        if self.seal.verifies(self.state.ref.uid, record):
            return False
        record.state = "Forged"
        record.message = (
            "not written by this operator (its seal does not verify): never acted on; "
            "whatever it names was left as it is"
        )
        log.warning(
            "DrillRun %s/%s: journal entry %s (%s in %s) is forged or edited: not acted on",
            self.state.ref.namespace,
            self.state.ref.name,
            record.id,
            record.type,
            record.cluster,
        )
        return True

    async def applied(self, record: FaultRecord) -> None:
        record.state, record.applied_at = "Applied", now()
        await self.state.write()

    async def undo(self, record: FaultRecord) -> bool:
        """Undo one record (retried); True when undone. Never raises."""
        if record.state not in OUTSTANDING:
            return True
        if self.forged(record):
            await self._write_quietly()
            return True  # nothing to retry: it is never acted on
        driver = DRIVERS.get(record.type)
        if driver is None:  # never injected: unsupported types are refused before the journal
            record.state, record.undone_at = "Undone", now()
            await self._write_quietly()
            return True
        for attempt in range(UNDO_ATTEMPTS):
            record.undo_attempts += 1
            try:
                await asyncio.to_thread(driver.undo, self.members, record)
            except Exception as exc:
                record.message = f"undo attempt {record.undo_attempts} failed: {exc}"[:1024]
                log.warning(
                    "fault %s (%s in %s): %s",
                    record.id,
                    record.type,
                    record.cluster,
                    record.message,
                )
                await self._write_quietly()
                if isinstance(exc, Refusal) or attempt == UNDO_ATTEMPTS - 1:
                    return False  # a provider that is not there will not be by retrying now
                await asyncio.sleep(min(1.0 * 2**attempt, 8.0))
                continue
            record.state, record.undone_at = "Undone", now()
            record.message = None
            await self._write_quietly()
            return True
        return False

    async def undo_all(self) -> list[FaultRecord]:
        """Undo every outstanding record, newest first (an outage restored before the pods
        it hides); returns the records that could not be undone."""
        failed = []
        for record in reversed(self.state.status.faults):
            if record.state in OUTSTANDING and not await self.undo(record):
                failed.append(record)
        return failed

    def outstanding(self) -> list[FaultRecord]:
        return [r for r in self.state.status.faults if r.state in OUTSTANDING]

    async def _write_quietly(self) -> None:
        try:
            await self.state.write()
        except Exception:  # the undo itself is what matters; the next write carries it
            log.warning("status write after an undo failed", exc_info=True)
