"""DrillPlans: one DrillRun per spec generation for a plan without a schedule, runs on time
for a plan with one (the decisions are kube/schedule.py's), none while suspended; history
bounded by historyLimit; the plan's status derived from its runs (drills/lastrun.py).

The plan's status has one writer, the plan's own handlers (drills/handlers.py): its
create/update handler writes `observedGeneration` (through kopf, after `reconcile_plan`),
its daemon (drills/plandaemon.py) every other field, through the blocking calls here
(`schedule_once`, `derive_last_runs`), each a merge patch of its own fields only. Runs
never write their plan. Blocking calls: run them in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.drillstatus import DrillPlanStatus
from modeldr.api.phase import Phase
from modeldr.drills import gameday, lastrun, metrics
from modeldr.drills.manifests import run_manifest, run_name
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunRef
from modeldr.kube import k8s
from modeldr.kube.constants import (
    DRILL_PLAN_LABEL,
    DRILLPLANS,
    DRILLRUNS,
    GROUP,
    VERSION,
)
from modeldr.kube.events import post_event
from modeldr.kube.schedule import (
    MISS_REASONS,
    Decision,
    Schedule,
    ScheduleError,
    decide,
    stamp,
)

log = logging.getLogger(__name__)
TIMEOUT = (2, 10)


def reconcile_plan(
    hub: client.ApiClient,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    spec_raw: dict[str, Any],
    status_raw: Any,
) -> dict[str, Any]:
    """Start the generation's run if it is due; returns the plan status fields to write (the
    handler's own: observedGeneration). A scheduled plan starts its runs on time instead;
    the daemon writes the schedule's fields (set or cleared) and the last runs."""
    plan = DrillPlanSpec.parse(spec_raw)
    status: dict[str, Any] = {"observedGeneration": generation}
    observed = (status_raw or {}).get("observedGeneration")
    if plan.schedule or plan.suspend or observed == generation:
        return status
    first = run_name(name, generation)
    manifest = run_manifest(name, uid, generation, spec_raw, labels=series_labels(plan, first))
    if create_run(hub, namespace, manifest):
        log.info("DrillPlan %s/%s: started DrillRun %s", namespace, name, first)
    prune_history(hub, namespace, name, plan.history_limit)
    return status


def prune_history(hub: client.ApiClient, namespace: str, plan: str, limit: int) -> int:
    """Delete the oldest ended runs of the plan beyond `limit`; returns how many."""
    api = client.CustomObjectsApi(hub)
    runs = api.list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        DRILLRUNS,
        label_selector=f"{DRILL_PLAN_LABEL}={plan}",
        _request_timeout=TIMEOUT,
    )["items"]
    ended = [r for r in runs if Phase((r.get("status") or {}).get("phase", "Pending")).is_final]
    ended.sort(key=lambda r: r["metadata"]["creationTimestamp"])
    excess = ended[: max(0, len(ended) - limit)]
    for run in excess:
        k8s.call(
            api.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DRILLRUNS,
            run["metadata"]["name"],
            _request_timeout=TIMEOUT,
            absent=k8s.DONE,
        )
    return len(excess)


def snapshot_into_run(hub: client.ApiClient, ref: RunRef, spec: DrillRunSpec) -> DrillPlanSpec:
    """A run created by hand names only its plan: copy the plan's spec into the run before
    anything is touched, so the run records what it executed."""
    api = client.CustomObjectsApi(hub)
    plan = k8s.call(
        api.get_namespaced_custom_object,
        GROUP,
        VERSION,
        ref.namespace,
        DRILLPLANS,
        spec.plan_ref.name,
        _request_timeout=TIMEOUT,
        absent=None,
    )
    if plan is None:
        raise Refusal(
            "PlanNotFound", f"DrillPlan {ref.namespace}/{spec.plan_ref.name} does not exist"
        )
    snapshot = plan.get("spec") or {}
    # The plan's label, as the runs the operator and the CLI make carry it: the run then
    # counts in the plan's history (pruned by the same historyLimit) and its lists.
    patch = {
        "metadata": {"labels": {DRILL_PLAN_LABEL: spec.plan_ref.name}},
        "spec": {"plan": snapshot, "planGeneration": plan["metadata"].get("generation")},
    }
    api.patch_namespaced_custom_object(
        GROUP, VERSION, ref.namespace, DRILLRUNS, ref.name, patch, _request_timeout=TIMEOUT
    )
    return DrillPlanSpec.parse(snapshot)


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- schedules


def active_runs(hub: client.ApiClient, namespace: str, plan: str) -> list[str]:
    """The plan's runs not ended yet (a run just created has no phase: Pending)."""
    api = client.CustomObjectsApi(hub)
    runs = api.list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        DRILLRUNS,
        label_selector=f"{DRILL_PLAN_LABEL}={plan}",
        _request_timeout=TIMEOUT,
    )["items"]
    return sorted(
        r["metadata"]["name"]
        for r in runs
        if not Phase((r.get("status") or {}).get("phase") or "Pending").is_final
    )


