"""The drills' kopf registrations, and nothing else: each handler takes what it needs from
kopf's memo (the operator's startup puts the host there, `drills.host`) and delegates.

| handler | what | where |
| --- | --- | --- |
| DrillPlan create/update/resume | one DrillRun per spec generation, plan status | drills.plans |
| DrillPlan daemon | one per scheduled plan: runs start on time | drills.plans.run_schedule |
| DrillPlan delete | drops the plan's metrics (no finalizer) | drills.metrics |
| DrillRun daemon | runs the drill, or rolls back a run a dead leader left Running | drills.run |
| DrillRun delete | undoes what a deleted run left | drills.run |

DrillPlans start DrillRuns; a daemon per unfinished DrillRun runs the drill engine; the
DrillRun's finalizer undoes what a deleted run left.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from modeldr.api.phase import Phase
from modeldr.drills import metrics as drill_metrics
from modeldr.drills import plans
from modeldr.drills import run as drill_run
from modeldr.drills.host import host_of
from modeldr.drills.runstate import RunRef
from modeldr.kube.constants import DRILLPLANS, DRILLRUNS, GROUP, VERSION
from modeldr.kube.events import post_event

# A stopping daemon gets this long to undo its faults (an outage's restore takes a while).
DRILL_CANCELLATION_TIMEOUT_S = 300.0
# The deletion handler waits this long for a running engine to finish undoing.
DRILL_DELETE_WAIT_S = 240.0
DRILL_DONE_KEY = "drill-done"
# Per scheduled plan, an asyncio.Event its scheduler waits on: set when the spec changes.
SCHEDULE_WAKES_KEY = "drill-schedule-wakes"
# A deleted run whose faults cannot be undone is retried this often, this many times
# (about 5 minutes), then let go with a Warning Event naming what is left.
DRILL_DELETE_RETRY_S = 10
DRILL_DELETE_RETRIES = 30


@kopf.on.create(GROUP, VERSION, DRILLPLANS)
@kopf.on.update(GROUP, VERSION, DRILLPLANS, field="spec")
@kopf.on.resume(GROUP, VERSION, DRILLPLANS)
async def drillplan_changed(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """One run per spec generation (none while suspended); status says what was done."""
    assert namespace is not None
    fields = await asyncio.to_thread(
        plans.reconcile_plan,
        host_of(memo).hub,
        namespace,
        name,
        uid,
        int(meta.get("generation") or 0),
        dict(spec),
        dict(status),
    )
    patch.status.update(fields)
    schedule_wake(memo, namespace, name).set()


def schedule_wake(memo: kopf.Memo, namespace: str, name: str) -> asyncio.Event:
    wakes: dict[tuple[str, str], asyncio.Event] = memo.setdefault(SCHEDULE_WAKES_KEY, {})
    return wakes.setdefault((namespace, name), asyncio.Event())


def scheduled(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("schedule"))


@kopf.daemon(GROUP, VERSION, DRILLPLANS, when=scheduled, cancellation_timeout=5.0)
async def drillplan_scheduler(
    name: str, namespace: str | None, status: kopf.Status, memo: kopf.Memo, **_: Any
) -> None:
    """Runs of a scheduled plan start on time (kopf stops it when the schedule goes)."""
    assert namespace is not None
    try:
        await plans.run_schedule(
            host_of(memo).hub,
            namespace,
            name,
            dict(status),
            schedule_wake(memo, namespace, name),
        )
    finally:
        memo.get(SCHEDULE_WAKES_KEY, {}).pop((namespace, name), None)


@kopf.on.delete(GROUP, VERSION, DRILLPLANS, optional=True)
def drillplan_deleted(name: str, namespace: str | None, **_: Any) -> None:
    """No finalizer (optional): the plan's runs go by garbage collection; its gauges here."""
    assert namespace is not None
    drill_metrics.forget_plan(namespace, name)


def drillrun_finished(status: kopf.Status) -> bool:
    return Phase(status.get("phase") or "Pending").is_final


# No `when` filter: kopf would stop the daemon the moment the run writes its verdict, while
# it still records the plan's lastRun. A daemon of a finished run returns at once instead.
@kopf.daemon(GROUP, VERSION, DRILLRUNS, cancellation_timeout=DRILL_CANCELLATION_TIMEOUT_S)
async def drillrun_daemon(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    assert namespace is not None
    if drillrun_finished(status):
        return
    done = memo.setdefault(DRILL_DONE_KEY, asyncio.Event())
    done.clear()

    def stop_reason() -> tuple[str, str] | None:
        if spec.get("abort"):
            return "StoppedByHand", "spec.abort was set: the run was stopped by hand"
        if not stopped:
            return None
        if stopped.reason and kopf.DaemonStoppingReason.RESOURCE_DELETED in stopped.reason:
            return "RunDeleted", "the DrillRun was deleted mid-run"
        return "OperatorStopping", "the operator stopped mid-run"

    try:
        ref = RunRef(namespace, name, uid)
        await drill_run.execute_run(host_of(memo), ref, dict(spec), dict(status), stop_reason)
    finally:
        done.set()


@kopf.on.delete(GROUP, VERSION, DRILLRUNS)
async def drillrun_deleted(
    name: str,
    namespace: str | None,
    uid: str,
    status: kopf.Status,
    memo: kopf.Memo,
    retry: int,
    **_: Any,
) -> None:
    """Undo whatever the deleted run left (its engine, if running, undoes first). Retried
    while a fault cannot be undone, for a bounded time: a member gone for good must not keep
    the run (and its plan) from going; the Event says what was left."""
    assert namespace is not None
    done = memo.get(DRILL_DONE_KEY)
    if isinstance(done, asyncio.Event) and not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=DRILL_DELETE_WAIT_S)
    ref = RunRef(namespace, name, uid)
    left = await drill_run.undo_on_delete(host_of(memo), ref, status)
    if not left:
        return
    what = ", ".join(left)
    if retry + 1 >= DRILL_DELETE_RETRIES:
        post_event(
            ref.body(),
            "Warning",
            "FaultsAbandoned",
            f"deleted with faults that could not be undone: {what}",
        )
        return
    raise kopf.TemporaryError(f"faults not undone yet: {what}", delay=DRILL_DELETE_RETRY_S)
