"""When the daemon evaluates the model (operator/evaluation.py) and what it does with the
outcome: a baseline of the active cluster when there is no reference, an evaluation after
every switch, the outcome in status.lastFailover.evaluation, the ModelVerified condition, an
Event and the metrics; and, with `onFailure: failBack`, a switch back to the former cluster
once it passes its health check again (at most once until an evaluation verifies).

Evaluations run as tasks beside the tick (a golden set takes a few seconds to answer): a
tick starts one and a later tick collects it; a new switch cancels the one in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import kopf

from modeldr.api.modeldeployment import Evaluation, ModelDeploymentSpec
from modeldr.kube.constants import Role
from modeldr.kube.events import post_event
from modeldr.operator import metrics
from modeldr.operator.daemonstate import DaemonState, cluster_of, role_of
from modeldr.operator.evaluation import (
    BASELINE_RETRY_S,
    Evaluated,
    EvaluationError,
    EvaluationState,
    Kind,
    Outcome,
    Reference,
    evaluate,
    load_golden_set,
    running,
)
from modeldr.operator.status import ConditionChange

log = logging.getLogger(__name__)

CONDITION = "ModelVerified"
EVENT_REASONS = {
    Outcome.VERIFIED: ("Normal", "ModelVerified"),
    Outcome.NOT_VERIFIED: ("Warning", "ModelNotVerified"),
    Outcome.UNKNOWN: ("Warning", "ModelEvaluationIncomplete"),
}


async def evaluate_model(
    ctl: DaemonState,
    body: kopf.Body,
    spec: ModelDeploymentSpec,
    urls: Sequence[str],
    active_healthy: bool,
    last_failover: dict[str, Any] | None,
) -> None:
    """One tick's part: collect a finished evaluation, start the one due. `urls`: the base
    URLs of the active cluster's servers; `last_failover`: the record of a switch made in
    this tick (its evaluation starts now)."""
    state: EvaluationState = ctl.evaluation
    settings = spec.evaluation
    if settings is None:
        state.cancel()
        state.reference, state.verified, state.fail_back_to = None, None, None
        return
    reference = state.reference
    if reference is not None and reference.model_digest != spec.model.expected_digest:
        state.reference = None  # another model: its answers differ on purpose
    cluster = cluster_of(spec, ctl.state.active)
    if state.fail_back_to == cluster:
        state.fail_back_to = None  # done
    if last_failover is not None:
        state.cancel()
        state.last = running(cluster)
        last_failover["evaluation"] = state.last
        start(ctl, settings, spec, cluster, urls, "switch")
        return
    if state.task is not None and state.task.done():
        finished(ctl, body, spec, settings, collect(state))
    due = state.reference is None and time.monotonic() >= state.next_baseline
    if state.task is None and due and active_healthy:
        start(ctl, settings, spec, cluster, urls, "baseline")


def start(
    ctl: DaemonState,
    settings: Evaluation,
    spec: ModelDeploymentSpec,
    cluster: str,
    urls: Sequence[str],
    kind: Kind,
) -> None:
    state: EvaluationState = ctl.evaluation
    hub, namespace = ctl.runtime.hub, ctl.namespace
    reference = state.reference

    async def run() -> Evaluated:
        try:
            golden = await asyncio.to_thread(load_golden_set, hub, namespace, settings)
        except EvaluationError as exc:
            return failed(cluster, "GoldenSetInvalid", str(exc))
        return await evaluate(
            settings,
            golden,
            cluster,
            tuple(dict.fromkeys(urls)),
            spec.model.name,
            spec.model.expected_digest,
            reference,
            baseline=kind == "baseline",
        )

    state.task = asyncio.create_task(run(), name=f"evaluate {ctl.namespace}/{ctl.name}")
    state.kind = kind
    wake = ctl.wake
    if wake is not None:  # the next tick collects the outcome at once
        state.task.add_done_callback(lambda _: wake())


def failed(cluster: str, reason: str, message: str) -> Evaluated:
    return Evaluated(cluster, Outcome.UNKNOWN, reason, message, datetime.now(UTC))


def collect(state: EvaluationState) -> tuple[Kind, Evaluated]:
    task, kind = state.task, state.kind
    assert task is not None and kind is not None
    state.task, state.kind = None, None
    try:
        return kind, task.result()
    except Exception as exc:  # a bug in the evaluation: say so, never break the tick
        log.exception("evaluation failed")
        return kind, failed("", "EvaluationFailed", f"{type(exc).__name__}: {exc}")


def finished(
    ctl: DaemonState,
    body: kopf.Body,
    spec: ModelDeploymentSpec,
    settings: Evaluation,
    outcome: tuple[Kind, Evaluated],
) -> None:
    state: EvaluationState = ctl.evaluation
    kind, result = outcome
    state.verified = result
    export(ctl, result)
    if result.outcome is Outcome.VERIFIED and result.answers is not None:
        state.reference = Reference(
            result.cluster, result.answers, spec.model.expected_digest, result.golden_digest
        )
        state.failed_back = False
    if kind == "baseline":
        if result.outcome is not Outcome.VERIFIED:
            state.next_baseline = time.monotonic() + BASELINE_RETRY_S
            post_event(body, "Warning", "ModelBaselineNotVerified", result.message)
        return
    state.last = result.to_status()
    event_type, reason = EVENT_REASONS[result.outcome]
    post_event(body, event_type, reason, f"after the switch to {result.cluster}: {result.message}")
    former = state.reference.cluster if state.reference is not None else None
    wants_fail_back = (
        result.outcome is Outcome.NOT_VERIFIED
        and settings.on_failure == "failBack"
        and not state.failed_back
        and former is not None
        and former != result.cluster
    )
    if wants_fail_back:
        state.fail_back_to, state.failed_back = former, True
        post_event(
            body,
            "Warning",
            "EvaluationFailBack",
            f"{result.cluster} did not pass its evaluation: switching back to {former} once "
            "it passes its health check (spec.evaluation.onFailure failBack)",
        )


def export(ctl: DaemonState, result: Evaluated) -> None:
    labels = (ctl.namespace, ctl.name, result.cluster)
    metrics.MODEL_VERIFIED.labels(*labels).set(1 if result.outcome is Outcome.VERIFIED else 0)
    metrics.MODEL_EVALUATIONS.labels(*labels, str(result.outcome)).inc()
    scores = result.scores
    if scores is None:
        return
    for name, value in (
        ("agreement", scores.agreement),
        ("accuracy", scores.accuracy),
        ("precision", scores.precision),
        ("recall", scores.recall),
        ("f1", scores.f1),
    ):
        if value is not None:
            metrics.MODEL_EVALUATION_SCORE.labels(*labels, name).set(value)


def fail_back_request(ctl: DaemonState, spec: ModelDeploymentSpec) -> Role | None:
    """The switch an unverified evaluation asks for (onFailure failBack), if any."""
    wanted = ctl.evaluation.fail_back_to
    return None if wanted is None else role_of(spec, wanted)


def report_evaluation(
    ctl: DaemonState,
    spec: ModelDeploymentSpec,
    status: dict[str, Any],
    changes: list[ConditionChange],
) -> None:
    """status.lastFailover.evaluation and the ModelVerified condition of this tick."""
    state: EvaluationState = ctl.evaluation
    if spec.evaluation is None:
        return
    if state.last is not None and "lastFailover" in status:
        status["lastFailover"]["evaluation"] = state.last
    result = state.verified
    if state.task is not None:
        what = "after a switch" if state.kind == "switch" else "baseline"
        changes.append((CONDITION, False, "Evaluating", f"evaluating the model ({what})"))
    elif result is None:
        changes.append((CONDITION, False, "NotEvaluated", "no evaluation yet"))
    else:
        verified = result.outcome is Outcome.VERIFIED
        changes.append((CONDITION, verified, result.reason, result.message[:1024]))