def schedule_once(
    hub: client.ApiClient, namespace: str, name: str, now: datetime
) -> tuple[Decision | None, str | None]:
    """One decision of a scheduled plan's scheduler at `now`, carried out: the run started,
    the misses recorded (status, Event, metric), the plan's schedule status written.
    Returns the decision (None: the plan is gone, or has no schedule: what its schedule
    said is cleared) and the message."""
    obj = _read_plan(hub, namespace, name)
    if obj is None:
        return None, None
    if not (obj.get("spec") or {}).get("schedule"):
        _unscheduled(hub, namespace, name, obj.get("status") or {})
        return None, None
    metrics.schedule_started(namespace, name, MISS_REASONS)
    spec_raw = dict(obj["spec"])
    plan = DrillPlanSpec.parse(spec_raw)
    assert plan.schedule is not None
    status = DrillPlanStatus.parse(obj.get("status"))
    meta = obj["metadata"]
    try:
        schedule = Schedule.parse(plan.schedule, plan.time_zone)
    except ScheduleError as exc:
        return Decision(), _schedule_invalid(hub, obj, status, str(exc))
    after = (
        status.scheduled_through
        or status.last_schedule_time
        or parse_time(meta.get("creationTimestamp"))
        or now
    )
    decision = decide(
        schedule,
        after=after,
        now=now,
        starting_deadline_seconds=plan.starting_deadline_seconds,
        active_runs=active_runs(hub, namespace, name) if not plan.suspend else [],
        concurrency_policy=plan.concurrency_policy,
        suspended=plan.suspend,
    )
    fields: dict[str, Any] = {}
    if decision.start is not None:
        _start_scheduled_run(hub, obj, spec_raw, schedule.run_name(name, decision.start), decision)
        fields["lastScheduleTime"] = stamp(decision.start)
    fields |= _record_misses(obj, status, decision)
    if decision.handled_through is not None:
        fields["scheduledThrough"] = stamp(decision.handled_through)
    nxt = decision.next_time
    fields["nextScheduleTime"] = stamp(nxt) if nxt else None
    message = _schedule_message(plan, nxt)
    fields["scheduleMessage"] = message
    write_status(hub, namespace, name, fields)
    metrics.next_schedule(namespace, name, nxt.timestamp() if nxt else None)
    return decision, message


def _unscheduled(hub: client.ApiClient, namespace: str, name: str, status: dict[str, Any]) -> None:
    """A plan without a schedule (or whose schedule was removed): no next due time, no
    schedule message (written only when there is one to clear)."""
    if status.get("scheduleMessage") is not None or status.get("nextScheduleTime") is not None:
        write_status(hub, namespace, name, {"scheduleMessage": None, "nextScheduleTime": None})
    metrics.next_schedule(namespace, name, None)


def _read_plan(hub: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    api = client.CustomObjectsApi(hub)
    obj: dict[str, Any] | None = k8s.call(
        api.get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        DRILLPLANS,
        name,
        _request_timeout=TIMEOUT,
        absent=None,
    )
    return obj


def _schedule_invalid(
    hub: client.ApiClient, obj: dict[str, Any], status: DrillPlanStatus, error: str
) -> str:
    """A schedule that cannot be read starts nothing; said once (status, Event)."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    invalid = f"{error}: no run starts until it is fixed"
    if status.schedule_message != invalid:
        write_status(hub, namespace, name, {"scheduleMessage": invalid, "nextScheduleTime": None})
        post_event(obj, "Warning", "ScheduleInvalid", invalid)
    metrics.next_schedule(namespace, name, None)
    return invalid


def _start_scheduled_run(
    hub: client.ApiClient,
    obj: dict[str, Any],
    spec_raw: dict[str, Any],
    run: str,
    decision: Decision,
) -> None:
    """Create the run for the due time (named after it: a retry never starts two)."""
    assert decision.start is not None
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    plan = DrillPlanSpec.parse(spec_raw)
    manifest = run_manifest(
        name,
        meta["uid"],
        int(meta.get("generation") or 1),
        spec_raw,
        run,
        decision.start,
        series_labels(plan, run),
    )
    if create_run(hub, namespace, manifest):
        log.info("DrillPlan %s/%s: schedule started DrillRun %s", namespace, name, run)


def _record_misses(
    obj: dict[str, Any], status: DrillPlanStatus, decision: Decision
) -> dict[str, Any]:
    """Due times that started no run: counted (metric), said (Event), and the status fields
    that record them."""
    meta = obj["metadata"]
    for miss in decision.misses:
        metrics.SCHEDULED_MISSED.labels(meta["namespace"], meta["name"], miss.reason).inc()
    if not decision.misses:
        return {}
    last = decision.misses[-1]
    missed = len(decision.misses)
    text = last.message + (" (and earlier due times not counted)" if decision.uncounted else "")
    post_event(
        obj,
        "Warning",
        "ScheduleMissed",
        f"{missed} due time(s) started no run: {last.reason}: {text}",
    )
    return {
        "missedSchedules": status.missed_schedules + missed,
        "lastMissedSchedule": {
            "scheduledTime": stamp(last.scheduled),
            "reason": last.reason,
            "message": text,
        },
    }


def _schedule_message(plan: DrillPlanSpec, nxt: datetime | None) -> str | None:
    if plan.suspend:
        return "suspended: no run starts until spec.suspend is false"
    if nxt is not None:
        return f"next run due at {stamp(nxt)} ({plan.schedule}, {plan.time_zone or 'UTC'})"
    return None


def write_status(hub: client.ApiClient, namespace: str, name: str, fields: dict[str, Any]) -> None:
    """A merge patch of the plan's status with these fields only (the daemon's; the
    create/update handler writes observedGeneration, through kopf)."""
    api = client.CustomObjectsApi(hub)
    k8s.call(
        api.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        DRILLPLANS,
        name,
        {"status": fields},
        _request_timeout=TIMEOUT,
        absent=k8s.DONE,
    )


# ----------------------------------------------------------------------- the last runs


def derive_last_runs(
    hub: client.ApiClient, namespace: str, name: str, seen: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The plan's lastRun and lastScheduledRun derived from its runs (drills/lastrun.py) and
    written when they changed; returns what was written ({}: nothing changed, or the plan is
    gone). `seen`: runs as their last watch events showed them, for those the list no longer
    has (deleted between the event and the list: their end still counts)."""
    obj = _read_plan(hub, namespace, name)
    if obj is None:
        return {}
    api = client.CustomObjectsApi(hub)
    runs: list[Mapping[str, Any]] = list(
        api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, DRILLRUNS, _request_timeout=TIMEOUT
        )["items"]
    )
    listed = {run["metadata"]["name"] for run in runs}
    runs += [run for run in seen if (run.get("metadata") or {}).get("name") not in listed]
    fields = lastrun.derive(runs, name, obj.get("status"))
    fields |= continue_series(hub, obj, [run for run in runs if lastrun.plan_of(run) == name])
    if fields:
        write_status(hub, namespace, name, fields)
    return fields


