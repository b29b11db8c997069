"""One gate while a run goes on: measures in its windows (the steps it names, or the whole
run) at its interval, up to its count, and is assessed at the end with Argo's semantics
(drills.gates). Missing evidence never passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from modeldr.api.base import truncate
from modeldr.api.drillplan import Gate, PrometheusQuery
from modeldr.api.drillstatus import GateStatus
from modeldr.api.phase import Phase
from modeldr.drills.conditions import CompiledCondition, compile_condition
from modeldr.drills.gates import (
    GateAssessment,
    GateTally,
    assess_gate,
    classify_measurement,
    next_measurement_at,
)
from modeldr.kube.promql import QueryOutcome

# How often a gate looks whether a measurement is due.
TICK_S = 0.25


@dataclass
class Windows:
    """The engine's current window, as gates see it: the step running now and when its
    window started (monotonic), and whether the run's measuring is over."""

    step: str | None = None
    step_started: float | None = None
    run_started: float | None = None
    over: bool = False

    def start_for(self, gate: Gate) -> float | None:
        """When the gate's current window started, or None when it is outside its windows."""
        if not gate.steps:
            return self.run_started
        if self.step in gate.steps:
            return self.step_started
        return None


Query = Callable[[PrometheusQuery], Awaitable[QueryOutcome]]


class GateRunner:
    def __init__(self, gate: Gate, query: Query, clock: Callable[[], float]) -> None:
        self.gate = gate
        self.query = query
        self.clock = clock
        self.success: CompiledCondition | None = _compiled(gate.success_condition)
        self.failure: CompiledCondition | None = _compiled(gate.failure_condition)
        self.tally = GateTally()
        self.last_at: float | None = None
        self.started_at: datetime | None = None

    async def run(self, windows: Windows, on_measured: Callable[[], Awaitable[None]]) -> None:
        """Measure until the run's windows are over (bounded by the run's durations)."""
        while not windows.over:
            start = windows.start_for(self.gate)
            if start is not None and self._due(start):
                await self.measure()
                await on_measured()
            await asyncio.sleep(TICK_S)

    def _due(self, window_start: float) -> bool:
        due = next_measurement_at(
            window_start=window_start,
            window_end=None,
            last_measured_at=self.last_at,
            taken=self.tally.count,
            interval_seconds=self.gate.interval_seconds,
            count=self.gate.count,
            initial_delay_seconds=self.gate.initial_delay_seconds,
        )
        return due is not None and self.clock() >= due

    async def measure(self) -> None:
        at = datetime.now(UTC)
        self.started_at = self.started_at or at
        outcome = await self.query(self.gate.prometheus)
        self.last_at = self.clock()
        # The conditions run on a worker thread: never on the event loop (their cost is
        # bounded, drills/conditions.py, but a run's stop must not wait for them).
        measurement = await asyncio.to_thread(
            classify_measurement, outcome, success=self.success, failure=self.failure, at=at
        )
        self.tally = self.tally.record(measurement)

    def assess(self, *, over: bool) -> GateAssessment:
        return assess_gate(
            self.tally,
            count=self.gate.count,
            failure_limit=self.gate.failure_limit,
            inconclusive_limit=self.gate.inconclusive_limit,
            consecutive_error_limit=self.gate.consecutive_error_limit,
            windows_over=over,
        )

    def status(self, *, over: bool) -> GateStatus:
        assessment = self.assess(over=over)
        phase = assessment.phase
        if phase is Phase.RUNNING and not self.tally.count:
            phase = Phase.PENDING
        tally = self.tally
        return GateStatus.model_validate(
            {
                "name": self.gate.name,
                "phase": phase,
                "reason": assessment.reason,
                "message": truncate(assessment.message),
                "startedAt": self.started_at,
                "finishedAt": datetime.now(UTC) if over else None,
                "successful": tally.successful,
                "failed": tally.failed,
                "inconclusive": tally.inconclusive,
                "error": tally.error,
                "consecutiveErrors": tally.consecutive_error,
                "measurements": [_bounded(m.to_status()) for m in tally.last],
            }
        )


def _compiled(expression: str | None) -> CompiledCondition | None:
    return compile_condition(expression) if expression else None


def _bounded(measurement: dict[str, str]) -> dict[str, str]:
    """Status keeps at most 1 KiB of a measurement's value and message."""
    return {k: v[:1024] for k, v in measurement.items()}
