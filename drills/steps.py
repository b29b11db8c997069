"""One step of a run: resolve where its fault goes, journal it, inject it (or perform the
action), hold for durationSeconds, undo it, re-check the model, and assess what the probe
saw against the step's expectations over the step's window."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from modeldr.api.base import truncate
from modeldr.api.drillplan import Action, Step
from modeldr.api.drillstatus import FaultRecord, StepStatus
from modeldr.api.phase import Phase, worst
from modeldr.drills import events
from modeldr.drills.answers import measure_answers
from modeldr.drills.consent import check_consent
from modeldr.drills.faults.base import Aim, FaultDriver, Observation, Observing, Undoing
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.faults.registry import driver_for
from modeldr.drills.journal import new_record
from modeldr.drills.probe_stats import (
    ExpectedCluster,
    Roles,
    StepAssessment,
    StepExpectation,
    assess_step,
    failure_summary,
    measure_step,
)
from modeldr.drills.readiness import ready_replicas
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import (
    EXPIRES_PARAMETER,
    FAULT_LAPSED,
    Renewable,
    Renewal,
    first_expiry,
)
from modeldr.drills.runstate import now
from modeldr.drills.target import request_switch, resolve_role, target_status
from modeldr.drills.verdict import Part, PartKind
from modeldr.kube.constants import Role

if TYPE_CHECKING:
    from modeldr.drills.checks import ModelChecker
    from modeldr.drills.engine import Drill

# A renewable fault (agent orders, infrastructure injects) expires the plan's
# faultExpirySeconds after its last renewal (drills/renewal.py); the first expiry also covers
# the longest inject, so a slow provider cannot undo the fault before the first renewal.

# The record's parameter with the step's duration, for a fault whose life it bounds.
HOLD_PARAMETER = "holdSeconds"

log = logging.getLogger(__name__)


class StepRunner:
    def __init__(self, drill: Drill, checker: ModelChecker | None) -> None:
        self.drill = drill
        self.checker = checker

    async def run(self, index: int, step: Step) -> Part:
        d = self.drill
        status = d.state.status.steps[index]
        status.phase, status.started_at = Phase.RUNNING, now()
        d.state.status.current_step = step.name
        d.windows.step, d.windows.step_started = step.name, d.clock()
        start = d.clock()
        active_at_start = await self._active_cluster()
        await d.state.write()
        events.run_event(d, "Normal", "StepStarted", f"step {step.name} started")
        record: FaultRecord | None = None
        driver: FaultDriver | None = None
        renewal: Renewal | None = None
        observed: Observation | None = None
        if await check_consent(d):  # consent, freeze and policy, before every step
            status.interrupted = True
            return await self._end(status, Phase.ABORTED, d.interrupt.reason, d.interrupt.message)
        try:
            if step.fault is not None:
                # Resolved once: the step's inject, renewals and observation ask this driver.
                driver = driver_for(step.fault.type)  # FaultUnsupported
                record = await self._inject(step, driver, active_at_start)
                renewal = self._renew(driver, record)
            elif step.action is not None:
                await self._act(step.action)
            held = await d.interrupt.hold(step.duration_seconds)
            if held and driver is not None and record is not None:
                observed = await self._observe(driver, record)
        except Refusal as exc:
            if d.interrupt.is_set:  # stopped (abort, by hand, deletion) before the fault
                status.interrupted = True
                return await self._end(
                    status, Phase.ABORTED, d.interrupt.reason, d.interrupt.message
                )
            return await self._end(status, Phase.ERROR, exc.reason, exc.message)
        finally:
            if renewal is not None:
                await renewal.stop()  # before the undo: no renewal may land after it
            if record is not None:
                await self._undo(record)
            if step.action is not None and step.action.type == "Load":
                d.probe.set_rate(d.plan.traffic.rate_per_second)  # the plan's rate again
        if not held:
            status.interrupted = True
            return await self._end(status, Phase.ABORTED, d.interrupt.reason, d.interrupt.message)
        if self.checker is not None:
            await self.checker.after(step.name)
        # A window's samples (72,000 for an hour at 20/s) are measured off the event loop.
        assessment = await asyncio.to_thread(self._assess, step, status, start, active_at_start)
        for seen in (observed, self._after_undo(driver, record, step, status)):
            if seen is not None:
                assessment = joined(assessment, seen)
        if renewal is not None and renewal.lapsed:
            # The fault was not in force for the whole step: what was measured proves
            # nothing about it.
            lapsed = f"{step.fault.type if step.fault else 'the fault'} lapsed: {renewal.lapsed}"
            assessment = joined(assessment, Observation(Phase.INCONCLUSIVE, FAULT_LAPSED, lapsed))
        status.active_cluster = await self._active_cluster()
        d.state.status.active_cluster = status.active_cluster
        return await self._end(status, assessment.phase, assessment.reason, assessment.message)

    async def _active_cluster(self) -> str | None:
        d = self.drill
        seen = await asyncio.to_thread(target_status, d.runtime.hub, d.target)
        active = seen.get("activeCluster")
        return str(active) if active else None

    async def _inject(self, step: Step, driver: FaultDriver, active: str | None) -> FaultRecord:
        """Choose the targets, journal, then apply; Refusal leaves nothing injected."""
        d = self.drill
        fault = step.fault
        assert fault is not None
        where = d.target.placement(resolve_role(d.target, fault.cluster, active))
        seed = fault.seed if fault.seed is not None else d.seed
        percent = d.plan.blast_radius.max_pods_percent
        aim = Aim(where, fault, seed, percent)
        plan = await asyncio.to_thread(driver.choose, d.runtime.members, aim)
        node = plan.parameters.get("node")
        if node is not None:  # a node-level fault: the policy's nodes, no collateral damage
            refused = await asyncio.to_thread(d.guard.node_refusal, fault.type, where.cluster, node)
            if refused is not None:
                raise refused
        record = new_record(step.name, fault, driver, where.cluster, where.role, plan)
        if getattr(driver, "bounded_by_step", False):
            record.parameters[HOLD_PARAMETER] = str(step.duration_seconds)
        if isinstance(driver, Renewable):
            # The inject may take up to its allowance: the first expiry counts from its end.
            period = float(d.plan.fault_expiry_seconds)
            record.parameters[EXPIRES_PARAMETER] = first_expiry(driver.inject_allowance_s, period)
        if d.interrupt.is_set:
            raise Refusal(d.interrupt.reason or "Interrupted", "stopped before the fault")
        await d.journal.record(record)  # journal before action: raises if the hub refused
        try:
            await asyncio.to_thread(driver.inject, d.runtime.members, record)
        except Exception as exc:
            # Part of it may be in force (some pods deleted, a cordon set): undo at once.
            failure = (
                exc
                if isinstance(exc, Refusal)
                else Refusal("InjectFailed", f"{fault.type} in {where.cluster}: {exc}")
            )
            record.message = failure.message[:1024]
            await self._undo(record)
            raise failure from None
        await d.journal.applied(record)
        targets = ", ".join(record.targets)
        events.run_event(
            d,
            "Warning",
            "FaultInjected",
            f"{fault.type} in {where.cluster}: {targets} ({record.id})",
        )
        return record

    async def _observe(self, driver: FaultDriver, record: FaultRecord) -> Observation | None:
        """The fault's own expected answer (ModelCorruption: the replica refused), read
        before undo takes the evidence away; a read that fails is no evidence."""
        if not isinstance(driver, Observing):
            return None
        try:
            return await asyncio.to_thread(driver.observe, self.drill.runtime.members, record)
        except Exception as exc:
            what = f"{record.type} {record.id}: could not read its targets: {exc}"
            return Observation(Phase.INCONCLUSIVE, "ObservationFailed", what[:1024])

    @staticmethod
    def _after_undo(
        driver: FaultDriver | None, record: FaultRecord | None, step: Step, status: StepStatus
    ) -> Observation | None:
        """What the undo itself did (ModelStoreLoss: the restore), measured and judged."""
        if not isinstance(driver, Undoing) or record is None:
            return None
        status.restore_seconds = FaultParameters.of(record).restore_seconds
        return driver.after_undo(record, step.expect)

    def _renew(self, driver: FaultDriver, record: FaultRecord) -> Renewal | None:
        """Keep the fault's expiry ahead while the step holds it (drills/renewal.py)."""
        if not isinstance(driver, Renewable):
            return None
        period = float(self.drill.plan.fault_expiry_seconds)
        renewal = Renewal(driver, self.drill.runtime.members, record, period)
        renewal.start()
        return renewal

    async def _undo(self, record: FaultRecord) -> None:
        d = self.drill
        if await d.journal.undo(record):
            events.run_event(d, "Normal", "FaultUndone", f"{record.type} {record.id} undone")
        else:
            what = f"{record.type} {record.id} in {record.cluster}: {record.message}"
            d.interrupt.set(Phase.ERROR, "UndoFailed", what)

    async def _act(self, action: Action) -> None:
        d = self.drill
        if action.type == "Wait":
            return
        if action.type == "Load":
            assert action.rate_per_second is not None  # the model's rule
            ramp = float(action.ramp_seconds or 0)
            d.probe.set_rate(action.rate_per_second, ramp)
            what = f"probe to {action.rate_per_second:g} requests/s" + (
                f" over {ramp:g} s" if ramp else ""
            )
            events.run_event(d, "Normal", "LoadStarted", what)
            return
        role: Role = "standby" if action.type == "Failover" else "primary"
        await asyncio.to_thread(request_switch, d.runtime.hub, d.target, role)
        events.run_event(d, "Normal", "SwitchRequested", f"{action.type}: traffic to {role}")

    def _assess(
        self, step: Step, status: StepStatus, start: float, active_at_start: str | None
    ) -> StepAssessment:
        d = self.drill
        end = d.clock()
        samples = d.probe.samples()
        measured = measure_step(samples, start, end)
        checks = d.plan.model_checks
        if checks is not None:
            answers = measure_answers(d.answers, samples, start, end, checks.min_agreement)
            measured = replace(
                measured,
                judged=answers.judged,
                wrong=answers.wrong,
                wrong_answer_ratio=answers.wrong_answer_ratio,
                time_to_correct_seconds=answers.time_to_correct_seconds,
            )
            status.answer_accuracy = answers.answer_accuracy
        status.rto_seconds, status.error_ratio = measured.rto_seconds, measured.error_ratio
        status.p99_latency_ms = measured.p99_latency_ms
        status.requests, status.failed_requests = measured.sent, measured.failed
        status.wrong_answer_ratio = measured.wrong_answer_ratio
        status.time_to_correct_seconds = measured.time_to_correct_seconds
        measured = replace(measured, ready_replicas=self._ready_replicas())
        status.answering_clusters = list(measured.answering) or None
        status.ready_replicas = measured.ready_replicas
        expect = step.expect
        wanted = ExpectedCluster(expect.active_cluster) if expect.active_cluster else None
        expectation = StepExpectation(
            active_cluster=wanted,
            max_rto_seconds=expect.max_rto_seconds,
            max_error_ratio=expect.max_error_ratio,
            max_p99_latency_ms=expect.max_p99_latency_ms,
            max_time_to_correct_seconds=expect.max_time_to_correct_seconds,
            max_wrong_answer_ratio=expect.max_wrong_answer_ratio,
            active_clusters=expect.active_clusters,
            min_replicas=expect.min_replicas.model_dump(exclude_none=True)
            if expect.min_replicas
            else None,
        )
        roles = Roles(d.target.cluster("primary"), d.target.cluster("standby"), active_at_start)
        assessment = assess_step(expectation, measured, roles)
        failures = failure_summary(samples, start, end)
        if not failures:
            return assessment
        return StepAssessment(
            assessment.phase, assessment.reason, f"{assessment.message}; {failures}"
        )

    def _ready_replicas(self) -> dict[str, int] | None:
        """Ready replicas per role from the ModelDeployment's status (None: unreadable)."""
        try:
            status = self.drill.target_status()
        except Exception as exc:  # no evidence, not an error of the step: minReplicas unknown
            log.warning("ready replicas of %s unreadable: %s", self.drill.target.name, exc)
            return None
        return ready_replicas(status)

    async def _end(self, status: StepStatus, phase: Phase, reason: str, message: str) -> Part:
        d = self.drill
        status.phase, status.reason = phase, reason or None
        status.message, status.finished_at = truncate(message), now()
        rtos = [s.rto_seconds for s in d.state.status.steps if s.rto_seconds is not None]
        d.state.status.rto_seconds = max(rtos) if rtos else None
        await d.state.write()
        kind = "Normal" if phase is Phase.PASSED else "Warning"
        events.run_event(d, kind, f"Step{phase}", f"step {status.name}: {message}")
        return Part(PartKind.STEP, status.name, phase, reason, message)

    def skip_rest(self, first: int, why: str) -> None:
        for status in self.drill.state.status.steps[first:]:
            status.message = why


def joined(assessment: StepAssessment, observed: Observation) -> StepAssessment:
    """The step's assessment with its fault's observation: the worse phase (and its reason)
    wins, both messages stay."""
    phase = worst([assessment.phase, observed.phase])
    reason = assessment.reason if phase is assessment.phase else observed.reason
    return StepAssessment(phase, reason, f"{assessment.message}; {observed.message}")
