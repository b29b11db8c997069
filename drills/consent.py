"""Consent and freeze, re-checked while a run goes on (TENANCY.md): before every step and
every CONSENT_EVERY_S in the background. A lapse (the target's owner removed the opt-in, a
freeze, a policy that no longer allows the run) interrupts the run Aborted with its reason;
the engine then undoes every fault (its `finally`), within seconds."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final, Protocol

from modeldr.api.phase import Phase
from modeldr.drills import events
from modeldr.drills.refusal import Refusal

if TYPE_CHECKING:
    from modeldr.drills.engine import Drill

log = logging.getLogger(__name__)
# A freeze acts within 10 s (TENANCY.md): checked this often, plus the undo's own time.
CONSENT_EVERY_S: Final = 2.0


class Guard(Protocol):
    """What the engine asks of a run's tenancy checks (drills/tenancy.py's RunTenancy);
    blocking calls, made in worker threads."""

    def lapse(self) -> tuple[str, str] | None:
        """(reason, message) when the run must stop now, or None to go on."""

    def node_refusal(self, fault_type: str, cluster: str, node: str) -> Refusal | None:
        """Why a node-level fault may not be made on this node, or None."""


async def check_consent(d: Drill) -> bool:
    """True, with the run interrupted (Aborted), when consent lapsed. A hub that does not
    answer is no lapse (the run's own writes fail then, and say so)."""
    try:
        why = await asyncio.to_thread(d.guard.lapse)
    except Exception as exc:
        log.warning("%s: consent could not be checked: %s", d.state.ref.name, exc)
        return False
    if why is None:
        return False
    if not d.interrupt.is_set:
        events.run_event(d, "Warning", why[0], why[1])
    d.interrupt.set(Phase.ABORTED, *why)
    return True


async def watch_consent(d: Drill) -> None:
    """The background check, until the run's windows are over."""
    while not d.windows.over:
        await asyncio.sleep(CONSENT_EVERY_S)
        if d.interrupt.is_set:
            return
        await check_consent(d)
