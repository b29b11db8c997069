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
import time
from collections.abc import Callable
from typing import Any

from modeldr.api.drillplan import INFRASTRUCTURE_FAULTS, DrillPlanSpec, PrometheusQuery
from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.drillstatus import (
    DrillRunStatus,
    DryRunStatus,
    PreflightFinding,
    ProbeLiveStatus,
    SteadyStateStatus,
)
from modeldr.api.phase import Phase
from modeldr.drills import dryrun, events, metrics, plans, report
from modeldr.drills.checks import ModelChecker, load_golden_set
from modeldr.drills.conditions import ConditionError
from modeldr.drills.engine import Drill, Engine, deadline_seconds, new_seed, steps_status
from modeldr.drills.faults.infrastructure import provider_for
from modeldr.drills.faults.registry import driver_for
from modeldr.drills.gaterunner import GateRunner
from modeldr.drills.host import DrillHost
from modeldr.drills.journal import Journal
from modeldr.drills.probe import Resolver, TrafficProbe, hub_slice_resolver, url_resolver
from modeldr.drills.probe_stats import ProbeSample
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunRef, RunState, now
from modeldr.drills.target import Target, read_target, target_status
from modeldr.drills.timeline import Point, Timeline
from modeldr.kube import promql
from modeldr.kube.capacity import read_gpu_capacity
from modeldr.kube.constants import ROLES
from modeldr.kube.errors import MemberError
from modeldr.kube.promql import QueryOutcome, QueryRejected

log = logging.getLogger(__name__)
# How long a rollback keeps retrying faults it could not undo (a member still unreachable)
# before the run says so and lets go.
ROLLBACK_PATIENCE_S = 600.0
ROLLBACK_RETRY_S = 10.0
# Preflight findings about the system under test (not about the drill): the run Failed.
FAILED_BEFORE_START = frozenset({"StandbyCapacityInsufficient"})
# The live probe figures in status.probe: over this window, refreshed this often.
LIVE_WINDOW_S = 10.0
LIVE_INTERVAL_S = 2.0
# A second of the timeline waits this long past the probe's timeout for late answers.
TIMELINE_MARGIN_S = 1.0


async def execute_run(
    rt: DrillHost,
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
    except Refusal as exc:
        await refuse(rt, state, spec.plan_ref.name, exc.reason, exc.message)
        return
    holder = rt.drills.claim(target.namespace, target.name, ref.name)
    if holder is not None:
        await refuse(rt, state, spec.plan_ref.name, "TargetBusy",
                     f"DrillRun {holder} is running against {target.name}")  # fmt: skip
        return
    try:
        if spec.dry_run or plan.dry_run:
            await dry_run(rt, state, spec.plan_ref.name, plan, target)
            return
        await start(rt, state, spec.plan_ref.name, plan, target, stop_reason)
    finally:
        rt.drills.release(target.namespace, target.name, ref.name)


async def start(
    rt: DrillHost,
    state: RunState,
    plan_name: str,
    plan: DrillPlanSpec,
    target: Target,
    stop_reason: Callable[[], tuple[str, str] | None],
) -> None:
    """Preflight what the run needs, then run it."""
    try:
        resolver = traffic_entry(rt, plan, target)
        await asyncio.to_thread(preflight, rt, plan, target)  # blocking reads, off the loop
        timeout_s = plan.traffic.timeout_milliseconds / 1000
        timeline = Timeline(wall_offset=time.time() - time.monotonic(),
                            open_seconds=timeout_s + TIMELINE_MARGIN_S)  # fmt: skip
        record = metrics.sample_recorder(state.ref.namespace, plan_name, state.ref.name)

        def on_sample(sample: ProbeSample) -> None:
            timeline.add(sample)
            record(sample)

        probe = TrafficProbe(
            resolver, rate_per_second=plan.traffic.rate_per_second, timeout_s=timeout_s,
            inputs=plan.traffic.inputs, max_seconds=deadline_seconds(plan), on_sample=on_sample,
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
    except Refusal as exc:
        await refuse(rt, state, plan_name, exc.reason, exc.message, plan)
        return
    except ConditionError as exc:
        await refuse(rt, state, plan_name, "InvalidCondition", str(exc), plan)
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
    live = asyncio.create_task(live_probe(state, timeline))
    try:
        await engine.execute()
    finally:
        live.cancel()
        await asyncio.gather(live, return_exceptions=True)
        metrics.RUNS_IN_PROGRESS.labels(*labels).set(0)
        asyncio.get_running_loop().call_later(metrics.FORGET_AFTER_S, metrics.forget, *labels)
        await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)
        await keep_report(rt, state, plan_name, plan, target, timeline.points())
        # History is bounded when a run ends, whoever started it (a plan or a person).
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                plans.prune_history, rt.hub, state.ref.namespace, plan_name, plan.history_limit
            )


