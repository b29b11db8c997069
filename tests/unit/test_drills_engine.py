"""The run engine's orchestration (drills/engine.py, steps.py, aborts.py, gaterunner.py)
without a cluster: a RunState that keeps what it would write, a fault driver that records
what it is asked, a probe whose answers a fault breaks, and the real Journal, Interrupt,
AbortWatch, GateRunner, StepRunner and Engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldr.api.drillplan import DrillPlanSpec, Gate, PrometheusQuery
from modeldr.api.drillstatus import DrillRunStatus, FaultRecord, SteadyStateStatus
from modeldr.api.phase import Phase
from modeldr.drills import aborts, checks, consent, events, gaterunner, steps
from modeldr.drills import engine as engine_module
from modeldr.drills import journal as journal_module
from modeldr.drills.aborts import AbortWatch
from modeldr.drills.checks import ModelChecker
from modeldr.drills.engine import (
    SETUP_MARGIN_S,
    STEP_MARGIN_S,
    Drill,
    Engine,
    Interrupt,
    deadline_seconds,
    steps_status,
)
from modeldr.drills.faults import registry
from modeldr.drills.faults.infrastructure import INJECT_TIMEOUT_S
from modeldr.drills.gaterunner import GateRunner, Windows
from modeldr.drills.probe import Endpoints
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import EXPIRES_PARAMETER
from modeldr.drills.runstate import StatusWriteError
from modeldr.drills.steps import StepRunner
from modeldr.drills.target import Target, resolve_role
from modeldr.drills.verdict import PartKind, parts_of, verdict_message, verdict_of
from modeldr.kube.golden import GoldenItem
from modeldr.kube.members import MemberRegistry
from modeldr.kube.promql import QueryOutcome, QueryRejected, QueryUnavailable, QueryValues
from tests.specs import minimal_spec
from tests.unit.drill_fakes import (
    Consenting,
    FakeDriver,
    FakeMember,
    FakeMembers,
    FakeProbe,
    QuickInterrupt,
    RecordingState,
    make_drill,
    plan_spec,
    serving_status,
    target,
)

# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Kubernetes Events the run posts (type, reason, message)."""
    seen: list[tuple[str, str, str]] = []

    def post(body: Any, type_: str, reason: str, message: str) -> None:
        seen.append((type_, reason, message))

    monkeypatch.setattr(events, "post_event", post)
    return seen


@pytest.fixture
def active(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The ModelDeployment's status as the hub would show it (target_status)."""
    shown: dict[str, Any] = {"activeCluster": "primary"}

    def target_status(hub: Any, t: Any) -> dict[str, Any]:
        if isinstance(shown.get("raise"), Exception):
            raise shown["raise"]
        return dict(shown)

    monkeypatch.setattr(steps, "target_status", target_status)
    return shown


@pytest.fixture
def state() -> RecordingState:
    return RecordingState()


@pytest.fixture
def members() -> FakeMembers:
    return FakeMembers(FakeMember("primary"), FakeMember("standby"))


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch, state: RecordingState) -> FakeDriver:
    fake = FakeDriver(state)
    # steps.driver_for and journal.undo both read registry.DRIVERS (the same dict).
    monkeypatch.setitem(registry.DRIVERS, "PodKill", fake)
    return fake


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The journal's undo back-off (1 s and more) not waited; the watch's short ticks are.
    (journal.py calls asyncio.sleep through the asyncio module, so this patches it for all.)"""
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: Any = None) -> Any:
        return await real_sleep(0 if seconds >= 1.0 else seconds, result)

    monkeypatch.setattr("modeldr.drills.journal.asyncio.sleep", sleep)
    yield


@pytest.fixture
def fast_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The abort watch and gates look every few ms instead of every second."""
    monkeypatch.setattr(aborts, "EVERY_S", 0.005)
    monkeypatch.setattr(aborts, "PROBE_WARMUP_S", 0.0)
    monkeypatch.setattr(gaterunner, "TICK_S", 0.002)


def ready(drill: Drill) -> Drill:
    """What run.start() sets before the engine runs."""
    drill.state.status.steps = steps_status(drill.plan)
    drill.state.status.steady_state = SteadyStateStatus()
    return drill


# ----------------------------------------------------------------------------- Interrupt


def test_interrupt_first_reason_wins() -> None:
    interrupt = Interrupt()
    assert not interrupt.is_set and interrupt.phase is None
    interrupt.set(Phase.ABORTED, "AbortConditionMet", "error ratio 1 > 0.9")
    interrupt.set(Phase.ERROR, "UndoFailed", "later")
    assert interrupt.is_set
    assert (interrupt.phase, interrupt.reason, interrupt.message) == (
        Phase.ABORTED,
        "AbortConditionMet",
        "error ratio 1 > 0.9",
    )


def test_hold_is_true_after_the_time() -> None:
    async def scenario() -> tuple[bool, float]:
        started = time.monotonic()
        held = await Interrupt().hold(0.05)
        return held, time.monotonic() - started

    held, took = asyncio.run(scenario())
    assert held is True
    assert took >= 0.045


def test_hold_is_false_as_soon_as_interrupted() -> None:
    async def scenario() -> tuple[bool, float]:
        interrupt = Interrupt()
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, interrupt.set, Phase.ABORTED, "StoppedByHand", "stop")
        started = time.monotonic()
        held = await interrupt.hold(30)
        return held, time.monotonic() - started

    held, took = asyncio.run(scenario())
    assert held is False
    assert took < 5


def test_hold_after_an_interrupt_returns_false_at_once_and_negative_time_holds() -> None:
    async def scenario() -> tuple[bool, bool]:
        fresh = await Interrupt().hold(-3)
        interrupt = Interrupt()
        interrupt.set(Phase.ERROR, "DeadlineExceeded", "late")
        return fresh, await interrupt.hold(30)

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == (True, False)


