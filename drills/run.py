"""A DrillRun's life in the operator (leader only), called by the kopf handlers:

- `execute_run`: a run that has not started: its plan snapshot and its target (opted in, one
  run per target), then `preflight` and the engine; or, for a dry run, every step resolved
  and every preflight check listed in status.dryRun, nothing touched.
- the same call on a run found Running: its engine is gone (the operator restarted, or a
  new leader took over), so `rollback` undoes its journal and ends it Aborted.
- `undo_on_delete`: the finalizer's part: every outstanding fault of a deleted run undone.

Whichever way a run ends (the engine's verdict, refused before it started, a dry run done,
rolled back, an error in the engine), the way there sets its status and says how it ended
(an `Ending`); `end`, the one exit, writes that out, then lets the target go.

`preflight` is the one list of checks made before anything is touched, each a finding, in a
worker thread (they read the hub and the members): the real run stops at the first that
fails and is refused with it; the dry run makes them all and lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from kubernetes import client

from modeldr.api.base import truncate
from modeldr.api.drillplan import DrillPlanSpec, PrometheusQuery
from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.drillstatus import (
    DrillRunStatus,
    DryRunStatus,
    PreflightFinding,
    ProbeLiveStatus,
    SteadyStateStatus,
)
from modeldr.api.phase import Phase
from modeldr.api.tenancy import POLICY_DENIED
from modeldr.drills import dryrun, events, metrics, plans, report
from modeldr.drills.answers import AnswerKey
from modeldr.drills.checks import ModelChecker, load_golden_set
from modeldr.drills.conditions import ConditionError, compile_condition
from modeldr.drills.engine import Drill, Engine, deadline_seconds, new_seed, steps_status
from modeldr.drills.faults.infrastructure import provider_for
from modeldr.drills.faults.registry import driver_for
from modeldr.drills.gaterunner import GateRunner
from modeldr.drills.host import DrillHost, seal_of
from modeldr.drills.journal import Journal
from modeldr.drills.probe import Resolver, TrafficProbe, hub_slice_resolver, url_resolver
from modeldr.drills.probe_stats import ProbeSample
from modeldr.drills.readiness import ready_replicas
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunRef, RunState, now
from modeldr.drills.target import Target, read_target, target_status
from modeldr.drills.tenancy import RunTenancy
from modeldr.drills.timeline import Point, ReplicaPoint, Timeline
from modeldr.drills.verdict import cut_short, verdict_of
from modeldr.kube import promql
from modeldr.kube.backupplaces import BackupUnusable, restore_point
from modeldr.kube.capacity import read_gpu_capacity
from modeldr.kube.constants import DRILLRUNS, GROUP, ROLES, VERSION
from modeldr.kube.errors import ConfigError, MemberError
from modeldr.kube.golden import GoldenItem
from modeldr.kube.haproxy import HAProxySettings
from modeldr.kube.promql import QueryOutcome, QueryRejected
from modeldr.kube.tenancy import PoliciesUnreadable

log = logging.getLogger(__name__)
# How long a rollback keeps retrying faults it could not undo (a member still unreachable)
# before the run says so and lets go.
ROLLBACK_PATIENCE_S = 600.0
ROLLBACK_RETRY_S = 10.0
# Preflight findings about the system under test (not about the drill): the run Failed.
# A backup too old or one that does not restore is the DR finding itself (the RPO or the
# restore does not hold), not a drill that could not run.
FAILED_BEFORE_START = frozenset(
    {"StandbyCapacityInsufficient", "BackupTooOld", "BackupUnrestorable"}
)
# The live probe figures in status.probe: over this window, refreshed this often.
LIVE_WINDOW_S = 10.0
# A run that finds its target held by a run that ended already waits this long for it.
HOLDER_ENDING_WAIT_S = 30.0
HOLDER_POLL_S = 0.2
LIVE_INTERVAL_S = 2.0
# A second of the timeline waits this long past the probe's timeout for late answers.
TIMELINE_MARGIN_S = 1.0


@dataclass
class Ending:
    """How a run ended, for `end` to write out (the run's status says what happened)."""

    # What the report names: the plan, and the target's clusters.
    plan: DrillPlanSpec | None = None
    target: Target | None = None
    # The probe's timeline, for the report.
    timeline: Timeline | None = None
    # The engine ran: it wrote the final status itself, and the plan's history is bounded.
    engine_ran: bool = False
    # A run refused before it started: (reason, message), logged.
    refused: tuple[str, str] | None = None


@dataclass
class Run:
    """One call of execute_run: what the run works with, and how it ended."""

    rt: DrillHost
    state: RunState
    plan_name: str
    stop_reason: Callable[[], tuple[str, str] | None]
    # Started for a due time of its plan's schedule (spec.scheduledTime).
    scheduled: bool = False
    # The target this run holds (rt.drills), let go once the end is written.
    held: Target | None = None
    # None until the run reaches an end; an exception before that writes none.
    ending: Ending | None = None


async def execute_run(
    rt: DrillHost,
    ref: RunRef,
    spec_raw: Any,
    status_raw: Any,
    stop_reason: Callable[[], tuple[str, str] | None],
    version: str | None = None,
) -> None:
    status = DrillRunStatus.parse(status_raw)
    spec = DrillRunSpec.parse(spec_raw)
    if status.phase not in (Phase.PENDING, Phase.RUNNING):
        return  # ended already
    scheduled = plans.parse_time(spec.scheduled_time) is not None
    known = dict(status_raw or {}) if version is not None else None
    state = RunState(rt.hub, ref, status, version=version, known=known)
    run = Run(rt, state, spec.plan_ref.name, stop_reason, scheduled)
    try:
        if status.phase is Phase.RUNNING:
            why = "the operator restarted mid-run and rolled the run back"
            await rollback(run, "OperatorRestarted", why)
        else:
            await begin(run, spec)
    finally:
        await end(run)


async def begin(run: Run, spec: DrillRunSpec) -> None:
    """A Pending run: its plan (a snapshot) and target, the target held, then the dry run or
    the real one. Refused when the target is missing, not opted in, or busy."""
    rt, ref = run.rt, run.state.ref
    try:
        plan = spec.plan
        if plan is None:
            plan = await asyncio.to_thread(plans.snapshot_into_run, rt.hub, ref, spec)
        target = await asyncio.to_thread(
            read_target, rt.hub, ref.namespace, plan.target.model_deployment
        )
    except Refusal as exc:
        refuse(run, exc.reason, exc.message)
        return
    holder = await claim_target(rt, target, ref.name)
    if holder is not None:
        refuse(run, "TargetBusy", f"DrillRun {holder} is running against {target.name}")
        return
    run.held = target
    if spec.dry_run or plan.dry_run:
        await dry_run(run, plan, target)
    else:
        await start(run, plan, target)


async def claim_target(rt: DrillHost, target: Target, run: str) -> str | None:
    """Hold the target for `run`; returns the run holding it instead. A holder that has
    ended already (its verdict written, its report and release still to come: well under a
    second) is waited for, at most HOLDER_ENDING_WAIT_S: a run started right after the
    previous one ended (a game day's next run, a CI loop) is not refused for that."""
    holder = rt.drills.claim(target.namespace, target.name, run)
    if holder is None or not await asyncio.to_thread(run_ended, rt, target.namespace, holder):
        return holder
    deadline = time.monotonic() + HOLDER_ENDING_WAIT_S
    while holder is not None and time.monotonic() < deadline:
        await asyncio.sleep(HOLDER_POLL_S)
        holder = rt.drills.claim(target.namespace, target.name, run)
    return holder


def run_ended(rt: DrillHost, namespace: str, name: str) -> bool:
    """Blocking: the DrillRun has its verdict (or is gone)."""
    try:
        body = client.CustomObjectsApi(rt.hub).get_namespaced_custom_object(
            GROUP, VERSION, namespace, DRILLRUNS, name, _request_timeout=(2, 5)
        )
    except client.ApiException as exc:
        return bool(exc.status == 404)
    except Exception:  # the hub unreachable: no evidence it ended, the run is refused
        return False
    phase = str((body.get("status") or {}).get("phase") or Phase.PENDING)
    return phase in {str(p) for p in Phase if p.is_final}


async def start(run: Run, plan: DrillPlanSpec, target: Target) -> None:
    """Preflight (refused on the first check that fails), then the engine."""
    rt, state = run.rt, run.state
    checked = await asyncio.to_thread(preflight, rt, plan, target, dry_run=False)
    failed = checked.first_failure()
    if failed is not None:
        refuse(run, failed.reason or "PreflightFailed", failed.message or "", plan)
        return
    engine, timeline = assemble(run, plan, target, checked)
    status = state.status
    status.phase, status.started_at, status.seed = Phase.RUNNING, now(), engine.drill.seed
    status.active_cluster = await asyncio.to_thread(active_cluster, rt, target)
    status.steps, status.steady_state = steps_status(plan), SteadyStateStatus()
    await state.write()
    record_metrics(run)
    events.started(engine.drill)
    labels = (state.ref.namespace, run.plan_name, state.ref.name)
    metrics.RUNS_IN_PROGRESS.labels(*labels).set(1)
    live = asyncio.create_task(live_probe(state, timeline, engine.drill.target_status))
    run.ending = Ending(plan, target, timeline, engine_ran=True)
    try:
        await engine.execute()
    finally:
        live.cancel()
        await asyncio.gather(live, return_exceptions=True)
        metrics.RUNS_IN_PROGRESS.labels(*labels).set(0)
        asyncio.get_running_loop().call_later(metrics.FORGET_AFTER_S, metrics.forget, *labels)


def assemble(
    run: Run, plan: DrillPlanSpec, target: Target, checked: Preflight
) -> tuple[Engine, Timeline]:
    """The engine of a run that passed preflight, on what preflight resolved (the probe's
    entry, the golden set), and the timeline its probe feeds."""
    assert checked.resolver is not None
    state = run.state
    timeout_s = plan.traffic.timeout_milliseconds / 1000
    timeline = Timeline(
        wall_offset=time.time() - time.monotonic(), open_seconds=timeout_s + TIMELINE_MARGIN_S
    )
    record = metrics.sample_recorder(state.ref.namespace, run.plan_name, state.ref.name)

    # With model checks the probe sends the golden set's texts, so every answer can be judged
    # against the baseline's answer for that text (drills/answers.py).
    answers = None
    inputs = plan.traffic.inputs
    if plan.model_checks is not None and checked.golden:  # empty: the check says Error
        answers = AnswerKey([item.label for item in checked.golden])
        inputs = [item.text for item in checked.golden]

    def on_sample(sample: ProbeSample) -> None:
        timeline.add(sample, None if answers is None else answers.correct(sample))
        record(sample)

    probe = TrafficProbe(
        checked.resolver,
        rate_per_second=plan.traffic.rate_per_second,
        timeout_s=timeout_s,
        inputs=inputs,
        max_seconds=deadline_seconds(plan),
        on_sample=on_sample,
    )
    drill = Drill(
        run.rt,
        state,
        plan,
        run.plan_name,
        target,
        new_seed(),
        probe,
        Journal(state, run.rt.members, seal_of(run.rt)),
        query=prometheus_query(run.rt, target),
        stop_reason=run.stop_reason,
        guard=tenancy_of(run.rt, target, plan),
        answers=answers,
    )
    gates = [GateRunner(gate, drill.query, drill.clock) for gate in plan.gates]
    checker = None
    if plan.model_checks is not None:
        assert checked.golden is not None
        checker = ModelChecker(drill, plan.model_checks, checked.golden, checked.resolver)
    return Engine(drill, gates, checker), timeline


# ------------------------------------------------------------------------------ preflight


@dataclass
class Preflight:
    """One preflight: what it looks at, what it found (in order), and what its checks
    resolved on the way for the run (the probe's entry, the golden set)."""

    rt: DrillHost
    plan: DrillPlanSpec
    target: Target
    dry_run: bool
    findings: list[PreflightFinding] = field(default_factory=list)
    resolver: Resolver | None = None
    golden: tuple[GoldenItem, ...] | None = None

    def first_failure(self) -> PreflightFinding | None:
        return next((finding for finding in self.findings if not finding.ok), None)


def preflight(rt: DrillHost, plan: DrillPlanSpec, target: Target, *, dry_run: bool) -> Preflight:
    """Blocking (hub and member reads): call it in a worker thread. The checks of CHECKS, in
    order, before anything is touched, each a finding. The real run (dry_run False) stops at
    the first that fails: it is refused with that one, and the checks after it would read
    for nothing. The dry run makes every check it lists. What a check raises besides the
    error it reports (a hub that does not answer) propagates."""
    checked = Preflight(rt, plan, target, dry_run)
    for check in CHECKS:
        if not (check.dry if dry_run else check.real):
            continue
        finding = check.run(checked)
        if finding is None:  # nothing of the kind in this plan
            continue
        checked.findings.append(finding)
        if not finding.ok and not dry_run:
            break
    return checked


def failed(check: str, reason: str, message: str) -> PreflightFinding:
    return PreflightFinding(check=check, ok=False, reason=reason, message=truncate(message))


def passed(check: str, message: str) -> PreflightFinding:
    return PreflightFinding(check=check, ok=True, message=message)


def target_check(p: Preflight) -> PreflightFinding:
    """execute_run read the target (opted in) and holds it for this run."""
    return passed("target", f"{p.target.name} is opted in and free")


def tenancy_check(p: Preflight) -> PreflightFinding:
    """No freeze (Frozen); the TenantPolicies allow the target's placement, every step's
    fault type and the blast radius, and members consent to whole-cluster faults
    (PolicyDenied)."""
    try:
        refused = tenancy_of(p.rt, p.target, p.plan).preflight_refusal()
    except PoliciesUnreadable as exc:
        refused = Refusal(POLICY_DENIED, str(exc))
    if refused is not None:
        return failed("tenancy", refused.reason, refused.message)
    return passed("tenancy", f"allowed by the TenantPolicies covering {p.target.namespace}")


def tenancy_of(rt: DrillHost, target: Target, plan: DrillPlanSpec) -> RunTenancy:
    return RunTenancy(rt.hub, rt.members, rt.tenancy, target, plan)


def traffic_entry_check(p: Preflight) -> PreflightFinding:
    """Where the probe sends (NoTrafficEntry when nowhere); the dry run also counts the
    entry's ready endpoints now (the real run's engine waits for the target to serve)."""
    try:
        p.resolver = traffic_entry(p.rt, p.plan, p.target)
    except Refusal as exc:
        return failed("traffic-entry", exc.reason, exc.message)
    if not p.dry_run:
        return passed("traffic-entry", "the probe's entry point is known")
    endpoints = p.resolver()
    ready = len(endpoints.addresses)
    ok = ready > 0 and not endpoints.read_failed
    return PreflightFinding(
        check="traffic-entry",
        ok=ok,
        reason=None if ok else "NoTrafficEntry",
        message=f"{ready} ready endpoints"
        + (f" in {endpoints.cluster}" if endpoints.cluster else "")
        + (f": {endpoints.error}" if endpoints.error else ""),
    )


def faults_check(p: Preflight) -> PreflightFinding:
    """Every fault can be made: a driver (FaultUnsupported), and a provider for the
    infrastructure's (NoProvider). The real run's: the dry run says so step by step
    instead (status.dryRun.steps, drills/dryrun.py)."""
    try:
        seen = target_status(p.rt.hub, p.target)
        active = p.target.role_of(seen.get("activeCluster")) or "primary"
        for step in p.plan.steps:
            if step.fault is None:
                continue
            if not driver_for(step.fault.type).needs_infrastructure:  # FaultUnsupported
                continue
            cluster = step.fault.cluster
            role = active if cluster == "active" else p.target.role_of(cluster)
            if role is not None:
                provider_for(p.rt.members, p.target.cluster(role))  # NoProvider
    except Refusal as exc:
        return failed("faults", exc.reason, exc.message)
    return passed("faults", "every fault has a driver, and a provider where it needs one")


def backups_check(p: Preflight) -> PreflightFinding | None:
    """A ModelStoreLoss deletes nothing without a way back: the model's newest backup, by a
    ModelBackup its policy allows, no older than the strictest maxBackupAgeSeconds, restores
    (verified, nothing written). NoBackup, BackupTooOld, BackupUnrestorable otherwise."""
    losses = [s.fault for s in p.plan.steps if s.fault and s.fault.type == "ModelStoreLoss"]
    if not losses:
        return None
    limit = min(fault.backup_age_limit for fault in losses)
    settings = p.rt.members.settings
    try:
        point = restore_point(
            p.rt.hub, settings, p.rt.tenancy, p.target.namespace, p.target.name, limit
        )
    except BackupUnusable as exc:
        return failed("backups", exc.phase, str(exc))
    return passed(
        "backups",
        f"backup {point.backup_id} of {p.target.name} (ModelBackup {point.model_backup}, "
        f"{point.age_seconds():.0f} s old, at most {limit} s allowed, {point.bytes} bytes) "
        "restores, verified",
    )


def standby_capacity_check(p: Preflight) -> PreflightFinding | None:
    """A failover the plan causes has room on the standby (check_standby_capacity)."""
    if not causes_failover(p.plan):
        return None
    try:
        check_standby_capacity(p.rt, p.target)
    except Refusal as exc:
        return failed("standby-capacity", exc.reason, exc.message)
    return passed("standby-capacity", "the standby can take the traffic")


def conditions_check(check: str, conditions: list[str | None]) -> PreflightFinding | None:
    """Every condition compiles (InvalidCondition). The real run's: its gates and its abort
    watch compile them again when they are made."""
    expressions = [condition for condition in conditions if condition]
    if not expressions:
        return None
    try:
        for expression in expressions:
            compile_condition(expression)
    except ConditionError as exc:
        return failed(check, "InvalidCondition", str(exc))
    return passed(check, f"{len(expressions)} conditions compile")


def gate_conditions_check(p: Preflight) -> PreflightFinding | None:
    conditions = [c for g in p.plan.gates for c in (g.success_condition, g.failure_condition)]
    return conditions_check("gate-conditions", conditions)


def abort_conditions_check(p: Preflight) -> PreflightFinding | None:
    return conditions_check("abort-conditions", [a.condition for a in p.plan.abort_conditions])


def golden_set_check(p: Preflight) -> PreflightFinding | None:
    """The golden set the model checks need (GoldenSetInvalid), kept for the run."""
    if p.plan.model_checks is None:
        return None
    try:
        p.golden = load_golden_set(p.rt.hub, p.target.namespace, p.plan.model_checks)
    except Refusal as exc:
        return failed("golden-set", exc.reason, exc.message)
    return passed("golden-set", f"{len(p.golden)} examples")


def prometheus_check(p: Preflight) -> PreflightFinding | None:
    """Every query of a gate or an abort condition has a Prometheus to ask (MetricsMissing).
    The dry run's: the real run learns it when it measures (missing evidence never passes)."""
    queries = [g.prometheus for g in p.plan.gates]
    queries += [a.prometheus for a in p.plan.abort_conditions if a.prometheus is not None]
    if not queries:
        return None
    default = member_prometheus(p.rt, p.target)
    missing = [q.query for q in queries if not (q.url or default)]
    return PreflightFinding(
        check="prometheus",
        ok=not missing,
        reason="MetricsMissing" if missing else None,
        message=(
            f"no Prometheus to ask for {len(missing)} queries"
            if missing
            else f"{len(queries)} queries on {default or 'their own prometheus.url'}"
        ),
    )


class Check(NamedTuple):
    run: Callable[[Preflight], PreflightFinding | None]  # None: nothing to check
    real: bool  # the real run makes it, and is refused when it fails
    dry: bool  # the dry run makes it, and lists it in status.dryRun.preflight


# The preflight's checks, in the order they are made: a real run's reason is the first that
# fails. A check only one kind of run makes, the other learns elsewhere (its docstring says).
CHECKS: Final = (
    Check(target_check, real=True, dry=True),
    Check(tenancy_check, real=True, dry=True),
    Check(traffic_entry_check, real=True, dry=True),
    Check(faults_check, real=True, dry=False),
    Check(backups_check, real=True, dry=True),
    Check(standby_capacity_check, real=True, dry=True),
    Check(gate_conditions_check, real=True, dry=False),
    Check(golden_set_check, real=True, dry=True),
    Check(abort_conditions_check, real=True, dry=False),
    Check(prometheus_check, real=False, dry=True),
)


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
    """Where the probe sends: spec.traffic.url, else the frontend the haproxy provider keeps,
    else the hub EndpointSlice the endpointslice provider keeps (what clients of the hub
    Service use)."""
    if plan.traffic.url:
        return url_resolver(plan.traffic.url)
    haproxy = target.spec.traffic.haproxy
    if target.spec.traffic.provider == "haproxy" and haproxy is not None:
        # The frontend the operator keeps for it in the admin's HAProxy (same settings).
        try:
            return url_resolver(HAProxySettings.from_env().entry_url(haproxy.frontend_port))
        except ConfigError as exc:
            raise Refusal("NoTrafficEntry", f"{exc}; or set spec.traffic.url") from None
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


async def live_probe(
    state: RunState, timeline: Timeline, read_target: Callable[[], dict[str, Any]]
) -> None:
    """status.probe every LIVE_INTERVAL_S while the run goes on: what the probe saw over
    the last LIVE_WINDOW_S (the CLI's live display; the verdict never reads it); and the
    target's ready replicas per cluster then, for the report's replicas chart."""
    while True:
        await asyncio.sleep(LIVE_INTERVAL_S)
        if state.status.phase.is_final:
            return
        try:
            md_status = await asyncio.to_thread(read_target)
            timeline.add_replicas(time.time(), ready_replicas(md_status))
        except Exception as exc:  # a gap in the chart, nothing more
            timeline.add_replicas(time.time(), None)
            log.debug("%s: ready replicas unreadable: %s", state.ref.name, exc)
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
    replicas: Sequence[ReplicaPoint] = (),
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
        doc = report.document(
            ref, plan_name, plan, state.status, clusters, points, history, replicas
        )
        text = report.encode(doc)
        await asyncio.to_thread(report.write, rt.hub, ref, plan_name, text)
    except Exception as exc:
        state.status.report_config_map = None
        log.warning("DrillRun %s/%s: report not kept: %s", ref.namespace, ref.name, exc)
        return
    with contextlib.suppress(Exception):
        await state.write()


# --------------------------------------------------------------------------------- the ends


async def dry_run(run: Run, plan: DrillPlanSpec, target: Target) -> None:
    """Resolve every step and make every preflight check with nothing touched; status.dryRun
    says what the run would do. Planned when the real run could start, Error (the first
    finding's reason) when it could not."""
    rt, state = run.rt, run.state
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
        checked = await asyncio.to_thread(preflight, rt, plan, target, dry_run=True)
    except Exception as exc:  # the hub stopped answering: say so, nothing was touched
        log.exception("%s: the dry run failed", state.ref.name)
        refuse(run, "DryRunFailed", f"the dry run stopped: {exc}", plan)
        return
    findings = checked.findings
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
        status.message = truncate(f"{summary}; the run could not go as planned: {first}")
    else:
        status.phase, status.reason, status.message = Phase.PLANNED, "DryRun", summary
    status.finished_at = now()
    run.ending = Ending(plan, target)


def refuse(run: Run, reason: str, message: str, plan: DrillPlanSpec | None = None) -> None:
    """End a run that could not start, nothing touched: Error (the drill could not do what
    the plan asked), or Failed when preflight already shows the system would not hold."""
    status = run.state.status
    phase = Phase.FAILED if reason in FAILED_BEFORE_START else Phase.ERROR
    status.phase, status.reason, status.message = phase, reason, truncate(message)
    status.started_at = status.started_at or now()
    status.finished_at = now()
    run.ending = Ending(plan, refused=(reason, message))


async def rollback(run: Run, reason: str, message: str) -> None:
    """Undo every outstanding fault of a run whose engine is gone, and end it Aborted."""
    state = run.state
    journal = Journal(state, run.rt.members, seal_of(run.rt))
    loop = asyncio.get_running_loop()
    started = loop.time()
    left = await journal.undo_all()
    while left and loop.time() - started < ROLLBACK_PATIENCE_S:
        await asyncio.sleep(ROLLBACK_RETRY_S)
        left = await journal.undo_all()
    for record in left:
        record.state = "Abandoned"
    undone = sum(1 for r in state.status.faults if r.state == "Undone")
    forged = [r.id for r in state.status.faults if r.state == "Forged"]
    if forged:
        events.forged_entries(state.ref, forged)
    status = state.status
    # The verdict read from the status, as the engine's is: the interrupt recorded, what was
    # still running cut short (Aborted outranks every other phase).
    cut_short(status, Phase.ABORTED, reason, message)
    verdict = verdict_of(status)
    status.phase, status.reason, status.finished_at = verdict.phase, verdict.reason, now()
    status.current_step = None
    status.message = truncate(
        f"{message}; {undone} faults of the journal undone"
        + (
            f"; NOT undone: {', '.join(f'{r.type} {r.id} in {r.cluster}' for r in left)}"
            if left
            else ""
        )
        + (
            f"; {len(forged)} forged journal entries not acted on: {', '.join(forged)}"
            if forged
            else ""
        )
    )
    run.ending = Ending()


async def end(run: Run) -> None:
    """The one exit of every run, whichever way it ended: its status written (the engine
    writes its verdict itself), its metrics, the report, the plan's history bounded after
    the engine ran, a refusal logged; then the target let go. A run that reached no end (an
    exception first) writes nothing: its status stays as it was. The run never writes its
    plan: the plan's daemon derives lastRun from the status written here."""
    rt, state, ending = run.rt, run.state, run.ending
    try:
        if ending is None:
            return
        if not ending.engine_ran:
            await state.write()
        record_metrics(run)
        timeline = ending.timeline
        points = timeline.points() if timeline is not None else []
        replicas = timeline.replicas() if timeline is not None else []
        await keep_report(rt, state, run.plan_name, ending.plan, ending.target, points, replicas)
        if ending.engine_ran and ending.plan is not None:
            # History is bounded when a run ends, whoever started it (a plan or a person).
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    plans.prune_history,
                    rt.hub,
                    state.ref.namespace,
                    run.plan_name,
                    ending.plan.history_limit,
                )
        if ending.refused is not None:
            reason, message = ending.refused
            log.warning(
                "DrillRun %s/%s: %s: %s", state.ref.namespace, state.ref.name, reason, message
            )
    finally:
        if run.held is not None:
            rt.drills.release(run.held.namespace, run.held.name, state.ref.name)


def record_metrics(run: Run) -> None:
    """The run's phase gauge; at its end, the plan's verdict series, counted once (by trigger:
    the schedule's due time, or an apply or a person). A run of no plan has none."""
    state = run.state
    ref, status = state.ref, state.status
    if not run.plan_name:
        return
    phase = str(status.phase)
    metrics.run_phase(ref.namespace, run.plan_name, ref.name, phase)
    if not status.phase.is_final:
        return
    finished = status.finished_at or now()
    metrics.run_ended(
        ref.namespace,
        run.plan_name,
        "schedule" if run.scheduled else "manual",
        phase,
        status.reason,
        finished.timestamp(),
        status.rto_seconds,
    )


async def undo_on_delete(rt: DrillHost, ref: RunRef, status_raw: Any) -> list[str]:
    """The outstanding faults of a deleted run, undone; returns what could not be."""
    state = RunState(rt.hub, ref, DrillRunStatus.parse(status_raw))
    left = await Journal(state, rt.members, seal_of(rt)).undo_all()
    return [f"{r.type} {r.id} in {r.cluster}" for r in left]