def preflight(rt: DrillHost, plan: DrillPlanSpec, target: Target) -> None:
    """Before anything is touched (blocking): every fault can be made (a driver, and a
    provider for the infrastructure's), and a failover the plan causes has room on the
    standby. Refusal with the step's reason otherwise."""
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
        check_standby_capacity(rt, target)


def causes_failover(plan: DrillPlanSpec) -> bool:
    return any(
        step.expect.active_cluster == "standby"
        or (step.action is not None and step.action.type == "Failover")
        for step in plan.steps
    )


def check_standby_capacity(rt: DrillHost, target: Target) -> None:
    """Blocking. A warm or cold standby scales up on failover: it needs the GPUs for the
    replicas it does not run yet, counted from the standby's GPU nodes and their pods as they
    are now (not the ModelDeployment's last status, which can be seconds old). Capacity that
    cannot be learned is not enough: CapacityUnknown."""
    spec = target.spec
    needed = (spec.replicas - spec.standby_replicas()) * spec.resources.gpus_per_replica
    if needed <= 0:
        return
    cluster = target.cluster("standby")
    product = spec.gpu_product_for("standby")
    try:
        capacity, _ = read_gpu_capacity(rt.members.get(cluster).api)
    except Exception as exc:  # unreachable, no Secret, no rights to list nodes or pods
        raise Refusal(
            "CapacityUnknown",
            f"a failover to {cluster} needs {needed} free GPUs to scale its "
            f"{spec.clusters.standby.mode} standby up, and its GPU nodes could not be read: "
            f"{type(exc).__name__}: {exc}"[:1024],
        ) from None
    free = capacity.free(product)
    if free >= needed:
        return
    raise Refusal(
        "StandbyCapacityInsufficient",
        f"a failover to {cluster} needs {needed} free GPUs"
        + (f" of product {product}" if product else "")
        + f" to scale its {spec.clusters.standby.mode} standby up; it has {free}",
    )


def active_cluster(rt: DrillHost, target: Target) -> str | None:
    value = target_status(rt.hub, target).get("activeCluster")
    return str(value) if value else None


def traffic_entry(rt: DrillHost, plan: DrillPlanSpec, target: Target) -> Resolver:
    """Where the probe sends: spec.traffic.url, else the hub EndpointSlice the
    endpointslice provider keeps (what clients of the hub Service use)."""
    if plan.traffic.url:
        return url_resolver(plan.traffic.url)
    if target.spec.traffic.provider != "endpointslice":
        raise Refusal(
            "NoTrafficEntry",
            f"{target.name} routes traffic with the {target.spec.traffic.provider} provider: "
            "set spec.traffic.url to the entry point its clients use",
        )
    return hub_slice_resolver(rt.hub, target.namespace, target.service())


def prometheus_query(rt: DrillHost, target: Target) -> Callable[[PrometheusQuery], Any]:
    """The query function of gates and abort conditions: on prometheus.url, else on the
    Prometheus the primary member's Secret names. No Prometheus at all is the plan's error."""

    async def query(q: PrometheusQuery) -> QueryOutcome:
        url = q.url or await asyncio.to_thread(member_prometheus, rt, target)
        if not url:
            return QueryRejected(
                "no Prometheus to ask: set prometheus.url, or prometheus-url in the member "
                f"Secret of {target.cluster('primary')}"
            )
        return await asyncio.to_thread(promql.query, url, q.query, float(q.timeout_seconds))

    return query