# ---------------------------------------------------------------------- deadline_seconds


def test_deadline_is_the_plans_durations_plus_margins() -> None:
    plan = plan_spec(
        steadyState={"durationSeconds": 5},
        steps=[
            {"name": "a", "fault": {"type": "PodKill"}, "durationSeconds": 15},
            {"name": "b", "fault": {"type": "ClusterOutage"}, "durationSeconds": 40},
            {"name": "c", "action": {"type": "Failback"}, "durationSeconds": 30},
        ],
    )
    # The wait for the target to serve (default 180 s) counts too.
    wait = 180
    assert deadline_seconds(plan) == (
        SETUP_MARGIN_S + wait + 2 * 5 + (15 + 40 + 30) + 3 * STEP_MARGIN_S
    )
    assert deadline_seconds(plan) == 755.0


# ---------------------------------------------------------- resolve_role (fault.cluster)


def _east_west() -> Target:
    spec = minimal_spec(
        clusters={
            "primary": {"cluster": "east", "namespace": "ml"},
            "standby": {"cluster": "west", "namespace": "ml", "mode": "hot"},
        }
    )
    return target(spec)


@pytest.mark.parametrize(
    ("cluster", "active_now", "role"),
    [
        ("active", "east", "primary"),
        ("active", "west", "standby"),
        ("primary", "west", "primary"),
        ("standby", "east", "standby"),
        ("primary", None, "primary"),
        ("east", "west", "primary"),
        ("west", "east", "standby"),
    ],
)
def test_fault_cluster_resolves_active_roles_and_member_names(
    cluster: str, active_now: str | None, role: str
) -> None:
    assert resolve_role(_east_west(), cluster, active_now) == role


@pytest.mark.parametrize(("cluster", "active_now"), [("north", "east"), ("active", "north")])
def test_fault_cluster_refuses_what_is_not_a_member_of_the_target(
    cluster: str, active_now: str | None
) -> None:
    with pytest.raises(Refusal) as caught:
        resolve_role(_east_west(), cluster, active_now)
    assert caught.value.reason == "UnknownCluster"
    assert "east" in caught.value.message and "west" in caught.value.message


def test_fault_cluster_active_says_when_the_active_cluster_is_not_known_yet() -> None:
    with pytest.raises(Refusal) as caught:
        resolve_role(_east_west(), "active", None)
    assert caught.value.reason == "ActiveClusterUnknown"


# -------------------------------------------------------------------- StepRunner.run


