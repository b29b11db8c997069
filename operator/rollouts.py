"""The daemon's part of a verified rollout (operator/rollout.py decides): read what each
cluster serves, verify the new version once the standby serves it, and act on the verdict.

Verifying the standby (a task beside the ticks, like the evaluation after a switch):

1. the golden set (spec.evaluation) answered by the primary, the version serving now: the
   reference, and its accuracy and F1;
2. the same set answered by the standby's servers, which must each report the new digest
   (V2 model metadata), scored against the labels (spec.evaluation's minimums), against
   the reference (`spec.rollout.minAgreement`, unset: reported only) and against the serving
   version's F1 (`spec.rollout.maxF1Drop`, default 0: at least as good);
3. `spec.rollout.drillPlan`, when set: a DrillRun of that plan (it must target this
   ModelDeployment), which must end Passed.

Any miss, or missing evidence (a cluster that does not answer, a plan that cannot run), rolls
the standby back. The evidence goes to status.rollout.evaluation and its message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kopf
from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec, ModelSpec
from modeldr.kube import k8s
from modeldr.kube.constants import DRILL_PLAN_LABEL, GROUP, MODELDEPLOYMENTS, ROLES, VERSION, Role
from modeldr.kube.events import post_event
from modeldr.operator import rollout
from modeldr.operator.daemonstate import DaemonState, cluster_of
from modeldr.operator.evaluation import (
    EvaluationError,
    Outcome,
    Reference,
    evaluate,
    load_golden_set,
)
from modeldr.operator.monitor import Snapshot
from modeldr.operator.status import observed_digest

log = logging.getLogger(__name__)

DRILL_POLL_S = 2.0
DRILL_WAIT_S = 3600.0  # the longest a drill of a plan may take (its deadline is shorter)
FINAL = ("Passed", "Failed", "Aborted", "Error", "Inconclusive")


@dataclass
class Verdict:
    ok: bool
    message: str
    evaluation: dict[str, Any] | None = None
    drill_run: str | None = None
    misses: list[str] = field(default_factory=list)


def served_digest(snapshot: Snapshot, namespace: str, name: str) -> str | None:
    """The digest every replica of the role runs (None while some still run another or
    none is ready)."""
    deployment = snapshot.deployments.get((namespace, name))
    status = (deployment or {}).get("status") or {}
    if int(status.get("replicas") or 0) > int(status.get("updatedReplicas") or 0):
        return None  # replicas of the previous template still run
    return observed_digest(deployment)


async def advance_rollout(
    ctl: DaemonState,
    body: kopf.Body,
    spec: ModelDeploymentSpec,
    snapshots: dict[Role, Snapshot],
    urls: dict[Role, list[str]],
    annotations: dict[str, str],
    status_raw: Any,
    now: datetime,
) -> dict[Role, ModelSpec]:
    """This tick's rollout; returns the model each role runs."""
    state = ctl.rollout
    if not state.loaded:
        state.status, state.loaded = (status_raw or {}).get("rollout"), True
    served: dict[Role, str | None] = {
        role: served_digest(snapshots[role], spec.member(role).namespace, ctl.name)
        for role in ROLES
    }
    wanted = annotations.get(rollout.ROLLOUT_ANNOTATION)
    request: rollout.Request | None = (
        "promote" if wanted == "promote" else "abort" if wanted == "abort" else None
    )
    step = rollout.step(spec, state.status, served, request, now)
    verdict = collect(state, step.status)
    if verdict is not None and step.status is not None and request is None:
        step = act_on(spec, step.status, verdict, now)
    if (step.status or {}).get("phase") != rollout.VERIFYING:
        state.cancel()
    elif step.verify and state.task is None and ctl.state.active == "primary":
        start(ctl, spec, step.status or {}, urls)
    for event_type, reason, message in step.events:
        post_event(body, event_type, reason, message)
    state.status = step.status
    if step.clear_request and rollout.ROLLOUT_ANNOTATION in annotations:
        await asyncio.to_thread(remove_request, ctl)
    return step.models


def collect(state: rollout.RolloutState, current: dict[str, Any] | None) -> Verdict | None:
    """The verification's verdict once it finished, for the version still being verified."""
    task = state.task
    if task is None or not task.done():
        return None
    digest = state.task_for
    state.task, state.task_for = None, None
    if current is None or (current.get("to") or {}).get("expectedDigest") != digest:
        return None  # the rollout moved on meanwhile
    try:
        verdict: Verdict = task.result()
    except Exception as exc:  # a bug in the verification: the version is not verified
        log.exception("rollout verification failed")
        verdict = Verdict(False, f"verification failed: {type(exc).__name__}: {exc}")
    return verdict


def act_on(
    spec: ModelDeploymentSpec, current: dict[str, Any], verdict: Verdict, now: datetime
) -> rollout.RolloutStep:
    evidence = dict(current, evaluation=verdict.evaluation, drillRun=verdict.drill_run)
    if verdict.ok:
        return rollout.promote(spec, evidence, f"verified on the standby: {verdict.message}")
    return rollout.rolled_back(spec, evidence, verdict.message, now)