def member_prometheus(rt: DrillHost, target: Target) -> str | None:
    for role in ROLES:
        try:
            url = rt.members.get(target.cluster(role)).prometheus_url
        except MemberError:
            continue
        if url:
            return url
    return None


async def live_probe(state: RunState, timeline: Timeline) -> None:
    """status.probe every LIVE_INTERVAL_S while the run goes on: what the probe saw over
    the last LIVE_WINDOW_S (the CLI's live display; the verdict never reads it)."""
    while True:
        await asyncio.sleep(LIVE_INTERVAL_S)
        if state.status.phase.is_final:
            return
        recent = timeline.recent(LIVE_WINDOW_S, time.time())
        state.status.probe = ProbeLiveStatus(
            at=now(),
            window_seconds=LIVE_WINDOW_S,
            sent=recent.sent,
            succeeded=recent.ok,
            success_ratio=recent.success_ratio,
            p99_latency_ms=recent.p99_ms,
            cluster=recent.cluster,
        )
        try:
            await state.write()
        except Exception as exc:  # the engine's own writes say what matters
            log.debug("%s: live probe status not written: %s", state.ref.name, exc)


async def keep_report(
    rt: DrillHost,
    state: RunState,
    plan_name: str,
    plan: DrillPlanSpec | None,
    target: Target | None,
    points: list[Point],
) -> None:
    """The run's report ConfigMap (drills.report), named in status.reportConfigMap;
    best-effort: a report that cannot be written is logged, the status stays the record."""
    ref = state.ref
    clusters: dict[str, str] = (
        {role: target.cluster(role) for role in ROLES} if target is not None else {}
    )
    try:
        history: list[dict[str, object]] = []
        if plan_name:
            history = await asyncio.to_thread(report.plan_history, rt.hub, ref.namespace, plan_name)
        state.status.report_config_map = report.config_map_name(ref.name)
        doc = report.document(ref, plan_name, plan, state.status, clusters, points, history)
        text = report.encode(doc)
        await asyncio.to_thread(report.write, rt.hub, ref, plan_name, text)
    except Exception as exc:
        state.status.report_config_map = None
        log.warning("DrillRun %s/%s: report not kept: %s", ref.namespace, ref.name, exc)
        return
    with contextlib.suppress(Exception):
        await state.write()


async def dry_run(
    rt: DrillHost, state: RunState, plan_name: str, plan: DrillPlanSpec, target: Target
) -> None:
    """Resolve every step and run the preflight with nothing touched; status.dryRun says
    what the run would do. Planned when the real run could start, Error (the first finding's
    reason) when it could not."""
    status = state.status
    status.phase, status.started_at, status.seed = Phase.RUNNING, now(), new_seed()
    status.dry_run = DryRunStatus()
    await state.write()
    try:
        seen = await asyncio.to_thread(target_status, rt.hub, target)
        active = str(seen["activeCluster"]) if seen.get("activeCluster") else None
        status.active_cluster = status.dry_run.active_cluster = active
        steps = await asyncio.to_thread(
            dryrun.plan_steps, rt.members, plan, target, status.seed, active
        )
        findings = await dry_preflight(rt, plan, target)
    except Exception as exc:  # the hub stopped answering: say so, nothing was touched
        log.exception("%s: the dry run failed", state.ref.name)
        await refuse(rt, state, plan_name, "DryRunFailed", f"the dry run stopped: {exc}", plan)
        return
    status.dry_run.steps, status.dry_run.preflight = steps, findings
    blocked = [(s.reason, f"step {s.step}: {s.message}") for s in steps if s.reason]
    blocked += [
        (f.reason or "PreflightFailed", f"{f.check}: {f.message}") for f in findings if not f.ok
    ]
    touched = sum(len(s.targets) for s in steps)
    summary = (
        f"dry run: {len(steps)} steps resolved ({touched} targets), "
        f"{len(findings)} preflight checks; nothing was touched"
    )
    if blocked:
        reason, first = blocked[0]
        phase = Phase.FAILED if reason in FAILED_BEFORE_START else Phase.ERROR
        status.phase, status.reason = phase, reason
        status.message = f"{summary}; the run could not go as planned: {first}"[:4096]
    else:
        status.phase, status.reason, status.message = Phase.PLANNED, "DryRun", summary
    status.finished_at = now()
    await state.write()
    await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)
    await keep_report(rt, state, plan_name, plan, target, [])