def test_a_fault_step_journals_before_it_injects_then_holds_and_undoes(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    drill = ready(make_drill(plan_spec(), state, members, probe=FakeProbe("primary")))
    step = drill.plan.steps[0]
    part = asyncio.run(StepRunner(drill, None).run(0, step))

    assert driver.kinds() == ["plan", "inject", "undo"]
    assert driver.calls[0] == ("plan", "primary")  # cluster active → the primary, active now
    # Journal before action: when inject ran, the hub had the record, still Recorded.
    [seen] = driver.journal_at_inject
    assert seen is not None and seen["state"] == "Recorded"
    assert seen["targets"] == ["pod-a"] and seen["cluster"] == "primary"
    [record] = state.status.faults
    assert driver.calls[1:] == [("inject", record.id), ("undo", record.id)]
    states = [
        next((f["state"] for f in w.get("faults", []) if f["id"] == record.id), None)
        for w in state.writes
    ]
    assert states.index("Recorded") < states.index("Applied") < states.index("Undone")
    assert record.state == "Undone" and record.applied_at and record.undone_at
    assert record.seed == 7  # the run's seed, recorded
    # It held for the step's duration (the QuickInterrupt scales the real wait down).
    assert isinstance(drill.interrupt, QuickInterrupt)
    assert drill.interrupt.asked == [step.duration_seconds]

    assert part.kind is PartKind.STEP and part.name == "kill"
    assert part.phase is Phase.PASSED, part.message
    status = state.status.steps[0]
    assert status.phase is Phase.PASSED and status.started_at and status.finished_at
    assert status.requests and status.failed_requests == 0
    assert status.active_cluster == "primary"
    reasons = [reason for _, reason, _ in posted]
    assert reasons == ["StepStarted", "FaultInjected", "FaultUndone", "StepPassed"]


class RenewingDriver(FakeDriver):
    """A FakeDriver that can renew (as the agent's and the infrastructure drivers can)."""

    inject_allowance_s = INJECT_TIMEOUT_S

    def __init__(self, state: RecordingState) -> None:
        super().__init__(state)
        self.renewed: list[datetime] = []

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        with self._lock:
            self.calls.append(("renew", record.id))
            self.renewed.append(expires_at)


def test_a_renewable_fault_expires_a_period_after_each_renewal_and_none_after_undo(
    monkeypatch: pytest.MonkeyPatch,
    members: FakeMembers,
    state: RecordingState,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    renewing = RenewingDriver(state)
    monkeypatch.setitem(registry.DRIVERS, "PodKill", renewing)
    # A 3 s period renews every second: a 2 s step (held in real time) sees several.
    drill = ready(make_drill(plan_spec(faultExpirySeconds=3), state, members))
    drill.interrupt = QuickInterrupt(scale=1.0)
    step = drill.plan.steps[0].model_copy(update={"duration_seconds": 2})
    before = datetime.now(UTC)
    asyncio.run(StepRunner(drill, None).run(0, step))
    expires = datetime.fromisoformat(state.status.faults[0].parameters[EXPIRES_PARAMETER])
    # The first expiry covers the longest inject, then one period.
    wanted = before + timedelta(seconds=INJECT_TIMEOUT_S + 3)
    assert wanted <= expires <= wanted + timedelta(seconds=5)
    # Renewed at once after the inject, then every period/3, each to now + the period.
    kinds = [kind for kind, _ in renewing.calls]
    assert kinds[:3] == ["plan", "inject", "renew"] and kinds[-1] == "undo", kinds
    assert 2 <= kinds.count("renew") <= 4, kinds
    for moment in renewing.renewed:
        assert before + timedelta(seconds=3) <= moment <= datetime.now(UTC) + timedelta(seconds=3)


def test_a_fault_that_cannot_renew_gets_no_expiry(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    drill = ready(make_drill(plan_spec(), state, members))
    asyncio.run(StepRunner(drill, None).run(0, drill.plan.steps[0]))
    assert EXPIRES_PARAMETER not in state.status.faults[0].parameters
    assert "renew" not in [kind for kind, _ in driver.calls]


def test_a_step_aimed_at_a_cluster_that_is_no_member_ends_error_with_nothing_done(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    plan = plan_spec(
        steps=[
            {"name": "kill", "fault": {"type": "PodKill", "cluster": "north"}, "durationSeconds": 1}
        ]
    )
    drill = ready(make_drill(plan, state, members))
    part = asyncio.run(StepRunner(drill, None).run(0, plan.steps[0]))
    assert (part.phase, part.reason) == (Phase.ERROR, "UnknownCluster")
    assert driver.calls == [] and state.status.faults == []
    assert state.status.steps[0].phase is Phase.ERROR


def test_an_unsupported_fault_ends_its_step_error_before_the_journal(
    monkeypatch: pytest.MonkeyPatch,
    members: FakeMembers,
    state: RecordingState,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    # Every type is made at present: pretend this version does not make Latency.
    monkeypatch.delitem(registry.DRIVERS, "Latency")
    monkeypatch.setitem(registry.UNSUPPORTED, "Latency", "is not made by this test's version")
    plan = plan_spec(
        steps=[
            {
                "name": "slow",
                "fault": {"type": "Latency", "latencyMilliseconds": 100},
                "durationSeconds": 1,
            }
        ]
    )
    drill = ready(make_drill(plan, state, members))
    part = asyncio.run(StepRunner(drill, None).run(0, plan.steps[0]))
    assert (part.phase, part.reason) == (Phase.ERROR, "FaultUnsupported")
    assert "nothing was injected" in part.message
    assert state.status.faults == []
    assert isinstance(drill.interrupt, QuickInterrupt) and drill.interrupt.asked == []


@pytest.mark.parametrize(
    ("error", "reason", "words"),
    [
        (
            Refusal("NodeAlreadyCordoned", "node n1 is cordoned already"),
            "NodeAlreadyCordoned",
            "cordoned already",
        ),
        (RuntimeError("connection reset"), "InjectFailed", "PodKill in primary: connection reset"),
    ],
)
def test_a_failed_inject_is_undone_at_once_and_ends_the_step_error(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    error: Exception,
    reason: str,
    words: str,
) -> None:
    driver.inject_error = error
    drill = ready(make_drill(plan_spec(), state, members))
    part = asyncio.run(StepRunner(drill, None).run(0, drill.plan.steps[0]))
    assert (part.phase, part.reason) == (Phase.ERROR, reason)
    assert words in part.message
    # Part of it may be in force: undone at once, and not held.
    assert driver.kinds() == ["plan", "inject", "undo"]
    [record] = state.status.faults
    assert record.state == "Undone" and record.applied_at is None
    assert isinstance(drill.interrupt, QuickInterrupt) and drill.interrupt.asked == []


def test_no_fault_is_injected_when_the_hub_refuses_the_journal(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    drill = ready(make_drill(plan_spec(), state, members))
    runner = StepRunner(drill, None)
    state.fail_writes = 1  # the journal write (the step's own start write already happened)

    async def scenario() -> None:
        await drill.state.write()  # as run() does first
        await runner._inject(drill.plan.steps[0], driver, "primary")

    with pytest.raises(StatusWriteError):
        asyncio.run(scenario())
    assert "inject" not in driver.kinds()


def test_an_interrupt_before_the_fault_injects_nothing(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
) -> None:
    drill = ready(make_drill(plan_spec(), state, members))
    drill.interrupt.set(Phase.ABORTED, "StoppedByHand", "spec.abort was set")
    part = asyncio.run(StepRunner(drill, None).run(0, drill.plan.steps[0]))
    assert part.phase is not Phase.PASSED
    assert "inject" not in driver.kinds() and state.status.faults == []


def test_an_undo_that_keeps_failing_interrupts_the_run(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    no_backoff: None,
) -> None:
    driver.undo_always_fails = True
    drill = ready(make_drill(plan_spec(), state, members))
    asyncio.run(StepRunner(drill, None).run(0, drill.plan.steps[0]))
    [record] = state.status.faults
    assert record.state == "Applied"
    assert (drill.interrupt.phase, drill.interrupt.reason) == (Phase.ERROR, "UndoFailed")
    assert record.id in drill.interrupt.message


# ---------------------------------------------------------------------------- Engine


def _run(
    drill: Drill, gates: list[GateRunner] | None = None, checker: ModelChecker | None = None
) -> None:
    """Drive a whole run, then check its verdict is a function of its status: of the status
    in memory and of the last one written (what the apiserver holds, read back)."""
    asyncio.run(asyncio.wait_for(Engine(ready(drill), gates or [], checker).execute(), 30))
    assert isinstance(drill.state, RecordingState)
    assert_verdict_read_from_status(drill.state)


def assert_verdict_read_from_status(state: RecordingState) -> None:
    status = state.status
    written = DrillRunStatus.model_validate(state.writes[-1])
    for seen in (status, written):
        verdict = verdict_of(seen)
        assert (verdict.phase, verdict.reason, verdict_message(verdict, seen)) == (
            status.phase,
            status.reason,
            status.message,
        ), parts_of(seen)


def test_a_clean_run_passes_and_leaves_nothing_in_force(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    drill = make_drill(plan_spec(), state, members, probe=probe)
    _run(drill)
    status = state.status
    assert status.phase is Phase.PASSED, status.message
    assert status.deadline is not None and status.finished_at is not None
    assert status.current_step is None
    assert [f.state for f in status.faults] == ["Undone"]
    assert status.steady_state is not None
    assert status.steady_state.before and status.steady_state.before.phase is Phase.PASSED
    assert status.steady_state.after and status.steady_state.after.phase is Phase.PASSED
    assert probe.started and probe.stopped
    assert state.writes[-1]["phase"] == "Passed"  # the verdict was written, not just kept
    assert ("Normal", "DrillPassed") in [(t, r) for t, r, _ in posted]


def test_steady_state_not_met_before_the_first_fault_touches_nothing(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    probe.flaky = True  # it serves (the wait is over at once), half the requests fail
    drill = make_drill(plan_spec(), state, members, probe=probe)
    _run(drill)
    assert (state.status.phase, state.status.reason) == (Phase.ERROR, "SteadyStateNotMet")
    assert driver.calls == [] and state.status.faults == []


def test_a_target_that_never_serves_ends_error_target_not_ready_and_is_never_aborted(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    probe.break_()
    probe.broken_since = time.monotonic() - 60  # every request refused all along
    plan = plan_spec(
        steadyState={"durationSeconds": 1, "waitForTargetSeconds": 1},
        abortConditions=[{"name": "failing", "maxErrorRatio": 0.5, "windowSeconds": 1}],
    )
    seen: list[str] = []

    def loading() -> dict[str, Any]:
        seen.append(state.status.message or "")
        return serving_status(ready=False)

    drill = make_drill(plan, state, members, probe=probe, target_status=loading)
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ERROR, "TargetNotReady"), status.message
    assert "did not serve within 1 s" in (status.message or "")
    assert "ServersNotAnswering" in (status.message or "")
    assert "0 of" in (status.message or "") and "refused x" in (status.message or "")
    assert status.steady_state is not None and status.steady_state.before is not None
    assert status.steady_state.before.reason == "TargetNotReady"
    # Its abort condition was never judged against a model that had not started.
    assert [c.phase for c in status.abort_conditions] != [Phase.ABORTED]
    assert driver.calls == [] and status.faults == []
    # The live message said what it waited for while it waited.
    assert any(m.startswith("waiting up to 1 s for the target to serve") for m in seen)


def test_a_target_that_starts_serving_is_waited_for_then_judged_from_then_on(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    probe.break_()
    probe.broken_since = time.monotonic() - 60  # loading: every request refused so far
    plan = plan_spec(
        steadyState={"durationSeconds": 1, "waitForTargetSeconds": 60},
        abortConditions=[{"name": "failing", "maxErrorRatio": 0.5, "windowSeconds": 30}],
    )
    asked = 0

    def starts() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked == 3:  # the servers answer from the third look on
            probe.answer_from_now()
        return serving_status(ready=asked >= 3)

    drill = make_drill(plan, state, members, probe=probe, target_status=starts)
    _run(drill)
    status = state.status
    # The refused requests before it served count neither for the steady state nor for the
    # abort condition's window (30 s: it would see them all otherwise).
    assert (status.phase, status.reason) == (Phase.PASSED, "AllPassed"), status.message
    assert asked >= 3 and [c.phase for c in status.abort_conditions] == [Phase.PASSED]


def test_an_abort_condition_that_holds_mid_step_undoes_the_fault_within_seconds(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    stamps: dict[str, float] = {}

    def on_inject() -> None:
        stamps["inject"] = time.monotonic()
        probe.break_()  # the fault makes every request fail

    def on_undo() -> None:
        stamps["undo"] = time.monotonic()
        probe.heal()

    driver.on_inject, driver.on_undo = on_inject, on_undo
    plan = plan_spec(
        steps=[{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1000}],
        abortConditions=[{"name": "failing", "maxErrorRatio": 0.5, "windowSeconds": 1}],
    )
    # 1000 s of step would hold 20 s at this scale: only the abort ends it sooner.
    drill = make_drill(plan, state, members, probe=probe)
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ABORTED, "AbortConditionMet"), status.message
    assert [f.state for f in status.faults] == ["Undone"]
    assert stamps["undo"] - stamps["inject"] < 5  # DRILLS.md: within 5 s of one holding
    assert status.steps[0].phase is Phase.ABORTED
    assert [c.phase for c in status.abort_conditions] == [Phase.ABORTED]
    assert status.steady_state is not None and status.steady_state.after is None


def test_a_run_stopped_by_hand_mid_step_is_aborted_and_undone(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    plan = plan_spec(
        steps=[{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1000}]
    )
    drill = make_drill(
        plan,
        state,
        members,
        stop_reason=lambda: ("StoppedByHand", "spec.abort was set") if driver.calls else None,
    )
    _run(drill)
    assert (state.status.phase, state.status.reason) == (Phase.ABORTED, "StoppedByHand")
    assert driver.kinds() == ["plan", "inject", "undo"]
    assert [f.state for f in state.status.faults] == ["Undone"]


def test_consent_withdrawn_mid_step_aborts_the_run_and_undoes_the_fault(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consent, "CONSENT_EVERY_S", 0.005)
    plan = plan_spec(
        steps=[{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1000}]
    )
    why = ("ConsentRevoked", "the target bert no longer carries modeldr.io/drills=enabled")

    class WithdrawnOnceInjected(Consenting):
        def lapse(self) -> tuple[str, str] | None:
            return why if "inject" in driver.kinds() else None

    drill = make_drill(plan, state, members, guard=WithdrawnOnceInjected())
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ABORTED, "ConsentRevoked")
    assert driver.kinds() == ["plan", "inject", "undo"]
    assert [f.state for f in status.faults] == ["Undone"]
    assert ("Warning", "ConsentRevoked", why[1]) in posted


@pytest.mark.parametrize("reason", ["Frozen", "ConsentRevoked", "PolicyDenied"])
def test_a_lapse_found_before_a_step_touches_nothing(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
    reason: str,
) -> None:
    drill = make_drill(plan_spec(), state, members, guard=Consenting(lapsed=(reason, "why")))
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ABORTED, reason)
    assert driver.kinds() == [] and status.faults == []
    assert status.steps[0].phase is Phase.ABORTED


def test_a_node_fault_refused_for_collateral_damage_is_never_journaled(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    driver.node = "gpu-node-1"
    hurt = Refusal("CollateralDamage", "NodeDrain on node gpu-node-1 would hurt other/web-7")
    drill = make_drill(plan_spec(), state, members, guard=Consenting(node_refused=hurt))
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ERROR, "CollateralDamage")
    assert "other/web-7" in (status.message or "")
    assert driver.kinds() == ["plan"] and status.faults == []


def test_a_fault_that_cannot_be_undone_never_passes(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
    no_backoff: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver.undo_always_fails = True
    monkeypatch.setattr(engine_module, "UNDO_PATIENCE_S", 0.0)  # one more round on the way out
    drill = make_drill(plan_spec(), state, members)
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ERROR, "UndoFailed")
    [record] = status.faults
    assert record.state == "Applied" and record.id in (status.message or "")
    # The step undid it, then the engine tried again on its way out.
    assert driver.kinds().count("undo") >= 2 * journal_module.UNDO_ATTEMPTS


def test_a_fault_left_behind_is_named_whatever_else_ended_the_run(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
    no_backoff: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver.undo_always_fails = True
    monkeypatch.setattr(engine_module, "UNDO_PATIENCE_S", 0.0)
    plan = plan_spec(
        steps=[{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1000}]
    )
    stop = ("StoppedByHand", "spec.abort was set")
    drill = make_drill(plan, state, members, stop_reason=lambda: stop if driver.calls else None)
    _run(drill)
    status = state.status
    [record] = status.faults
    assert (status.phase, status.reason) == (Phase.ABORTED, "StoppedByHand")
    assert status.message == (
        "step kill: spec.abort was set; also Aborted: run; "
        f"faults not undone: PodKill {record.id} in primary"
    )


def test_a_fault_whose_applied_write_failed_is_still_undone_by_the_engine(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    # The fault is in force but the hub refused the write that says so: the step's own
    # undo never gets the record, so the engine's undo on the way out must.
    state.refuse_once = lambda body: any(f["state"] == "Applied" for f in body.get("faults", []))
    drill = make_drill(plan_spec(), state, members)
    _run(drill)
    assert state.refused == 1
    assert driver.kinds() == ["plan", "inject", "undo"]
    assert [f.state for f in state.status.faults] == ["Undone"]
    assert (state.status.phase, state.status.reason) == (Phase.ERROR, "EngineError")


def test_an_error_in_the_engine_ends_the_run_error_and_stops_the_probe(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    active["raise"] = RuntimeError("hub stopped answering")
    probe = FakeProbe()
    drill = make_drill(plan_spec(), state, members, probe=probe)
    _run(drill)
    assert (state.status.phase, state.status.reason) == (Phase.ERROR, "EngineError")
    assert "hub stopped answering" in (state.status.message or "")
    assert probe.stopped and driver.calls == []


def test_a_step_that_ends_error_skips_the_rest(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    plan = plan_spec(
        steps=[
            {
                "name": "nowhere",
                "fault": {"type": "PodKill", "cluster": "north"},
                "durationSeconds": 1,
            },
            {"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1},
        ]
    )
    drill = make_drill(plan, state, members)
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ERROR, "UnknownCluster")
    assert status.steps[1].phase is Phase.PENDING
    assert "not run" in (status.steps[1].message or "")
    assert driver.calls == []


def test_gates_measure_only_in_their_windows_and_end_in_the_status(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    plan = plan_spec(
        steps=[
            {"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 5},
            {"name": "wait", "action": {"type": "Wait"}, "durationSeconds": 5},
        ],
        gates=[
            {
                "name": "in-wait",
                "steps": ["wait"],
                "prometheus": {"query": "in-wait"},
                "intervalSeconds": 1,
                "successCondition": "result[0] > 0",
            },
            {
                "name": "never",
                "steps": ["kill"],
                "prometheus": {"query": "never"},
                "initialDelaySeconds": 3600,
                "successCondition": "result[0] > 0",
            },
        ],
    )
    seen: list[tuple[str, str | None]] = []
    holder: dict[str, Drill] = {}

    async def query(q: PrometheusQuery) -> QueryOutcome:
        seen.append((q.query, holder["drill"].windows.step))
        return QueryValues((1.0,))

    drill = make_drill(plan, state, members, query=query)
    holder["drill"] = drill
    gates = [GateRunner(g, drill.query, drill.clock) for g in plan.gates]
    _run(drill, gates)
    assert seen and all(step == "wait" for name, step in seen if name == "in-wait")
    assert all(name == "in-wait" for name, _ in seen)
    by_name = {g.name: g for g in state.status.gates}
    assert by_name["in-wait"].phase is Phase.PASSED and by_name["in-wait"].successful >= 1
    assert by_name["never"].phase is Phase.INCONCLUSIVE  # never measured: never a pass
    assert (state.status.phase, state.status.reason) == (Phase.INCONCLUSIVE, "MetricsMissing")


DIGEST = "sha256:" + "0" * 64  # minimal_spec's expectedDigest
GOLDEN = (GoldenItem("great", "pos"), GoldenItem("broken", "neg"))


def test_a_model_check_counts_before_its_step_and_both_failures_are_named(
    monkeypatch: pytest.MonkeyPatch,
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    # The fault fails the step's requests; after its undo they answer again (those that
    # failed stay failed in the step's window).
    driver.on_inject, driver.on_undo = probe.break_, probe.answer_from_now
    plan = plan_spec(
        steps=[
            {
                "name": "kill",
                "fault": {"type": "PodKill"},
                "durationSeconds": 1,
                "expect": {"maxErrorRatio": 0.0},
            }
        ],
        modelChecks={"goldenSet": {"configMapRef": {"name": "golden", "key": "golden.jsonl"}}},
    )
    answers = iter([["pos", "neg"], ["neg", "pos"]])  # after the step: every answer flipped
    monkeypatch.setattr(checks, "classify", lambda endpoints, texts: next(answers))
    # What the server says it serves (V2 model metadata), asked of each address.
    monkeypatch.setattr(checks, "ask_digests", lambda e, model: ({"127.1.0.9": DIGEST}, []))
    drill = make_drill(plan, state, members, probe=probe)
    assert plan.model_checks is not None
    checker = ModelChecker(
        drill, plan.model_checks, GOLDEN, lambda: Endpoints(("127.1.0.9",), 8080, "primary")
    )
    _run(drill, checker=checker)
    status = state.status
    assert [(c.name, c.phase) for c in status.model_checks] == [
        ("baseline", Phase.PASSED),
        ("kill", Phase.FAILED),
    ]
    assert status.steps[0].phase is Phase.FAILED
    assert (status.phase, status.reason) == (Phase.FAILED, "ModelMismatch"), status.message
    assert (status.message or "").startswith("model check kill: agreement 0 < min")
    assert (status.message or "").endswith("; also Failed: step kill")
    assert [(p.kind, p.name) for p in parts_of(status)] == [
        (PartKind.STEADY_STATE, "before"),
        (PartKind.MODEL_CHECK, "baseline"),
        (PartKind.MODEL_CHECK, "kill"),
        (PartKind.STEP, "kill"),
        (PartKind.STEADY_STATE, "after"),
    ]


def test_a_system_that_does_not_recover_fails_the_steady_state_after(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    probe = FakeProbe()
    driver.on_inject = probe.break_  # the undo does not bring the answers back
    drill = make_drill(plan_spec(), state, members, probe=probe)
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.FAILED, "NotRecovered"), status.message
    assert (status.message or "").startswith("steady state after: steady state not met")
    assert status.steps[0].phase is Phase.PASSED and status.interrupt is None


def test_a_stop_in_the_steady_state_before_counts_once_as_the_runs(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    stop = ("StoppedByHand", "spec.abort was set")
    drill = make_drill(plan_spec(), state, members, stop_reason=lambda: stop)
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.ABORTED, "StoppedByHand")
    assert status.message == "run: spec.abort was set"
    assert status.steady_state is not None and status.steady_state.before is not None
    before = status.steady_state.before
    assert (before.phase, before.interrupted) == (Phase.ABORTED, True)
    assert status.interrupt is not None
    assert (status.interrupt.phase, status.interrupt.reason) == (Phase.ABORTED, "StoppedByHand")
    assert status.interrupt.at is not None
    assert driver.calls == [] and status.steps[0].phase is Phase.PENDING


def test_the_deadline_mid_step_aborts_the_step_and_errors_the_run(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    # The clock jumps past the deadline once the fault is in: the watch interrupts, Error.
    def clock() -> float:
        return time.monotonic() + (100_000.0 if "inject" in driver.kinds() else 0.0)

    plan = plan_spec(
        steps=[{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1000}]
    )
    drill = make_drill(plan, state, members, clock=clock)
    _run(drill)
    status = state.status
    assert status.interrupt is not None
    assert (status.interrupt.phase, status.interrupt.reason) == (Phase.ERROR, "DeadlineExceeded")
    # The step cut short counts Aborted (the worst), naming the interrupt's reason.
    assert (status.steps[0].phase, status.steps[0].interrupted) == (Phase.ABORTED, True)
    assert (status.phase, status.reason) == (Phase.ABORTED, "DeadlineExceeded")
    assert [f.state for f in status.faults] == ["Undone"]


def test_an_abort_condition_that_cannot_be_evaluated_keeps_the_run_from_passing(
    members: FakeMembers,
    state: RecordingState,
    driver: FakeDriver,
    active: dict[str, Any],
    posted: list[tuple[str, str, str]],
    fast_watch: None,
) -> None:
    plan = plan_spec(
        abortConditions=[
            {"name": "errors", "prometheus": {"query": "errors"}, "condition": "result[0] > 5"}
        ]
    )
    drill = make_drill(plan, state, members)  # its Prometheus answers with no samples
    _run(drill)
    status = state.status
    assert (status.phase, status.reason) == (Phase.INCONCLUSIVE, "MetricsMissing")
    [condition] = status.abort_conditions
    assert (condition.phase, condition.reason) == (Phase.INCONCLUSIVE, "MetricsMissing")
    assert (condition.message or "").startswith("could not be evaluated")
    assert status.message == f"abort condition errors: {condition.message}"


# --------------------------------------------------------------------------- Windows


def _gate(**fields: Any) -> Gate:
    doc: dict[str, Any] = {
        "name": "g",
        "prometheus": {"query": "up"},
        "successCondition": "result[0] > 0",
    }
    doc.update(fields)
    return Gate.model_validate(doc)


def test_a_gate_without_steps_measures_from_the_runs_start() -> None:
    windows = Windows(step=None, step_started=None, run_started=10.0)
    assert windows.start_for(_gate()) == 10.0
    windows.step, windows.step_started = "a", 20.0
    assert windows.start_for(_gate()) == 10.0


def test_a_gate_with_steps_measures_only_in_those_steps() -> None:
    gate = _gate(steps=["b", "c"])
    windows = Windows(run_started=10.0)
    assert windows.start_for(gate) is None  # steady state: no step
    windows.step, windows.step_started = "a", 20.0
    assert windows.start_for(gate) is None
    windows.step, windows.step_started = "b", 30.0
    assert windows.start_for(gate) == 30.0
    windows.step, windows.step_started = "c", 40.0
    assert windows.start_for(gate) == 40.0


# ------------------------------------------------------------------------ GateRunner


class Answers:
    """A fake Prometheus: answers in order, the last one repeated; counts the queries."""

    def __init__(self, *outcomes: QueryOutcome) -> None:
        self.outcomes = list(outcomes)
        self.asked: list[str] = []

    async def __call__(self, q: PrometheusQuery) -> QueryOutcome:
        self.asked.append(q.query)
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]


def _measure(runner: GateRunner, times: int) -> None:
    async def scenario() -> None:
        for _ in range(times):
            await runner.measure()

    asyncio.run(scenario())


def test_gate_status_is_pending_before_any_measurement_and_inconclusive_if_none_by_the_end() -> (
    None
):
    runner = GateRunner(_gate(count=2), Answers(QueryValues((1.0,))), time.monotonic)
    assert runner.status(over=False).phase is Phase.PENDING
    over = runner.status(over=True)
    assert (over.phase, over.reason) == (Phase.INCONCLUSIVE, "MetricsMissing")
    assert over.finished_at is not None and runner.status(over=False).finished_at is None


def test_gate_status_runs_until_its_count_then_passes() -> None:
    answers = Answers(QueryValues((1.0,)))
    runner = GateRunner(_gate(count=2), answers, time.monotonic)
    _measure(runner, 1)
    assert runner.status(over=False).phase is Phase.RUNNING
    assert runner.status(over=False).started_at is not None
    _measure(runner, 1)
    status = runner.status(over=False)
    assert (status.phase, status.reason) == (Phase.PASSED, "GatePassed")
    assert status.successful == 2 and len(status.measurements) == 2
    assert answers.asked == ["up", "up"]


@pytest.mark.parametrize(
    ("outcome", "phase", "reason"),
    [
        (QueryUnavailable("connection refused"), Phase.INCONCLUSIVE, "MetricsMissing"),
        (QueryValues(()), Phase.INCONCLUSIVE, "MetricsMissing"),
        (QueryValues((float("nan"),)), Phase.INCONCLUSIVE, "MetricsMissing"),
        (QueryRejected("bad_data: parse error"), Phase.ERROR, "GateError"),
        (QueryValues((0.0,)), Phase.FAILED, "GateFailed"),
    ],
)
def test_missing_evidence_or_a_wrong_gate_never_passes(
    outcome: QueryOutcome, phase: Phase, reason: str
) -> None:
    gate = _gate(count=3, failureCondition="result[0] == 0.0")
    runner = GateRunner(gate, Answers(outcome), time.monotonic)
    _measure(runner, 1)
    status = runner.status(over=True)
    assert (status.phase, status.reason) == (phase, reason)


def test_gate_status_keeps_measurements_bounded() -> None:
    runner = GateRunner(
        _gate(inconclusiveLimit=100), Answers(QueryUnavailable("x" * 5000)), time.monotonic
    )
    _measure(runner, 12)
    status = runner.status(over=False)
    assert status.inconclusive == 12
    assert len(status.measurements) == 10
    assert all(len(m.message or "") <= 1024 for m in status.measurements)


def test_gate_run_measures_in_its_windows_only(fast_watch: None) -> None:
    answers = Answers(QueryValues((1.0,)))
    runner = GateRunner(_gate(steps=["b"], intervalSeconds=3600), answers, time.monotonic)
    windows = Windows(run_started=time.monotonic())
    measured: list[str | None] = []

    async def on_measured() -> None:
        measured.append(windows.step)

    async def scenario() -> list[int]:
        counts = []
        task = asyncio.create_task(runner.run(windows, on_measured))
        windows.step, windows.step_started = "a", time.monotonic()
        await asyncio.sleep(0.05)
        counts.append(len(answers.asked))
        windows.step, windows.step_started = "b", time.monotonic()
        await asyncio.sleep(0.05)
        counts.append(len(answers.asked))  # one: the next is an interval (an hour) later
        windows.step, windows.step_started = None, None
        await asyncio.sleep(0.05)
        counts.append(len(answers.asked))
        windows.step, windows.step_started = "b", time.monotonic()  # a new window of b
        await asyncio.sleep(0.05)
        counts.append(len(answers.asked))
        windows.over = True
        await asyncio.wait_for(task, 5)
        return counts

    assert asyncio.run(scenario()) == [0, 1, 1, 2]
    assert measured == ["b", "b"]


def test_gate_run_waits_its_initial_delay(fast_watch: None) -> None:
    answers = Answers(QueryValues((1.0,)))
    runner = GateRunner(_gate(initialDelaySeconds=3600), answers, time.monotonic)
    windows = Windows(run_started=time.monotonic())

    async def nothing() -> None:
        pass

    async def scenario() -> None:
        task = asyncio.create_task(runner.run(windows, nothing))
        await asyncio.sleep(0.05)
        windows.over = True
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert answers.asked == []


# ------------------------------------------------------------------------ AbortWatch


def _abort_plan() -> DrillPlanSpec:
    conditions = [
        {"name": name, "prometheus": {"query": name}, "condition": "result[0] > 5"}
        for name in ("held", "unknown", "clean")
    ]
    return plan_spec(abortConditions=conditions)


def test_abort_conclusions_held_unknown_clean(members: FakeMembers, state: RecordingState) -> None:
    unknown = Answers(QueryUnavailable("Prometheus down"), QueryValues((1.0,)))

    async def query(q: PrometheusQuery) -> QueryOutcome:
        if q.query == "held":
            return QueryValues((10.0,))
        if q.query == "unknown":
            return await unknown(q)
        return QueryValues((1.0,))

    drill = make_drill(_abort_plan(), state, members, query=query)
    watch = AbortWatch(drill)

    async def twice() -> None:
        await watch._evaluate_all()
        await watch._evaluate_all()

    asyncio.run(twice())
    assert (drill.interrupt.phase, drill.interrupt.reason) == (Phase.ABORTED, "AbortConditionMet")
    assert "held" in drill.interrupt.message
    # Held: Aborted at once, while the run goes on.
    held = watch.watched[0].status
    assert (held.phase, held.reason) == (Phase.ABORTED, "AbortConditionMet")
    watch.conclude()
    # The conclusions are in the status, where the verdict reads them.
    assert state.status.abort_conditions == [w.status for w in watch.watched]
    parts = {p.name: p for p in parts_of(state.status)}
    assert (parts["held"].phase, parts["held"].reason) == (Phase.ABORTED, "AbortConditionMet")
    assert "held" in parts["held"].message
    assert (parts["unknown"].phase, parts["unknown"].reason) == (
        Phase.INCONCLUSIVE,
        "MetricsMissing",
    )
    assert "1 of 2" in parts["unknown"].message and "Prometheus down" in parts["unknown"].message
    assert (parts["clean"].phase, parts["clean"].reason) == (Phase.PASSED, "NotMet")
    assert parts["clean"].message == "did not hold in 2 evaluations"
    assert all(w.status.evaluations == 2 for w in watch.watched)


def test_abort_conditions_never_evaluated_are_inconclusive(
    members: FakeMembers, state: RecordingState
) -> None:
    # Not even started: the conclusion still lands in the status (no evidence, no pass).
    AbortWatch(make_drill(_abort_plan(), state, members)).conclude()
    conditions = state.status.abort_conditions
    assert [c.phase for c in conditions] == [Phase.INCONCLUSIVE] * 3
    assert all(c.message == "never evaluated" for c in conditions)


def test_the_watch_interrupts_on_a_stop_by_hand(
    members: FakeMembers, state: RecordingState, fast_watch: None
) -> None:
    drill = make_drill(plan_spec(), state, members, stop_reason=lambda: ("StoppedByHand", "x"))

    async def scenario() -> None:
        task = asyncio.create_task(AbortWatch(drill).run(3600))
        await asyncio.wait_for(drill.interrupt.event.wait(), 5)
        drill.windows.over = True
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert (drill.interrupt.phase, drill.interrupt.reason) == (Phase.ABORTED, "StoppedByHand")


def test_the_watch_ends_a_run_past_its_deadline(
    members: FakeMembers, state: RecordingState, fast_watch: None
) -> None:
    ticks = iter(range(1_000_000))
    drill = make_drill(plan_spec(), state, members, clock=lambda: float(next(ticks)))

    async def scenario() -> None:
        task = asyncio.create_task(AbortWatch(drill).run(2.5))
        await asyncio.wait_for(drill.interrupt.event.wait(), 5)
        drill.windows.over = True
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert (drill.interrupt.phase, drill.interrupt.reason) == (Phase.ERROR, "DeadlineExceeded")


def test_a_hung_prometheus_never_delays_a_stop_by_hand(
    members: FakeMembers, state: RecordingState, fast_watch: None
) -> None:
    """DRILLS.md: a manual abort acts within seconds. Every query hangs (a SIGSTOPped
    Prometheus answers nothing until the query's own timeout, up to 60 s): the stop by hand
    still interrupts the run within a few of the watch's looks."""
    hung = asyncio.Event()

    async def query(q: PrometheusQuery) -> QueryOutcome:
        hung.set()
        await asyncio.sleep(60)
        return QueryValues((1.0,))

    asked: list[float] = []

    def stop_reason() -> tuple[str, str] | None:
        return ("StoppedByHand", "spec.abort was set") if asked else None

    drill = make_drill(_abort_plan(), state, members, query=query, stop_reason=stop_reason)
    drill.windows.run_started = drill.clock()

    async def scenario() -> float:
        task = asyncio.create_task(AbortWatch(drill).run(3600))
        await asyncio.wait_for(hung.wait(), 5)  # a round of queries is in flight, hanging
        asked.append(time.monotonic())
        await asyncio.wait_for(drill.interrupt.event.wait(), 5)
        took = time.monotonic() - asked[0]
        drill.windows.over = True
        await asyncio.wait_for(task, 5)  # the hanging round is cancelled, not waited for
        return took

    took = asyncio.run(scenario())
    assert (drill.interrupt.phase, drill.interrupt.reason) == (Phase.ABORTED, "StoppedByHand")
    assert took < 1.0, took


def test_abort_conditions_are_evaluated_together(
    members: FakeMembers, state: RecordingState
) -> None:
    async def query(q: PrometheusQuery) -> QueryOutcome:
        await asyncio.sleep(0.3)
        return QueryValues((1.0,))

    watch = AbortWatch(make_drill(_abort_plan(), state, members, query=query))
    started = time.monotonic()
    asyncio.run(watch._evaluate_all())
    assert time.monotonic() - started < 0.6  # three slow queries at once, not one by one
    assert all(w.status.evaluations == 1 for w in watch.watched)
