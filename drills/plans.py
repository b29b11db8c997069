"""DrillPlans: one DrillRun per spec generation (none while suspended; a `schedule` is
accepted and said to be not run by this version, never silently ignored), history bounded
by historyLimit, and the plan's status showing its last run and verdict. Blocking calls;
the handlers run them in worker threads."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client

from modeldr.drills.faults.base import FaultError
from modeldr.drills.phase import Phase
from modeldr.drills.runstate import RunRef
from modeldr.drills.spec import DrillPlanSpec, DrillRunSpec, DrillRunStatus
from modeldr.operator import kube
from modeldr.operator.constants import (
    API_VERSION,
    DRILL_PLAN_LABEL,
    DRILLPLAN_KIND,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    VERSION,
)

log = logging.getLogger(__name__)
TIMEOUT = (2, 10)
SCHEDULE_NOT_RUN = (
    "spec.schedule is accepted but this version does not start runs on a schedule: no run "
    "was started; create a DrillRun (spec.planRef.name) to run the plan now"
)


def run_name(plan: str, generation: int) -> str:
    """The run a plan starts for a generation: the same name every time, so a retried
    handler or a restarted operator never starts two."""
    return f"{plan}-{generation}"


def run_manifest(
    plan: str, plan_uid: str, generation: int, spec_raw: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": DRILLRUN_KIND,
        "metadata": {
            "name": run_name(plan, generation),
            "labels": {DRILL_PLAN_LABEL: plan},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": DRILLPLAN_KIND,
                    "name": plan,
                    "uid": plan_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"planRef": {"name": plan}, "plan": spec_raw, "planGeneration": generation},
    }


def reconcile_plan(
    hub: client.ApiClient,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    spec_raw: dict[str, Any],
    status_raw: Any,
) -> dict[str, Any]:
    """Start the generation's run if it is due; returns the plan status fields to write."""
    plan = DrillPlanSpec.parse(spec_raw)
    status: dict[str, Any] = {"observedGeneration": generation}
    if plan.schedule:
        status["scheduleMessage"] = SCHEDULE_NOT_RUN
        return status
    status["scheduleMessage"] = None
    observed = (status_raw or {}).get("observedGeneration")
    if plan.suspend or observed == generation:
        return status
    api = client.CustomObjectsApi(hub)
    manifest = run_manifest(name, uid, generation, spec_raw)
    created = kube.call(
        api.create_namespaced_custom_object, GROUP, VERSION, namespace, DRILLRUNS, manifest,
        _request_timeout=TIMEOUT, conflict=kube.DONE,
    )  # fmt: skip
    if created is not kube.DONE:
        log.info(
            "DrillPlan %s/%s: started DrillRun %s", namespace, name, run_name(name, generation)
        )
    prune_history(hub, namespace, name, plan.history_limit)
    return status


def prune_history(hub: client.ApiClient, namespace: str, plan: str, limit: int) -> int:
    """Delete the oldest ended runs of the plan beyond `limit`; returns how many."""
    api = client.CustomObjectsApi(hub)
    runs = api.list_namespaced_custom_object(
        GROUP, VERSION, namespace, DRILLRUNS, label_selector=f"{DRILL_PLAN_LABEL}={plan}",
        _request_timeout=TIMEOUT,
    )["items"]  # fmt: skip
    ended = [r for r in runs if Phase((r.get("status") or {}).get("phase", "Pending")).is_final]
    ended.sort(key=lambda r: r["metadata"]["creationTimestamp"])
    excess = ended[: max(0, len(ended) - limit)]
    for run in excess:
        kube.call(
            api.delete_namespaced_custom_object, GROUP, VERSION, namespace, DRILLRUNS,
            run["metadata"]["name"], _request_timeout=TIMEOUT, absent=kube.DONE,
        )  # fmt: skip
    return len(excess)


def snapshot_into_run(hub: client.ApiClient, ref: RunRef, spec: DrillRunSpec) -> DrillPlanSpec:
    """A run created by hand names only its plan: copy the plan's spec into the run before
    anything is touched, so the run records what it executed."""
    api = client.CustomObjectsApi(hub)
    plan = kube.call(
        api.get_namespaced_custom_object, GROUP, VERSION, ref.namespace, DRILLPLANS,
        spec.plan_ref.name, _request_timeout=TIMEOUT, absent=None,
    )  # fmt: skip
    if plan is None:
        raise FaultError(
            "PlanNotFound", f"DrillPlan {ref.namespace}/{spec.plan_ref.name} does not exist"
        )
    snapshot = plan.get("spec") or {}
    patch = {"spec": {"plan": snapshot, "planGeneration": plan["metadata"].get("generation")}}
    api.patch_namespaced_custom_object(
        GROUP, VERSION, ref.namespace, DRILLRUNS, ref.name, patch, _request_timeout=TIMEOUT
    )
    return DrillPlanSpec.parse(snapshot)


def record_last_run(hub: client.ApiClient, ref: RunRef, plan: str, status: DrillRunStatus) -> None:
    """The plan's status.lastRun: this run and its phase (best-effort: the run's own status
    is the record)."""
    if not plan:
        return
    last = {
        "name": ref.name,
        "phase": str(status.phase),
        "reason": status.reason,
        "startedAt": status.started_at.isoformat() if status.started_at else None,
        "finishedAt": status.finished_at.isoformat() if status.finished_at else None,
    }
    api = client.CustomObjectsApi(hub)
    try:
        kube.call(
            api.patch_namespaced_custom_object_status, GROUP, VERSION, ref.namespace, DRILLPLANS,
            plan, {"status": {"lastRun": last}}, _request_timeout=TIMEOUT, absent=kube.DONE,
        )  # fmt: skip
    except Exception as exc:
        log.warning("DrillPlan %s/%s: lastRun not written: %s", ref.namespace, plan, exc)