# ----------------------------------------------------------------------- game days


def series_labels(plan: DrillPlanSpec, first: str) -> dict[str, str] | None:
    """The labels of a plan's start when it begins a game-day series (spec.repeat)."""
    if plan.repeat is None:
        return None
    return {gameday.SERIES_LABEL: first, gameday.INDEX_LABEL: "1"}


def continue_series(
    hub: client.ApiClient, obj: Mapping[str, Any], runs: list[Mapping[str, Any]]
) -> dict[str, Any]:
    """The latest game-day series: its next run started when one is due (drills/gameday.py);
    returns the status fields that changed ({"passRate": ...} or {})."""
    try:
        plan = DrillPlanSpec.parse(obj.get("spec") or {})
    except ValueError:
        return {}
    found = gameday.series_runs(runs)
    series = gameday.latest_series(found)
    if plan.repeat is None or series is None:
        return {}
    meta = obj["metadata"]
    generation = int(meta.get("generation") or 1)
    state = gameday.assess_series(series, found[series], plan.repeat, generation)
    if state.next_index is not None and not plan.suspend:
        _start_repeat(hub, obj, series, state.next_index, generation)
    rate = state.pass_rate()
    before = (obj.get("status") or {}).get("passRate") or {}
    if rate == before:
        return {}
    if state.state != before.get("state") and state.state in ("Satisfied", "Exhausted"):
        kind = "Normal" if state.state == "Satisfied" else "Warning"
        post_event(dict(obj), kind, f"GameDay{state.state}", state.message)
    return {"passRate": rate}


def _start_repeat(
    hub: client.ApiClient, obj: Mapping[str, Any], series: str, index: int, generation: int
) -> None:
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    run = gameday.repeat_name(series, index)
    labels = {gameday.SERIES_LABEL: series, gameday.INDEX_LABEL: str(index)}
    manifest = run_manifest(name, meta["uid"], generation, dict(obj["spec"]), run, labels=labels)
    if create_run(hub, namespace, manifest):
        log.info("DrillPlan %s/%s: game day %s started DrillRun %s", namespace, name, series, run)


def restore_verdict_metrics(namespace: str, name: str, status_raw: Any) -> None:
    """After a restart, the last verdicts come back from the plan's status, so an alert on
    a failed scheduled drill holds until the next run passes."""
    status = DrillPlanStatus.parse(status_raw)
    for trigger, last in (("manual", status.last_run), ("schedule", status.last_scheduled_run)):
        if last is None or not last.phase.is_final or last.finished_at is None:
            continue
        if trigger == "manual" and last.scheduled_time is not None:
            continue  # the scheduled one is restored as such
        metrics.last_verdict(
            namespace,
            name,
            trigger,
            str(last.phase),
            last.reason,
            last.finished_at.timestamp(),
            last.rto_seconds,
        )


def create_run(hub: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> bool:
    """Create the DrillRun; False when one of that name exists already (a retry, another
    replica's decision): a run is never started twice."""
    created = k8s.call(
        client.CustomObjectsApi(hub).create_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        DRILLRUNS,
        manifest,
        _request_timeout=TIMEOUT,
        conflict=k8s.DONE,
    )
    return created is not k8s.DONE
