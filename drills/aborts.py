"""The run's watch while it goes on, every second: its abort conditions (probe-based or
PromQL), a stop asked by hand (`spec.abort`), and its deadline. An abort condition that
holds interrupts the run at once (the engine undoes every fault within seconds); one that
cannot be evaluated keeps the run from ending Passed. The conditions are evaluated together,
in the background of the stop and deadline checks: a hung Prometheus delays neither."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modeldr.api.base import truncate
from modeldr.api.drillplan import AbortCondition
from modeldr.api.drillstatus import AbortConditionStatus
from modeldr.api.phase import Phase
from modeldr.drills.conditions import CompiledCondition, compile_condition
from modeldr.drills.gates import check_abort_query
from modeldr.drills.probe_stats import AbortCheck, AbortState, abort_due
from modeldr.drills.runstate import now

if TYPE_CHECKING:
    from modeldr.drills.engine import Drill

# DRILLS.md: abort conditions are evaluated at least every 2 s.
EVERY_S = 1.0
# A probe-based condition is not judged before the probe has had this long to send (an
# empty window at the very start is no missing evidence).
PROBE_WARMUP_S = 2.0


@dataclass
class Watched:
    condition: AbortCondition
    compiled: CompiledCondition | None
    status: AbortConditionStatus
    unknown: int = 0
    unknown_message: str = ""
    held: str = ""


class AbortWatch:
    def __init__(self, drill: Drill) -> None:
        self.drill = drill
        self.watched = [
            Watched(
                c,
                compile_condition(c.condition) if c.condition else None,
                AbortConditionStatus(name=c.name, phase=Phase.RUNNING),
            )
            for c in drill.plan.abort_conditions
        ]

    async def run(self, deadline_s: float) -> None:
        d = self.drill
        started = d.clock()
        d.state.status.abort_conditions = [w.status for w in self.watched]
        # One round of evaluations at a time, in a task of its own: a slow or hung
        # Prometheus (each query is bounded by its own timeoutSeconds, up to 60 s) never
        # delays the stop by hand, the deletion or the deadline, checked every EVERY_S.
        evaluating: asyncio.Task[None] | None = None
        try:
            while not d.windows.over:
                self._stop_or_deadline(started, deadline_s)
                if evaluating is not None and evaluating.done():
                    evaluating.result()  # a bug in a round surfaces here, as before
                    evaluating = None
                # Judged once the target serves (the engine's wait sets run_started), never
                # against a model that had not started.
                measuring = d.windows.run_started
                warm = measuring is not None and d.clock() - measuring >= PROBE_WARMUP_S
                if warm and evaluating is None:
                    evaluating = asyncio.create_task(self._evaluate_all())
                await asyncio.sleep(EVERY_S)
        finally:
            if evaluating is not None and not evaluating.done():
                evaluating.cancel()
                await asyncio.gather(evaluating, return_exceptions=True)

    def _stop_or_deadline(self, started: float, deadline_s: float) -> None:
        d = self.drill
        why = d.stop_reason()
        if why is not None:
            d.interrupt.set(Phase.ABORTED, *why)
        if d.clock() - started > deadline_s:
            d.interrupt.set(
                Phase.ERROR,
                "DeadlineExceeded",
                f"the run did not end within {deadline_s:.0f} s",
            )

    async def _evaluate_all(self) -> None:
        """Every condition at once (a slow query holds up none of the others)."""
        d = self.drill
        checks = await asyncio.gather(*(self._check(w) for w in self.watched))
        for watched, check in zip(self.watched, checks, strict=True):
            status = watched.status
            status.evaluations += 1
            status.message, status.last_evaluated_at = truncate(check.message), now()
            if check.state is AbortState.UNKNOWN:
                watched.unknown += 1
                watched.unknown_message = check.message
            if check.holds and not watched.held:
                watched.held = check.message
                status.phase, status.reason = Phase.ABORTED, "AbortConditionMet"
                d.interrupt.set(Phase.ABORTED, "AbortConditionMet", check.message)

    async def _check(self, watched: Watched) -> AbortCheck:
        d = self.drill
        condition = watched.condition
        if condition.max_error_ratio is not None:
            return abort_due(
                condition.name,
                d.probe.samples(since=d.windows.run_started),
                window_seconds=condition.window_seconds,
                max_error_ratio=condition.max_error_ratio,
                now=d.clock(),
            )
        assert condition.prometheus is not None and watched.compiled is not None
        outcome = await d.query(condition.prometheus)
        # On a worker thread, never on the event loop (drills/conditions.py).
        return await asyncio.to_thread(check_abort_query, condition.name, outcome, watched.compiled)

    def conclude(self) -> None:
        """Each condition's conclusion, in its status (what the verdict reads): Aborted when
        it held, Inconclusive when it could not be evaluated (at some point, or never),
        Passed otherwise."""
        self.drill.state.status.abort_conditions = [w.status for w in self.watched]
        for w in self.watched:
            if w.held:
                phase, reason, message = Phase.ABORTED, "AbortConditionMet", w.held
            elif w.unknown or not w.status.evaluations:
                phase, reason = Phase.INCONCLUSIVE, "MetricsMissing"
                message = (
                    f"could not be evaluated {w.unknown} of {w.status.evaluations} times: "
                    f"{w.unknown_message}"
                    if w.status.evaluations
                    else "never evaluated"
                )
            else:
                phase, reason = Phase.PASSED, "NotMet"
                message = f"did not hold in {w.status.evaluations} evaluations"
            w.status.phase, w.status.reason, w.status.message = phase, reason, truncate(message)
