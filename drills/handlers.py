"""The drills' kopf registrations, and nothing else: each handler takes what it needs from
kopf's memo (the operator's startup puts the host there, `drills.host`; the drills' startup
the plans' wakes, `drills.plandaemon.PlanWakes`) and delegates.

| handler | what | where |
| --- | --- | --- |
| startup | the plans' wakes, in the operator memo | drills.plandaemon |
| DrillPlan create/update/resume | a DrillRun per generation; observedGeneration | drills.plans |
| DrillPlan daemon | one per plan: its schedule, the rest of its status | drills.plandaemon |
| DrillPlan delete | drops the plan's metrics | drills.metrics |
| DrillRun event | its phase changed, or it went: wakes its plan's daemon | drills.plandaemon |
| DrillRun daemon | runs the drill, or rolls back a run a dead leader left Running | drills.run |
| DrillRun delete | undoes what a deleted run left | drills.run |

DrillPlans start DrillRuns; a daemon per unfinished DrillRun runs the drill engine; the
DrillRun's finalizer undoes what a deleted run left. A plan's status has one writer, the
plan's own handlers: its daemon writes the schedule's fields (a scheduled plan's runs start
on time), lastRun and lastScheduledRun (derived from its runs), the create/update handler
observedGeneration: disjoint fields, each written as a merge patch of its own. A run writes
only itself; its events wake its plan's daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from modeldr.api.phase import Phase
from modeldr.drills import lastrun, plandaemon, plans
from modeldr.drills import metrics as drill_metrics
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
# The operator memo's PlanWakes: every plan daemon's wake, set by the plan's spec changes and
# by its runs' events.
PLAN_WAKES_KEY = "drill-plan-wakes"
# A stopping plan daemon returns at once (it holds nothing to undo).
PLAN_CANCELLATION_TIMEOUT_S = 5.0
# A deleted run whose faults cannot be undone is retried this often, this many times
# (about 5 minutes), then let go with a Warning Event naming what is left.
DRILL_DELETE_RETRY_S = 10
DRILL_DELETE_RETRIES = 30


@kopf.on.startup()
async def drills_startup(memo: kopf.Memo, **_: Any) -> None:
    """The plans' wakes, in the operator memo (before any object's memo copies it)."""
    if not isinstance(memo.get(PLAN_WAKES_KEY), plandaemon.PlanWakes):
        memo[PLAN_WAKES_KEY] = plandaemon.PlanWakes()


def plan_wakes(memo: Any) -> plandaemon.PlanWakes:
    wakes = memo.get(PLAN_WAKES_KEY)
    if not isinstance(wakes, plandaemon.PlanWakes):
        raise RuntimeError("the plans' wakes are not in kopf's memo: did the drills' startup run?")
    return wakes


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
    """One run per spec generation (none while suspended); observedGeneration says which
    generation was handled. The plan's daemon decides its schedule again."""
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
    plan_wakes(memo).spec_changed(namespace, name)


@kopf.daemon(GROUP, VERSION, DRILLPLANS, cancellation_timeout=PLAN_CANCELLATION_TIMEOUT_S)
async def drillplan_daemon(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Every plan's: its schedule, its last runs; the writer of its status (but
    observedGeneration). Returns as soon as kopf stops it (plan deleted, operator stopping)."""
    assert namespace is not None
    wakes = plan_wakes(memo)
    wake = wakes.register(namespace, name)

    async def stop_when_stopped() -> None:
        await stopped.wait()
        wake.stop()

    watch = asyncio.create_task(stop_when_stopped())
    try:
        await plandaemon.run_plan(host_of(memo).hub, namespace, name, dict(status), wake)
    finally:
        watch.cancel()
        wakes.drop(namespace, name, wake)


@kopf.on.delete(GROUP, VERSION, DRILLPLANS, optional=True)
def drillplan_deleted(name: str, namespace: str | None, **_: Any) -> None:
    """The plan's runs go by garbage collection; its gauges here. Optional: it needs no
    finalizer of its own (the daemon's holds the plan until the daemon stopped)."""
    assert namespace is not None
    drill_metrics.forget_plan(namespace, name)


def drillrun_finished(status: kopf.Status) -> bool:
    return Phase(status.get("phase") or "Pending").is_final


@kopf.on.event(GROUP, VERSION, DRILLRUNS)
async def drillrun_moved(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """A run started, ended or went: its plan's daemon derives lastRun at once. A run that
    went (pruned by the history limit, deleted by hand) takes its metric series with it.
    Writes nothing. Async: it runs on the event loop, where the daemon waits on its wake."""
    run = event.get("object") or {}
    plan_wakes(memo).run_event(event.get("type"), run)
    meta = run.get("metadata") or {}
    plan = lastrun.plan_of(run)
    if event.get("type") == "DELETED" and plan and meta.get("namespace") and meta.get("name"):
        drill_metrics.forget(str(meta["namespace"]), plan, str(meta["name"]))


# No `when` filter: kopf would stop the daemon the moment the run writes its verdict, while
# it still writes its report and bounds the plan's history. A daemon of a finished run
# returns at once instead.
@kopf.daemon(GROUP, VERSION, DRILLRUNS, cancellation_timeout=DRILL_CANCELLATION_TIMEOUT_S)
async def drillrun_daemon(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
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
        # The version and status read together fence this operator's status writes.
        version = meta.get("resourceVersion")
        await drill_run.execute_run(
            host_of(memo), ref, dict(spec), dict(status), stop_reason, version=version
        )
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