def start(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    current: dict[str, Any],
    urls: dict[Role, list[str]],
) -> None:
    state = ctl.rollout
    state.task = asyncio.create_task(
        verify_new_version(ctl, spec, current, urls), name=f"rollout {ctl.namespace}/{ctl.name}"
    )
    state.task_for = (current.get("to") or {}).get("expectedDigest")
    wake = ctl.wake
    if wake is not None:
        state.task.add_done_callback(lambda _: wake())


async def verify_new_version(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    current: dict[str, Any],
    urls: dict[Role, list[str]],
) -> Verdict:
    settings = spec.evaluation
    settings_rollout = spec.rollout
    if settings is None or settings_rollout is None:
        return Verdict(False, "spec.evaluation is needed to verify a new version")
    old, new = ModelSpec.model_validate(current["from"]), ModelSpec.model_validate(current["to"])
    try:
        golden = await asyncio.to_thread(load_golden_set, ctl.runtime.hub, ctl.namespace, settings)
    except EvaluationError as exc:
        return Verdict(False, f"not verified: {exc}")
    primary, standby = cluster_of(spec, "primary"), cluster_of(spec, "standby")
    serving = await evaluate(
        settings,
        golden,
        primary,
        urls["primary"],
        old.name,
        old.expected_digest,
        None,
        baseline=True,
    )
    if serving.answers is None or serving.scores is None:
        return Verdict(False, f"not verified: the serving version: {serving.message}")
    reference = Reference(primary, serving.answers, old.expected_digest, serving.golden_digest)
    agreement = settings_rollout.min_agreement
    candidate = await evaluate(
        settings.model_copy(update={"min_agreement": agreement or 0.0}),
        golden,
        standby,
        urls["standby"],
        new.name,
        new.expected_digest,
        reference,
    )
    evidence = candidate.to_status() | {
        "referenceAccuracy": serving.scores.accuracy,
        "referenceF1": serving.scores.f1,
    }
    misses = [] if candidate.outcome is Outcome.VERIFIED else [candidate.message]
    floor = serving.scores.f1 - settings_rollout.max_f1_drop
    if candidate.scores is not None and candidate.scores.f1 < floor - 1e-9:
        misses.append(
            f"F1 {candidate.scores.f1:.4f} below the serving version's {serving.scores.f1:.4f}"
            f" - maxF1Drop {settings_rollout.max_f1_drop:g}"
        )
    if misses:
        return Verdict(False, "; ".join(misses), evidence)
    summary = candidate.message
    if settings_rollout.drill_plan:
        run, phase, why = await drill(ctl, settings_rollout.drill_plan, new.expected_digest)
        if phase != "Passed":
            return Verdict(False, f"{summary}; drill {run}: {phase}: {why}", evidence, run)
        return Verdict(True, f"{summary}; drill {run} Passed", evidence, run)
    return Verdict(True, summary, evidence)


async def drill(ctl: DaemonState, plan: str, digest: str) -> tuple[str, str, str]:
    """Run `plan` once (a DrillRun naming it, as by hand) and wait for its verdict:
    (run, phase, message); the plan must target this ModelDeployment."""
    api = client.CustomObjectsApi(ctl.runtime.hub)
    name = f"{plan[:40]}-rollout-{digest.rpartition(':')[2][:8]}"
    try:
        body = await asyncio.to_thread(
            api.get_namespaced_custom_object, GROUP, VERSION, ctl.namespace, "drillplans", plan
        )
    except client.ApiException as exc:
        return name, "Error", f"DrillPlan {plan}: {exc.status} {exc.reason}"
    target = ((body.get("spec") or {}).get("target") or {}).get("modelDeployment")
    if target != ctl.name:
        return name, "Error", f"DrillPlan {plan} targets {target!r}, not {ctl.name}"
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DrillRun",
        "metadata": {"name": name, "labels": {DRILL_PLAN_LABEL: plan}},
        "spec": {"planRef": {"name": plan}},
    }
    await asyncio.to_thread(
        k8s.call,
        api.create_namespaced_custom_object,
        GROUP,
        VERSION,
        ctl.namespace,
        "drillruns",
        manifest,
        conflict=k8s.DONE,
    )
    deadline = time.monotonic() + DRILL_WAIT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(DRILL_POLL_S)
        try:
            run = await asyncio.to_thread(
                api.get_namespaced_custom_object, GROUP, VERSION, ctl.namespace, "drillruns", name
            )
        except client.ApiException as exc:
            return name, "Error", f"DrillRun {name}: {exc.status} {exc.reason}"
        status = run.get("status") or {}
        if status.get("phase") in FINAL:
            return name, str(status["phase"]), str(status.get("message") or "")
    return name, "Error", f"no verdict within {DRILL_WAIT_S:.0f} s"


def remove_request(ctl: DaemonState) -> None:
    client.CustomObjectsApi(ctl.runtime.hub).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ctl.namespace,
        MODELDEPLOYMENTS,
        ctl.name,
        {"metadata": {"annotations": {rollout.ROLLOUT_ANNOTATION: None}}},
        _request_timeout=(2, 5),
    )
