"""A run's verdict from its parts: the worst phase in DRILLS.md's precedence (Aborted, Failed,
Error, Inconclusive, Passed), the reason of the first part that has it, and a message that
names that part with its measured values, so `status.message` alone tells what went wrong.

The parts are read from the run's status (`parts_of`), never from memory: the verdict is a
function of what is written to the apiserver (`verdict_of`), the same for the engine that
ends the run, a new leader that rolls it back, the report and the CLI (argo-rollouts'
analysis controller reads an AnalysisRun's phase from its status the same way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from modeldr.api.base import truncate
from modeldr.api.drillstatus import (
    OUTSTANDING,
    AbortConditionStatus,
    DrillRunStatus,
    GateStatus,
    InterruptStatus,
    ModelCheckStatus,
    WindowStatus,
)
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


# ------------------------------------------------------------------- from the run's status

# A status entry a part is read from (a StepStatus is a WindowStatus).
Entry = WindowStatus | GateStatus | AbortConditionStatus | ModelCheckStatus | InterruptStatus


def assessed(status: DrillRunStatus) -> list[tuple[Entry, Part]]:
    """The run's parts, each with the status entry it is read from, in the order the run met
    them: the steady state before, the baseline model check, each step (after the model check
    that followed it), the steady state after, the gates, the abort conditions, and the run's
    interrupt (`status.interrupt`) last.

    What counts:
    - a step, a model check, a gate, an abort condition or a steady-state window once it
      ended, with its phase, reason and message;
    - not a step or a steady-state window still Pending (not reached), nor a steady-state
      window the interrupt cut short (`interrupted`: it repeats the interrupt, which counts
      once, as the run's part);
    - a part still Pending or Running when the run was interrupted was cut short by the
      interrupt, which says why: it does not count. Without an interrupt it is an unfinished
      part, which `run_verdict` refuses (a gate still measuring is no pass).
    """
    stopped = status.interrupt is not None
    out: list[tuple[Entry, Part]] = []

    def add(entry: Entry, kind: PartKind, name: str) -> None:
        phase = entry.phase
        if phase.is_final or not stopped:
            message = entry.message or ""
            out.append((entry, Part(kind, name, phase, entry.reason or "", message)))

    def window(entry: WindowStatus | None, name: str) -> None:
        if entry is not None and entry.phase is not Phase.PENDING and not entry.interrupted:
            add(entry, PartKind.STEADY_STATE, name)

    steady = status.steady_state
    window(steady.before if steady else None, "before")
    after_step: dict[str, list[ModelCheckStatus]] = {}
    for check in status.model_checks:
        if check.step is None:
            add(check, PartKind.MODEL_CHECK, check.name)
        else:
            after_step.setdefault(check.step, []).append(check)
    for step in status.steps:
        for check in after_step.pop(step.name, []):
            add(check, PartKind.MODEL_CHECK, check.name)
        if step.phase is not Phase.PENDING:
            add(step, PartKind.STEP, step.name)
    for checks in after_step.values():  # of a step the status does not list: still evidence
        for check in checks:
            add(check, PartKind.MODEL_CHECK, check.name)
    window(steady.after if steady else None, "after")
    for gate in status.gates:
        add(gate, PartKind.GATE, gate.name)
    for condition in status.abort_conditions:
        add(condition, PartKind.ABORT_CONDITION, condition.name)
    if status.interrupt is not None:
        add(status.interrupt, PartKind.RUN, "")
    return out


def parts_of(status: DrillRunStatus) -> list[Part]:
    """The run's parts, read from its status alone (`assessed`)."""
    return [part for _, part in assessed(status)]


def verdict_of(status: DrillRunStatus) -> Verdict:
    """The run's verdict from its status alone; ValueError while a part it counts has not
    ended (see `assessed`)."""
    return run_verdict(parts_of(status))


def not_undone(status: DrillRunStatus) -> str:
    """The faults the journal still holds in force, newest first (the order the run undoes
    them): "PodKill f-1 in east, ..."; "" when every fault was undone."""
    return ", ".join(
        f"{r.type} {r.id} in {r.cluster}" for r in reversed(status.faults) if r.state in OUTSTANDING
    )


def verdict_message(verdict: Verdict, status: DrillRunStatus) -> str:
    """`status.message` of a run that ended: the verdict's message, and the faults it could
    not undo whatever else happened."""
    message = verdict.message
    names = not_undone(status)
    if names and names not in message:
        message += f"; faults not undone: {names}"
    return truncate(message)


def cut_short(status: DrillRunStatus, phase: Phase, reason: str, message: str) -> None:
    """End the status of a run that no engine is left to end (a new leader's rollback): the
    interrupt recorded (unless one already is: the first reason wins), and each step and
    steady-state window still Running ended by it as the engine ends them (Aborted,
    `interrupted`). Gates, abort conditions and model checks still running are cut short by
    the interrupt as `assessed` reads them."""
    at = datetime.now(UTC)
    if status.interrupt is None:
        status.interrupt = InterruptStatus(
            phase=phase, reason=reason, message=truncate(message), at=at
        )
    for step in status.steps:
        if step.phase is Phase.RUNNING:
            step.phase, step.reason, step.interrupted = Phase.ABORTED, reason, True
            step.message, step.finished_at = truncate(message), at
    steady = status.steady_state
    for window in [steady.before, steady.after] if steady else []:
        if window is not None and window.phase is Phase.RUNNING:
            window.phase, window.reason, window.interrupted = Phase.ABORTED, reason, True
            window.message, window.finished_at = truncate(f"interrupted: {message}"), at
