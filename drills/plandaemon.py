"""The DrillPlan's daemon (one per plan, on the leader, as a kopf daemon): the writer of the
plan's status besides observedGeneration. One loop, so its writes never race each other:

- the schedule: a scheduled plan's runs start on time (`plans.schedule_once`: decide, act,
  record; again at the next due time, at least every MAX_SCHEDULER_SLEEP_S, and at once
  when the spec changes); a plan without one has its schedule fields cleared;
- the last runs: `lastRun` and `lastScheduledRun` derived from the plan's runs
  (`plans.derive_last_runs`, written only when they change) at start, at once when one of
  its runs starts, ends or goes (the DrillRun event handler wakes the daemon: `PlanWakes`),
  and every REDERIVE_S whatever happens, so a missed wake leaves them stale for that long
  at most.

A run's verdict reaches its plan in one watch event and one pass of this loop (a GET of the
plan, a LIST of the namespace's runs, a merge patch): well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from modeldr.api.phase import Phase
from modeldr.drills import lastrun, metrics, plans

log = logging.getLogger(__name__)
# The scheduler decides again at least this often (a changed spec also wakes it at once).
MAX_SCHEDULER_SLEEP_S = 60.0
# The last runs are derived again at least this often (a run's move wakes it at once).
REDERIVE_S = 30.0
# A hub that cannot be read is tried again this soon.
RETRY_S = 5.0
# The shortest sleep: a due time is decided just after it, never before.
MIN_SLEEP_S = 0.05


@dataclass
class PlanWake:
    """What wakes one plan's daemon, and why: its spec changed (decide the schedule again),
    one of its runs moved (derive the last runs again; `seen` keeps the run as the event
    showed it), or it is to stop. Set by handlers on the event loop, taken by the daemon."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    # The first pass does both.
    spec_changed: bool = True
    runs_changed: bool = True
    seen: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    stopping: bool = False

    def spec(self) -> None:
        self.spec_changed = True
        self.event.set()

    def run(self, run: Mapping[str, Any]) -> None:
        name = (run.get("metadata") or {}).get("name")
        if name:
            self.seen[str(name)] = copy.deepcopy(dict(run))
        self.runs_changed = True
        self.event.set()

    def stop(self) -> None:
        self.stopping = True
        self.event.set()

    def take(self) -> tuple[bool, bool]:
        """(spec changed, runs changed) since the last take; cleared."""
        self.event.clear()
        taken = (self.spec_changed, self.runs_changed)
        self.spec_changed = self.runs_changed = False
        return taken

    def take_seen(self) -> list[Mapping[str, Any]]:
        """The runs seen since the last derivation (kept until one takes them)."""
        seen, self.seen = list(self.seen.values()), {}
        return seen


class PlanWakes:
    """Every plan daemon's PlanWake, by (namespace, plan), and the phase each DrillRun was
    last seen in: one per operator (kopf's operator memo, which every object's memo shares),
    so a DrillRun's handler can wake its plan's daemon. Used on the event loop only."""

    def __init__(self) -> None:
        self.plans: dict[tuple[str, str], PlanWake] = {}
        self.phases: dict[tuple[str, str], str] = {}

    def register(self, namespace: str, plan: str) -> PlanWake:
        wake = self.plans[(namespace, plan)] = PlanWake()
        return wake

    def drop(self, namespace: str, plan: str, wake: PlanWake) -> None:
        if self.plans.get((namespace, plan)) is wake:
            del self.plans[(namespace, plan)]

    def spec_changed(self, namespace: str, plan: str) -> None:
        """The plan's spec changed: its daemon decides again (none yet: it will at start)."""
        wake = self.plans.get((namespace, plan))
        if wake is not None:
            wake.spec()

    def run_event(self, event_type: str | None, run: Mapping[str, Any]) -> bool:
        """A DrillRun's watch event: its plan's daemon is woken when the run's phase differs
        from the last event's (it started, it ended) or the run went; not for its other
        writes (heartbeats, the live probe). Returns whether it woke one."""
        meta = run.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        plan = lastrun.plan_of(run)
        if not namespace or not name:
            return False
        key = (str(namespace), str(name))
        if event_type == "DELETED":
            self.phases.pop(key, None)
        else:
            phase = str((run.get("status") or {}).get("phase") or Phase.PENDING)
            if self.phases.get(key) == phase:
                return False
            self.phases[key] = phase
            if phase == Phase.PENDING:
                return False  # a new run: nothing to show until it starts
        wake = self.plans.get((str(namespace), plan)) if plan else None
        if wake is None:
            return False
        wake.run(run)
        return True


async def run_plan(
    hub: client.ApiClient,
    namespace: str,
    name: str,
    status_raw: Any,
    wake: PlanWake,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """The plan's daemon: decide the schedule and derive the last runs when woken or due,
    sleep in between. Returns once `wake.stop()` was called (kopf stopping it)."""
    try:
        plans.restore_verdict_metrics(namespace, name, status_raw)
    except ValueError as exc:  # a status no model reads: the next verdicts set them
        log.warning("DrillPlan %s/%s: verdict metrics not restored: %s", namespace, name, exc)
    loop = asyncio.get_running_loop()
    decide_at: float | None = None  # no decision pending until the spec says so
    derive_at = loop.time()
    try:
        while not wake.stopping:
            spec_changed, runs_changed = wake.take()
            if spec_changed or (decide_at is not None and loop.time() >= decide_at):
                decide_at = await decide(hub, namespace, name, clock)
            if runs_changed or loop.time() >= derive_at:
                derive_at = await derive(hub, namespace, name, wake)
            due = derive_at if decide_at is None else min(derive_at, decide_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    wake.event.wait(), timeout=max(due - loop.time(), MIN_SLEEP_S)
                )
    finally:
        metrics.next_schedule(namespace, name, None)


async def decide(
    hub: client.ApiClient, namespace: str, name: str, clock: Callable[[], datetime]
) -> float | None:
    """One decision of the schedule; returns the loop time of the next one (None: the plan
    has no schedule, nothing to decide until its spec changes)."""
    loop = asyncio.get_running_loop()
    try:
        decision, _ = await asyncio.to_thread(plans.schedule_once, hub, namespace, name, clock())
    except Exception as exc:  # the hub unreachable, a 5xx: try again soon
        log.warning("DrillPlan %s/%s: scheduler: %s", namespace, name, exc)
        return loop.time() + RETRY_S
    if decision is None:
        return None
    delay = MAX_SCHEDULER_SLEEP_S
    if decision.next_time is not None:
        # Wake just after the due time, so the decision sees it due.
        until = (decision.next_time - clock()).total_seconds() + MIN_SLEEP_S
        delay = min(max(until, MIN_SLEEP_S), MAX_SCHEDULER_SLEEP_S)
    return loop.time() + delay


async def derive(hub: client.ApiClient, namespace: str, name: str, wake: PlanWake) -> float:
    """The last runs derived and written; returns the loop time of the next derivation (the
    runs seen are kept for it when this one failed)."""
    loop = asyncio.get_running_loop()
    seen = wake.take_seen()
    try:
        await asyncio.to_thread(plans.derive_last_runs, hub, namespace, name, seen)
    except Exception as exc:
        log.warning("DrillPlan %s/%s: lastRun not derived: %s", namespace, name, exc)
        for run in seen:
            wake.seen.setdefault(str(run["metadata"]["name"]), run)
        return loop.time() + RETRY_S
    return loop.time() + REDERIVE_S
