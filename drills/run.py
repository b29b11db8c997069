"""A DrillRun's life in the operator (leader only), called by the kopf handlers:

- `execute_run`: a run that has not started: preflight (the plan snapshot, the target and its
  opt-in, one run per target, conditions, golden set, traffic entry), then the engine.
- the same call on a run found Running: its engine is gone (the operator restarted, or a
  new leader took over), so `rollback` undoes its journal and ends it Aborted.
- `undo_on_delete`: the finalizer's part: every outstanding fault of a deleted run undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from modeldr.drills import events, metrics, plans, prometheus
from modeldr.drills.checks import ModelChecker, load_golden_set
from modeldr.drills.conditions import ConditionError
from modeldr.drills.engine import Drill, Engine, deadline_seconds, new_seed, steps_status
from modeldr.drills.faults.base import FaultError
from modeldr.drills.faults.infrastructure import provider_for
from modeldr.drills.faults.registry import driver_for
from modeldr.drills.gaterunner import GateRunner
from modeldr.drills.gates import QueryOutcome, QueryRejected
from modeldr.drills.journal import Journal
from modeldr.drills.phase import Phase
from modeldr.drills.probe import Resolver, TrafficProbe, hub_slice_resolver, url_resolver
from modeldr.drills.runstate import RunRef, RunState, now
from modeldr.drills.spec import (
    INFRASTRUCTURE_FAULTS,
    DrillPlanSpec,
    DrillRunSpec,
    DrillRunStatus,
    PrometheusQuery,
    SteadyStateStatus,
)
from modeldr.drills.target import Target, read_target, target_status
from modeldr.operator.constants import ROLES
from modeldr.operator.errors import MemberError
from modeldr.operator.runtime import Runtime

log = logging.getLogger(__name__)
# How long a rollback keeps retrying faults it could not undo (a member still unreachable)
# before the run says so and lets go.
ROLLBACK_PATIENCE_S = 600.0
ROLLBACK_RETRY_S = 10.0
# Preflight findings about the system under test (not about the drill): the run Failed.
FAILED_BEFORE_START = frozenset({"StandbyCapacityInsufficient"})


async def execute_run(
    rt: Runtime,
    ref: RunRef,
    spec_raw: Any,
    status_raw: Any,
    stop_reason: Callable[[], tuple[str, str] | None],
) -> None:
    status = DrillRunStatus.parse(status_raw)
    state = RunState(rt.hub, ref, status)
    spec = DrillRunSpec.parse(spec_raw)
    if status.phase is Phase.RUNNING:
        why = "the operator restarted mid-run and rolled the run back"
        await rollback(rt, state, spec.plan_ref.name, "OperatorRestarted", why)
        return
    if status.phase is not Phase.PENDING:
        return  # ended already
    try:
        plan = spec.plan
        if plan is None:
            plan = await asyncio.to_thread(plans.snapshot_into_run, rt.hub, ref, spec)
        target = await asyncio.to_thread(
            read_target, rt.hub, ref.namespace, plan.target.model_deployment
        )
    except FaultError as exc:
        await refuse(rt, state, spec.plan_ref.name, exc.reason, exc.message)
        return
    holder = rt.drills.claim(target.namespace, target.name, ref.name)
    if holder is not None:
        await refuse(rt, state, spec.plan_ref.name, "TargetBusy",
                     f"DrillRun {holder} is running against {target.name}")  # fmt: skip
        return
    try:
        await start(rt, state, spec.plan_ref.name, plan, target, stop_reason)
    finally:
        rt.drills.release(target.namespace, target.name, ref.name)


async def start(
    rt: Runtime,
    state: RunState,
    plan_name: str,
    plan: DrillPlanSpec,
    target: Target,
    stop_reason: Callable[[], tuple[str, str] | None],
) -> None:
    """Preflight what the run needs, then run it."""
    try:
        resolver = traffic_entry(rt, plan, target)
        preflight(rt, plan, target)
        probe = TrafficProbe(
            resolver, rate_per_second=plan.traffic.rate_per_second,
            timeout_s=plan.traffic.timeout_milliseconds / 1000, inputs=plan.traffic.inputs,
            max_seconds=deadline_seconds(plan),
            on_sample=metrics.sample_recorder(state.ref.namespace, plan_name, state.ref.name),
        )  # fmt: skip
        drill = Drill(
            rt, state, plan, plan_name, target, new_seed(), probe, Journal(state, rt.members),
            query=prometheus_query(rt, target), stop_reason=stop_reason,
        )  # fmt: skip
        gates = [GateRunner(gate, drill.query, drill.clock) for gate in plan.gates]
        checker = None
        if plan.model_checks is not None:
            golden = await asyncio.to_thread(
                load_golden_set, rt.hub, state.ref.namespace, plan.model_checks
            )
            checker = ModelChecker(drill, plan.model_checks, golden, resolver)
        engine = Engine(drill, gates, checker)
    except FaultError as exc:
        await refuse(rt, state, plan_name, exc.reason, exc.message)
        return
    except ConditionError as exc:
        await refuse(rt, state, plan_name, "InvalidCondition", str(exc))
        return
    status = state.status
    status.phase, status.started_at, status.seed = Phase.RUNNING, now(), drill.seed
    status.active_cluster = await asyncio.to_thread(active_cluster, rt, target)
    status.steps, status.steady_state = steps_status(plan), SteadyStateStatus()
    await state.write()
    await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)
    events.started(drill)
    labels = (state.ref.namespace, plan_name, state.ref.name)
    metrics.RUNS_IN_PROGRESS.labels(*labels).set(1)
    try:
        await engine.execute()
    finally:
        metrics.RUNS_IN_PROGRESS.labels(*labels).set(0)
        asyncio.get_running_loop().call_later(metrics.FORGET_AFTER_S, metrics.forget, *labels)
        await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)
        # History is bounded when a run ends, whoever started it (a plan or a person).
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                plans.prune_history, rt.hub, state.ref.namespace, plan_name, plan.history_limit
            )


def preflight(rt: Runtime, plan: DrillPlanSpec, target: Target) -> None:
    """Before anything is touched (blocking): every fault can be made (a driver, and a
    provider for the infrastructure's), and a failover the plan causes has room on the
    standby. FaultError with the step's reason otherwise."""
    seen = target_status(rt.hub, target)
    active = target.role_of(seen.get("activeCluster")) or "primary"
    for step in plan.steps:
        if step.fault is None:
            continue
        driver_for(step.fault.type)  # FaultUnsupported
        if step.fault.type not in INFRASTRUCTURE_FAULTS:
            continue
        cluster = step.fault.cluster
        role = active if cluster == "active" else target.role_of(cluster)
        if role is not None:
            provider_for(rt.members, target.cluster(role))  # NoProvider
    if causes_failover(plan):
        check_standby_capacity(target, seen)


def causes_failover(plan: DrillPlanSpec) -> bool:
    return any(
        step.expect.active_cluster == "standby"
        or (step.action is not None and step.action.type == "Failover")
        for step in plan.steps
    )


def check_standby_capacity(target: Target, seen: dict[str, Any]) -> None:
    """A warm or cold standby scales up on failover: it needs the GPUs for the replicas it
    does not run yet (what the ModelDeployment's status counts as its free GPUs)."""
    spec = target.spec
    needed = (spec.replicas - spec.standby_replicas()) * spec.resources.gpus_per_replica
    free = (seen.get("standby") or {}).get("freeGPUs")
    if needed <= 0 or free is None or int(free) >= needed:
        return
    product = spec.gpu_product_for("standby")
    raise FaultError(
        "StandbyCapacityInsufficient",
        f"a failover to {target.cluster('standby')} needs {needed} free GPUs"
        + (f" of product {product}" if product else "")
        + f" to scale its {spec.clusters.standby.mode} standby up; it has {free}",
    )


def active_cluster(rt: Runtime, target: Target) -> str | None:
    value = target_status(rt.hub, target).get("activeCluster")
    return str(value) if value else None


def traffic_entry(rt: Runtime, plan: DrillPlanSpec, target: Target) -> Resolver:
    """Where the probe sends: spec.traffic.url, else the hub EndpointSlice the
    endpointslice provider keeps (what clients of the hub Service use)."""
    if plan.traffic.url:
        return url_resolver(plan.traffic.url)
    if target.spec.traffic.provider != "endpointslice":
        raise FaultError(
            "NoTrafficEntry",
            f"{target.name} routes traffic with the {target.spec.traffic.provider} provider: "
            "set spec.traffic.url to the entry point its clients use",
        )
    return hub_slice_resolver(rt.hub, target.namespace, target.service())


def prometheus_query(rt: Runtime, target: Target) -> Callable[[PrometheusQuery], Any]:
    """The query function of gates and abort conditions: on prometheus.url, else on the
    Prometheus the primary member's Secret names. No Prometheus at all is the plan's error."""

    async def query(q: PrometheusQuery) -> QueryOutcome:
        url = q.url or await asyncio.to_thread(member_prometheus, rt, target)
        if not url:
            return QueryRejected(
                "no Prometheus to ask: set prometheus.url, or prometheus-url in the member "
                f"Secret of {target.cluster('primary')}"
            )
        return await asyncio.to_thread(prometheus.query, url, q.query, float(q.timeout_seconds))

    return query


def member_prometheus(rt: Runtime, target: Target) -> str | None:
    for role in ROLES:
        try:
            url = rt.members.get(target.cluster(role)).prometheus_url
        except MemberError:
            continue
        if url:
            return url
    return None


async def refuse(rt: Runtime, state: RunState, plan_name: str, reason: str, message: str) -> None:
    """End a run that could not start, nothing touched: Error (the drill could not do what
    the plan asked), or Failed when preflight already shows the system would not hold."""
    status = state.status
    phase = Phase.FAILED if reason in FAILED_BEFORE_START else Phase.ERROR
    status.phase, status.reason, status.message = phase, reason, message[:4096]
    status.started_at = status.started_at or now()
    status.finished_at = now()
    await state.write()
    await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)
    log.warning("DrillRun %s/%s: %s: %s", state.ref.namespace, state.ref.name, reason, message)


