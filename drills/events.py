"""Kubernetes Events of a run: on the DrillRun for every transition, and on the
ModelDeployment when a drill starts and ends (so `kubectl describe md` tells the story)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modeldr.api.phase import Phase
from modeldr.drills.runstate import RunRef
from modeldr.kube.events import post_event

if TYPE_CHECKING:
    from modeldr.drills.engine import Drill


def run_event(drill: Drill, type_: str, reason: str, message: str) -> None:
    post_event(drill.state.ref.body(), type_, reason, message)


def started(drill: Drill) -> None:
    message = f"DrillRun {drill.state.ref.name} of plan {drill.plan_name} started"
    run_event(drill, "Normal", "DrillStarted", message)
    post_event(drill.target.body(), "Warning", "DrillStarted", message)


def finished(drill: Drill, phase: Phase, reason: str, message: str) -> None:
    type_ = "Normal" if phase is Phase.PASSED else "Warning"
    run_event(drill, type_, f"Drill{phase}", f"{reason}: {message}")
    post_event(
        drill.target.body(),
        type_,
        f"Drill{phase}",
        f"DrillRun {drill.state.ref.name}: {phase} ({reason})",
    )


def forged_entries(ref: RunRef, ids: list[str]) -> None:
    """Journal entries whose seal did not verify: never acted on, said so."""
    post_event(
        ref.body(),
        "Warning",
        "JournalEntryForged",
        f"{len(ids)} journal entries not written by the operator (their seal does not verify) "
        f"were not acted on: {', '.join(ids)}"[:1024],
    )
