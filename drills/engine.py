"""The run engine: one DrillRun from Pending to its verdict.

    preflight -> traffic probe, gates, abort watch -> the target serving (bounded wait)
    -> steady state -> baseline model check
    -> each step (journal, inject or act, hold, undo, model check, expectations)
    -> final steady state -> undo whatever is left -> verdict

Orchestration only: what is pure (statistics, gates, model scores, target selection, the
verdict) lives in its own module, faults behind `faults.base.FaultDriver`, and every fault
goes through the journal (`journal.Journal`), which undoes it on every path. The status is
the whole record of the run; a new leader that finds a run Running rolls it back
(`rollback`). Blocking calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modeldr.api.base import truncate
from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import InterruptStatus, StepStatus, WindowStatus
from modeldr.api.phase import Phase
from modeldr.drills import events
from modeldr.drills.aborts import AbortWatch
from modeldr.drills.answers import AnswerKey
from modeldr.drills.checks import ModelChecker
from modeldr.drills.consent import Guard, watch_consent
from modeldr.drills.gaterunner import GateRunner, Query, Windows
from modeldr.drills.host import DrillHost
from modeldr.drills.journal import Journal
from modeldr.drills.probe import TrafficProbe
from modeldr.drills.probe_stats import assess_steady_state, failure_summary, measure_step
from modeldr.drills.readiness import target_serving
from modeldr.drills.runstate import RunState, now
from modeldr.drills.steps import StepRunner
from modeldr.drills.target import Target, target_status
from modeldr.drills.verdict import verdict_message, verdict_of

log = logging.getLogger(__name__)
# Margins of the run's deadline on top of the plan's durations: setup and checks, and each
# step's undo (an outage's restore takes a while).
SETUP_MARGIN_S = 120.0
STEP_MARGIN_S = 120.0
# How long the end of a run keeps retrying faults it could not undo (the finalizer and a
# new leader's rollback go on from the journal after that).
UNDO_PATIENCE_S = 60.0
UNDO_RETRY_S = 5.0
# While waiting for the target to serve: how often to look, and to rewrite the live message.
SERVING_CHECK_S = 1.0
SERVING_WRITE_S = 3.0


def deadline_seconds(plan: DrillPlanSpec) -> float:
    steps = sum(step.duration_seconds + STEP_MARGIN_S for step in plan.steps)
    steady = 2 * plan.steady_state.duration_seconds + plan.steady_state.wait_for_target_seconds
    return SETUP_MARGIN_S + steady + steps


@dataclass
class Interrupt:
    """Why the run stops early: an abort condition, a stop by hand, deletion, the operator
    stopping, the deadline. The first reason wins (the run's end records it in
    status.interrupt)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    phase: Phase | None = None
    reason: str = ""
    message: str = ""
    at: datetime | None = None

    def set(self, phase: Phase, reason: str, message: str) -> None:
        if self.phase is None:
            self.phase, self.reason, self.message, self.at = phase, reason, message, now()
        self.event.set()

    def status(self) -> InterruptStatus | None:
        if self.phase is None:
            return None
        return InterruptStatus(
            phase=self.phase, reason=self.reason or None, message=self.message, at=self.at
        )

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    async def hold(self, seconds: float) -> bool:
        """Wait `seconds`; False when interrupted first."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return True
        return False


@dataclass
class Drill:
    """What one run works with, resolved by preflight."""

    runtime: DrillHost
    state: RunState
    plan: DrillPlanSpec
    plan_name: str
    target: Target
    seed: int
    probe: TrafficProbe
    journal: Journal
    # A PromQL query of a gate or an abort condition, on the Prometheus it names.
    query: Query
    # Why the run must stop now, besides its own conditions: (reason, message) when it was
    # stopped by hand, deleted, or the operator is stopping; None to go on.
    stop_reason: Callable[[], tuple[str, str] | None]
    # The tenancy checks (drills/tenancy.py): consent, freeze, policy, collateral damage.
    guard: Guard
    # The baseline's answers the probe's are judged against (plans with model checks).
    answers: AnswerKey | None = None
    interrupt: Interrupt = field(default_factory=Interrupt)
    windows: Windows = field(default_factory=Windows)
    clock: Callable[[], float] = time.monotonic
    # The target ModelDeployment's status now (blocking); None: read it from the hub.
    read_target_status: Callable[[], dict[str, Any]] | None = None

    def target_status(self) -> dict[str, Any]:
        if self.read_target_status is not None:
            return self.read_target_status()
        return target_status(self.runtime.hub, self.target)


class Engine:
    def __init__(self, drill: Drill, gates: list[GateRunner], checker: ModelChecker | None) -> None:
        self.drill = drill
        self.gates = gates
        self.checker = checker
        self.aborts = AbortWatch(drill)
        self.steps = StepRunner(drill, checker)

    async def execute(self) -> None:
        """The run after preflight; every fault is undone whatever happens."""
        d = self.drill
        status = d.state.status
        status.deadline = now() + timedelta(seconds=deadline_seconds(d.plan))
        await d.state.write()
        d.probe.start()
        # Gates and abort conditions measure from the moment the target serves (windows.
        # run_started, set by _wait_for_target), not while it starts.
        tasks = [asyncio.create_task(self.aborts.run(deadline_seconds(d.plan)))]
        tasks.append(asyncio.create_task(watch_consent(d)))
        tasks += [asyncio.create_task(g.run(d.windows, self._write_gates)) for g in self.gates]
        try:
            await self._sequence()
        except Exception as exc:  # a bug or a hub that stopped answering: say so, undo
            log.exception("%s: the run failed", d.state.ref.name)
            d.interrupt.set(Phase.ERROR, "EngineError", f"the run stopped: {exc}"[:1024])
        finally:
            d.windows.over = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(d.probe.stop)
            await self._undo_everything()
        await self._finish()

    async def _sequence(self) -> None:
        d = self.drill
        if not await self._wait_for_target():
            return
        before = await self._steady_state(before=True)
        if before.phase is not Phase.PASSED or d.interrupt.is_set:
            return
        if self.checker is not None:
            await self.checker.baseline()
        for index, step in enumerate(d.plan.steps):
            if d.interrupt.is_set:
                break
            part = await self.steps.run(index, step)
            if part.phase is Phase.ERROR:
                self.steps.skip_rest(index + 1, f"not run: step {step.name} ended Error")
                return
        if not d.interrupt.is_set:
            await self._steady_state(before=False)

    async def _wait_for_target(self) -> bool:
        """Wait, up to steadyState.waitForTargetSeconds, until the target serves as both the
        operator and the drill's own probe see it (readiness.py); False when it never did
        (the run ends Error, TargetNotReady) or the run was interrupted meanwhile."""
        d = self.drill
        bound = d.plan.steady_state.wait_for_target_seconds
        status = d.state.status
        started = d.clock()
        written_at = float("-inf")
        while True:
            md_status = await asyncio.to_thread(d.target_status)
            seen = target_serving(d.target.name, md_status, d.probe.samples(), d.clock())
            if seen.serving:
                d.windows.run_started = d.clock()
                waited = d.clock() - started
                if waited >= SERVING_CHECK_S:
                    events.run_event(
                        d, "Normal", "TargetServing", f"the target serves after {waited:.0f} s"
                    )
                return True
            if d.clock() - started >= bound:
                message = f"the target did not serve within {bound} s: {seen.message}"[:1024]
                window = WindowStatus(
                    phase=Phase.ERROR,
                    reason="TargetNotReady",
                    message=message,
                    started_at=now(),
                    finished_at=now(),
                    interrupted=True,  # never measured: the run's interrupt says why
                )
                assert status.steady_state is not None
                status.steady_state.before = window
                d.interrupt.set(Phase.ERROR, "TargetNotReady", message)
                return False
            if d.clock() - written_at >= SERVING_WRITE_S:
                status.message = f"waiting up to {bound} s for the target to serve: {seen.message}"
                await d.state.write()
                written_at = d.clock()
            if not await d.interrupt.hold(SERVING_CHECK_S):
                return False

    async def _steady_state(self, *, before: bool) -> WindowStatus:
        """One steady-state window; one the interrupt cut short is marked `interrupted` (the
        verdict counts the interrupt instead)."""
        d = self.drill
        d.windows.step = None
        window = WindowStatus(phase=Phase.RUNNING, started_at=now())
        steady = d.state.status.steady_state
        assert steady is not None
        if before:
            steady.before = window
        else:
            steady.after = window
        await d.state.write()
        start = d.clock()
        held = await d.interrupt.hold(d.plan.steady_state.duration_seconds)
        samples, end = d.probe.samples(), d.clock()
        assessment = assess_steady_state(
            samples, start, end, d.plan.steady_state.max_error_ratio, before_faults=before
        )
        # The window's figures, as a step's: what clients saw before and after the faults.
        measured = measure_step(samples, start, end)
        window.requests, window.failed_requests = measured.sent, measured.failed
        window.error_ratio, window.p99_latency_ms = measured.error_ratio, measured.p99_latency_ms
        failures = failure_summary(d.probe.samples(), start, d.clock())
        message = f"{assessment.message}; {failures}" if failures else assessment.message
        if held:
            window.phase, window.reason, window.message = (
                assessment.phase,
                assessment.reason,
                truncate(message),
            )
        else:
            window.phase, window.reason = Phase.ABORTED, d.interrupt.reason or "Interrupted"
            window.message = truncate(f"interrupted: {d.interrupt.message}")
            window.interrupted = True
        window.error_ratio, window.finished_at = assessment.error_ratio, now()
        await d.state.write()
        return window

    async def _write_gates(self) -> None:
        self.drill.state.status.gates = [g.status(over=False) for g in self.gates]
        await self.drill.state.write()

    async def _undo_everything(self) -> None:
        """Undo what is still recorded, retrying for a bounded time (a member that comes
        back in time gets its fault undone by this run, not only by the finalizer)."""
        d = self.drill
        outstanding = d.journal.outstanding()
        if not outstanding:
            return
        started = d.clock()
        left = await d.journal.undo_all()
        while left and d.clock() - started < UNDO_PATIENCE_S:
            await asyncio.sleep(UNDO_RETRY_S)
            left = await d.journal.undo_all()
        for record in outstanding:
            if record.state == "Undone":
                events.run_event(d, "Normal", "FaultUndone", f"{record.type} {record.id} undone")
        if left:
            names = ", ".join(f"{r.type} {r.id} in {r.cluster}" for r in left)
            d.interrupt.set(Phase.ERROR, "UndoFailed", f"faults not undone: {names}")

    async def _finish(self) -> None:
        """End every part in the status, then read the verdict from it (drills/verdict.py):
        what the apiserver holds is the whole record, the verdict included."""
        d = self.drill
        status = d.state.status
        status.gates = [g.status(over=True) for g in self.gates]
        self.aborts.conclude()
        status.interrupt = d.interrupt.status()
        verdict = verdict_of(status)
        status.phase, status.reason = verdict.phase, verdict.reason
        status.message = verdict_message(verdict, status)
        status.finished_at, status.current_step = now(), None
        await d.state.write()
        events.finished(d, verdict.phase, verdict.reason, verdict.message)


def new_seed() -> int:
    """The run's random seed (recorded in status): the targets it chose can be chosen again."""
    return random.SystemRandom().randrange(2**31)


def steps_status(plan: DrillPlanSpec) -> list[StepStatus]:
    return [StepStatus(name=step.name) for step in plan.steps]