async def rollback(rt: Runtime, state: RunState, plan_name: str, reason: str, message: str) -> None:
    """Undo every outstanding fault of a run whose engine is gone, and end it Aborted."""
    journal = Journal(state, rt.members)
    loop = asyncio.get_running_loop()
    started = loop.time()
    left = await journal.undo_all()
    while left and loop.time() - started < ROLLBACK_PATIENCE_S:
        await asyncio.sleep(ROLLBACK_RETRY_S)
        left = await journal.undo_all()
    for record in left:
        record.state = "Abandoned"
    undone = sum(1 for r in state.status.faults if r.state == "Undone")
    status = state.status
    for step in status.steps:
        if step.phase is Phase.RUNNING:
            step.phase, step.reason, step.finished_at = Phase.ABORTED, reason, now()
    status.phase, status.reason, status.finished_at = Phase.ABORTED, reason, now()
    status.current_step = None
    status.message = f"{message}; {undone} faults of the journal undone" + (
        f"; NOT undone: {', '.join(f'{r.type} {r.id} in {r.cluster}' for r in left)}"
        if left
        else ""
    )
    await state.write()
    await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)


async def undo_on_delete(rt: Runtime, ref: RunRef, status_raw: Any) -> list[str]:
    """The outstanding faults of a deleted run, undone; returns what could not be."""
    state = RunState(rt.hub, ref, DrillRunStatus.parse(status_raw))
    left = await Journal(state, rt.members).undo_all()
    return [f"{r.type} {r.id} in {r.cluster}" for r in left]
