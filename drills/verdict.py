"""A run's verdict from its parts: the worst phase in DRILLS.md's precedence (Aborted, Failed,
Error, Inconclusive, Passed), the reason of the first part that has it, and a message that
names that part with its measured values, so `status.message` alone tells what went wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from modeldr.api.phase import EXIT_CODES, Phase, worst


class PartKind(StrEnum):
    PREFLIGHT = "preflight"
    STEADY_STATE = "steadyState"
    STEP = "step"
    GATE = "gate"
    MODEL_CHECK = "modelCheck"
    ABORT_CONDITION = "abortCondition"
    RUN = "run"  # what concerns the run as a whole: stopped by hand, the operator restarted

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    PartKind.PREFLIGHT: "preflight",
    PartKind.STEADY_STATE: "steady state",
    PartKind.STEP: "step",
    PartKind.GATE: "gate",
    PartKind.MODEL_CHECK: "model check",
    PartKind.ABORT_CONDITION: "abort condition",
    PartKind.RUN: "run",
}


@dataclass(frozen=True)
class Part:
    """One assessed part of a run, in the order the run met them (the first worst names
    the verdict). `name`: the step's, gate's or condition's name; "" where there is none."""

    kind: PartKind
    name: str
    phase: Phase
    reason: str
    message: str

    @property
    def title(self) -> str:
        return f"{self.kind.label} {self.name}" if self.name else self.kind.label


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    reason: str  # one CamelCase word
    message: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.phase]


def run_verdict(parts: Sequence[Part]) -> Verdict:
    """Every part must have ended (a gate still Running is the engine's bug, not a pass).
    No parts at all is Inconclusive: nothing was assessed, so nothing passed."""
    unfinished = [p for p in parts if not p.phase.is_final]
    if unfinished:
        names = ", ".join(f"{p.title} ({p.phase})" for p in unfinished)
        raise ValueError(f"not every part ended: {names}")
    if not parts:
        return Verdict(Phase.INCONCLUSIVE, "NothingAssessed", "the run assessed nothing")
    phase = worst(p.phase for p in parts)
    if phase is Phase.PASSED:
        counts = Counter(p.kind for p in parts)
        summary = ", ".join(
            f"{n} {kind.label}{'s' if n > 1 else ''}"
            for kind in PartKind
            if (n := counts.get(kind, 0))
        )
        return Verdict(Phase.PASSED, "AllPassed", f"every part passed: {summary}")
    same = [p for p in parts if p.phase is phase]
    first = same[0]
    message = f"{first.title}: {first.message}"
    if len(same) > 1:
        others = ", ".join(p.title for p in same[1:])
        message += f"; also {phase}: {others}"
    return Verdict(phase, first.reason, message)
