"""Phases of a DrillRun and of its parts (steps, gates, model checks), and which one wins.

The run's verdict is the worst of its parts, in the precedence DRILLS.md fixes: Aborted,
Failed, Error, Inconclusive, Passed. A part still Pending or Running has no verdict yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    PASSED = "Passed"
    FAILED = "Failed"
    ABORTED = "Aborted"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"
    # A dry run (spec.dryRun) that resolved every step with nothing touched: final, but no
    # verdict about the system (it was not tested), so never Passed.
    PLANNED = "Planned"

    @property
    def is_final(self) -> bool:
        return self in VERDICT_PRECEDENCE or self is Phase.PLANNED


# Worst first: the first of these among a run's parts is the run's verdict.
VERDICT_PRECEDENCE: tuple[Phase, ...] = (
    Phase.ABORTED,
    Phase.FAILED,
    Phase.ERROR,
    Phase.INCONCLUSIVE,
    Phase.PASSED,
)

# `modeldr drill run --wait` exits with these.
EXIT_CODES: dict[Phase, int] = {
    Phase.PASSED: 0,
    Phase.FAILED: 1,
    Phase.ABORTED: 1,
    Phase.ERROR: 2,
    Phase.INCONCLUSIVE: 2,
    Phase.PLANNED: 0,  # a clean dry run
}


def worst(phases: Iterable[Phase]) -> Phase:
    """The verdict of parts that all ended: the worst of them; Passed when there are none
    only if the caller says so (an empty list of parts is the caller's decision), so an
    empty iterable raises."""
    seen = set(phases)
    if not seen:
        raise ValueError("worst() of no phases: decide what an empty set means first")
    unfinished = seen - set(VERDICT_PRECEDENCE)
    if unfinished:
        raise ValueError(f"not every part ended: {sorted(unfinished)}")
    for phase in VERDICT_PRECEDENCE:
        if phase in seen:
            return phase
    raise AssertionError("unreachable")