async def dry_preflight(
    rt: DrillHost, plan: DrillPlanSpec, target: Target
) -> list[PreflightFinding]:
    """The preflight checks of a real run, each recorded instead of stopping at the first."""
    findings = [
        PreflightFinding(check="target", ok=True, message=f"{target.name} is opted in and free")
    ]

    def finding(check: str, exc: Refusal) -> PreflightFinding:
        return PreflightFinding(check=check, ok=False, reason=exc.reason, message=exc.message)

    try:
        resolver = traffic_entry(rt, plan, target)
        endpoints = await asyncio.to_thread(resolver)
        ready = len(endpoints.addresses)
        ok = ready > 0 and not endpoints.read_failed
        findings.append(
            PreflightFinding(
                check="traffic-entry",
                ok=ok,
                reason=None if ok else "NoTrafficEntry",
                message=f"{ready} ready endpoints"
                + (f" in {endpoints.cluster}" if endpoints.cluster else "")
                + (f": {endpoints.error}" if endpoints.error else ""),
            )
        )
    except Refusal as exc:
        findings.append(finding("traffic-entry", exc))
    if causes_failover(plan):
        try:
            await asyncio.to_thread(check_standby_capacity, rt, target)
            findings.append(
                PreflightFinding(
                    check="standby-capacity", ok=True, message="the standby can take the traffic"
                )
            )
        except Refusal as exc:
            findings.append(finding("standby-capacity", exc))
    if plan.model_checks is not None:
        try:
            golden = await asyncio.to_thread(
                load_golden_set, rt.hub, target.namespace, plan.model_checks
            )
            findings.append(
                PreflightFinding(check="golden-set", ok=True, message=f"{len(golden)} examples")
            )
        except Refusal as exc:
            findings.append(finding("golden-set", exc))
    queries = [g.prometheus for g in plan.gates]
    queries += [a.prometheus for a in plan.abort_conditions if a.prometheus is not None]
    if queries:
        default = await asyncio.to_thread(member_prometheus, rt, target)
        missing = [q.query for q in queries if not (q.url or default)]
        findings.append(
            PreflightFinding(
                check="prometheus",
                ok=not missing,
                reason="MetricsMissing" if missing else None,
                message=(
                    f"no Prometheus to ask for {len(missing)} queries"
                    if missing
                    else f"{len(queries)} queries on {default or 'their own prometheus.url'}"
                ),
            )
        )
    return findings


async def refuse(
    rt: DrillHost,
    state: RunState,
    plan_name: str,
    reason: str,
    message: str,
    plan: DrillPlanSpec | None = None,
) -> None:
    """End a run that could not start, nothing touched: Error (the drill could not do what
    the plan asked), or Failed when preflight already shows the system would not hold."""
    status = state.status
    phase = Phase.FAILED if reason in FAILED_BEFORE_START else Phase.ERROR
    status.phase, status.reason, status.message = phase, reason, message[:4096]
    status.started_at = status.started_at or now()
    status.finished_at = now()
    await state.write()
    await asyncio.to_thread(plans.record_last_run, rt.hub, state.ref, plan_name, status)
    await keep_report(rt, state, plan_name, plan, None, [])
    log.warning("DrillRun %s/%s: %s: %s", state.ref.namespace, state.ref.name, reason, message)


async def rollback(
    rt: DrillHost, state: RunState, plan_name: str, reason: str, message: str
) -> None:
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
    await keep_report(rt, state, plan_name, None, None, [])


async def undo_on_delete(rt: DrillHost, ref: RunRef, status_raw: Any) -> list[str]:
    """The outstanding faults of a deleted run, undone; returns what could not be."""
    state = RunState(rt.hub, ref, DrillRunStatus.parse(status_raw))
    left = await Journal(state, rt.members).undo_all()
    return [f"{r.type} {r.id} in {r.cluster}" for r in left]
