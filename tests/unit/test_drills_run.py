"""A DrillRun's life in the operator (drills/run.py), through `execute_run` as the daemon calls
it: every way a run ends (a verdict, refused before it starts, a dry run, rolled back, an
error) writes the same end in the same order (the status, its metrics, the report,
the plan's history after the engine ran), and the preflight's findings: the real run refuses
on the first failed one, the dry run lists them all. The hub, the members and the engine are
stand-ins (tests/unit/drill_fakes.py); the order of what the run writes is recorded."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import DrillRunStatus
from modeldr.api.phase import Phase
from modeldr.drills import events, plans, report
from modeldr.drills import run as run_module
from modeldr.drills.engine import Drill, Engine
from modeldr.drills.faults import registry
from modeldr.drills.host import DrillHost
from modeldr.drills.probe import Endpoints, Resolver
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunRef, RunState, status_body
from modeldr.kube.activedrills import ActiveDrills
from modeldr.kube.golden import GoldenItem
from tests.specs import minimal_spec
from tests.unit.drill_fakes import (
    TEST_SEAL,
    Consenting,
    FakeDriver,
    FakeMember,
    FakeMembers,
    nowhere,
    target,
)

REF = RunRef("ns", "run-1", "uid-1")
# The real one, before the fixture replaces it with a recorder.
RECORD_METRICS = run_module.record_metrics
URL = "http://entry.example:8080"
COLD = {
    "primary": {"cluster": "primary", "namespace": "ml"},
    "standby": {"cluster": "standby", "namespace": "ml", "mode": "cold"},
}
FAILOVER = {"name": "failover", "action": {"type": "Failover"}, "durationSeconds": 1}
GOLDEN = {"goldenSet": {"configMapRef": {"name": "golden"}}}


def plan_doc(**overrides: Any) -> dict[str, Any]:
    """A plan with one PodKill step on the active cluster, traffic to a fixed URL."""
    doc: dict[str, Any] = {
        "target": {"modelDeployment": "bert"},
        "steadyState": {"durationSeconds": 1},
        "traffic": {"url": URL},
        "steps": [{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1}],
    }
    doc.update(overrides)
    return doc


def gate(condition: str = "result[0] < 1") -> dict[str, Any]:
    return {"name": "errors", "prometheus": {"query": "up"}, "successCondition": condition}


def abort(condition: str = "result[0] > 1") -> dict[str, Any]:
    return {"name": "stop", "prometheus": {"query": "up"}, "condition": condition}


class Capacity:
    def __init__(self, free: int) -> None:
        self._free = free

    def free(self, product: str | None) -> int:
        return self._free


@dataclass
class World:
    """What the run wrote, in order, and what it read where (thread names per read)."""

    log: list[tuple[Any, ...]] = field(default_factory=list)
    reads: list[tuple[str, bool]] = field(default_factory=list)
    members: FakeMembers = field(
        default_factory=lambda: FakeMembers(FakeMember("primary"), FakeMember("standby"))
    )
    drills: ActiveDrills = field(default_factory=ActiveDrills)
    the_target: Any = field(default_factory=target)
    md_status: dict[str, Any] = field(default_factory=lambda: {"activeCluster": "primary"})
    status_error: Exception | None = None
    read_target_error: Refusal | None = None
    capacity: int | Exception = 0
    golden_error: Refusal | None = None
    tenancy_refusal: Refusal | None = None
    engine_error: Exception | None = None
    engine_built: list[Any] = field(default_factory=list)
    # Who held the target when the report was written (the run lets it go after its end).
    held_at_report: list[str | None] = field(default_factory=list)
    # Whether the run holding the target has its verdict already (run_ended's answer).
    holder_ended: bool = False

    def read(self, what: str) -> None:
        self.reads.append((what, threading.current_thread() is threading.main_thread()))

    def host(self) -> DrillHost:
        host = SimpleNamespace(
            hub=nowhere(),
            members=self.members.registry(),
            drills=self.drills,
            tenancy=None,  # the run's checks are FakeTenancy (tenancy_of is replaced)
            seal=TEST_SEAL,
        )
        return cast(DrillHost, host)

    def kinds(self) -> list[str]:
        return [entry[0] for entry in self.log]

    def writes(self) -> list[dict[str, Any]]:
        return [entry[1] for entry in self.log if entry[0] == "write"]

    def read_on_the_loop(self) -> list[str]:
        return [what for what, on_main in self.reads if on_main]


class FakeTenancy(Consenting):
    """The run's tenancy checks: allowed, or the refusal the test gives; the preflight's
    read is recorded like the others."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def preflight_refusal(self) -> Refusal | None:
        self.world.read("tenancy")
        return self.world.tenancy_refusal


class FakeEngine(Engine):
    """The real engine built (its abort watch compiles the plan's conditions), run as a
    stand-in: ends the run Passed with one status write (as Engine._finish does), or raises
    what the test says."""

    def __init__(self, world: World, drill: Drill, gates: list[Any], checker: Any) -> None:
        super().__init__(drill, gates, checker)
        self.world = world
        world.engine_built.append((drill, gates, checker))

    async def execute(self) -> None:
        if self.world.engine_error is not None:
            raise self.world.engine_error
        status = self.drill.state.status
        status.phase, status.reason, status.message = Phase.PASSED, "AllPassed", "all passed"
        status.finished_at = status.started_at
        await self.drill.state.write()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()

    async def write(self: RunState) -> None:
        w.log.append(("write", copy.deepcopy(status_body(self.status))))

    def record_metrics(run: run_module.Run) -> None:
        status = run.state.status
        w.log.append(("metrics", run.plan_name, str(status.phase), status.reason))

    def plan_history(hub: Any, namespace: str, plan: str) -> list[dict[str, Any]]:
        w.log.append(("history", plan))
        return []

    real_document = report.document

    def document(
        ref: RunRef,
        plan_name: str,
        plan: DrillPlanSpec | None,
        status: DrillRunStatus,
        clusters: dict[str, str],
        points: list[Any],
        history: list[dict[str, object]],
        replicas: Sequence[Any] = (),
    ) -> dict[str, Any]:
        w.log.append(("document", plan is not None, sorted(clusters), len(points)))
        return real_document(ref, plan_name, plan, status, clusters, points, history, replicas)

    def write_report(hub: Any, ref: RunRef, plan_name: str, text: str) -> str:
        w.log.append(("report", report.config_map_name(ref.name)))
        w.held_at_report.append(w.drills.holder("ns", "bert"))
        return report.config_map_name(ref.name)

    def prune_history(hub: Any, namespace: str, plan: str, limit: int) -> int:
        w.log.append(("prune", plan, limit))
        return 0

    def target_status(hub: Any, t: Any) -> dict[str, Any]:
        w.read("target_status")
        if w.status_error is not None:
            raise w.status_error
        return dict(w.md_status)

    def read_target(hub: Any, namespace: str, name: str) -> Any:
        w.read("read_target")
        if w.read_target_error is not None:
            raise w.read_target_error
        return w.the_target

    def read_gpu_capacity(api: Any) -> tuple[Capacity, list[Any]]:
        w.read("read_gpu_capacity")
        if isinstance(w.capacity, Exception):
            raise w.capacity
        return Capacity(w.capacity), []

    def load_golden_set(hub: Any, namespace: str, checks: Any) -> tuple[Any, ...]:
        w.read("load_golden_set")
        if w.golden_error is not None:
            raise w.golden_error
        return (GoldenItem("x", "y"),)

    monkeypatch.setattr(RunState, "write", write)
    monkeypatch.setattr(run_module, "record_metrics", record_metrics)
    monkeypatch.setattr(plans, "prune_history", prune_history)
    monkeypatch.setattr(report, "plan_history", plan_history)
    monkeypatch.setattr(report, "document", document)
    monkeypatch.setattr(report, "write", write_report)
    monkeypatch.setattr(run_module, "target_status", target_status)
    monkeypatch.setattr(run_module, "read_target", read_target)
    monkeypatch.setattr(run_module, "read_gpu_capacity", read_gpu_capacity)
    monkeypatch.setattr(run_module, "load_golden_set", load_golden_set)

    def run_ended(hub: Any, namespace: str, name: str) -> bool:
        w.read("run_ended")
        return w.holder_ended

    monkeypatch.setattr(run_module, "run_ended", run_ended)
    monkeypatch.setattr(run_module, "HOLDER_POLL_S", 0.01)
    monkeypatch.setattr(run_module, "Engine", lambda *args: FakeEngine(w, *args))
    monkeypatch.setattr(run_module, "tenancy_of", lambda *args: FakeTenancy(w))
    monkeypatch.setattr(events, "post_event", lambda *args: None)
    monkeypatch.setitem(registry.DRIVERS, "PodKill", FakeDriver(cast(Any, None)))
    return w


def execute(
    world: World,
    plan: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
    status: dict[str, Any] | None = None,
    stop_reason: Callable[[], tuple[str, str] | None] = lambda: None,
    scheduled_time: str | None = None,
) -> None:
    spec = {"planRef": {"name": "plan"}, "plan": plan or plan_doc(), "dryRun": dry_run}
    if scheduled_time is not None:
        spec["scheduledTime"] = scheduled_time
    coro = run_module.execute_run(world.host(), REF, spec, status or {}, stop_reason)
    asyncio.run(asyncio.wait_for(coro, 30))


def last(world: World) -> dict[str, Any]:
    return world.writes()[-2]  # the status the run ended with (the last write names the report)


# The end of a run that never started: its status, metrics, the report (no target: no
# clusters in it), the report's name in the status.
REFUSED_END = ["write", "metrics", "history", "document", "report", "write"]


# ------------------------------------------------------------------ runs that never start


def test_a_finished_run_is_left_alone(world: World) -> None:
    execute(world, status={"phase": "Passed"})
    assert world.log == [] and world.reads == []


def test_a_run_refused_before_its_target_is_known_writes_its_end_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.read_target_error = Refusal("TargetNotOptedIn", "ModelDeployment bert: no label")
    with caplog.at_level(logging.WARNING, logger=run_module.__name__):
        execute(world)
    assert world.kinds() == REFUSED_END
    s = last(world)
    assert (s["phase"], s["reason"], s["message"]) == (
        "Error",
        "TargetNotOptedIn",
        "ModelDeployment bert: no label",
    )
    assert "startedAt" in s and "finishedAt" in s
    assert world.log[1] == ("metrics", "plan", "Error", "TargetNotOptedIn")
    assert world.log[3] == ("document", False, [], 0)  # neither plan nor target in the report
    assert world.writes()[-1]["reportConfigMap"] == report.config_map_name(REF.name)
    assert "TargetNotOptedIn: ModelDeployment bert: no label" in caplog.text


def test_a_busy_target_refuses_the_run_and_stays_with_its_holder(world: World) -> None:
    world.drills.claim("ns", "bert", "other-run")
    execute(world)
    assert world.kinds() == REFUSED_END
    s = last(world)
    assert (s["phase"], s["reason"], s["message"]) == (
        "Error",
        "TargetBusy",
        "DrillRun other-run is running against bert",
    )
    assert world.log[3] == ("document", False, [], 0)
    assert world.drills.holder("ns", "bert") == "other-run"


def test_a_holder_that_ended_already_is_waited_for_not_a_busy_target(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A game day's next run (or a CI loop's) is created while the previous run, its verdict
    written, still finishes: it waits for the release instead of ending TargetBusy; a holder
    that does not let go within the wait still refuses it."""
    world.drills.claim("ns", "bert", "previous-run")
    world.holder_ended = True
    loop_calls = []
    original = world.drills.claim

    def claim(namespace: str, name: str, run: str) -> str | None:
        loop_calls.append(run)
        if len(loop_calls) == 3:  # the previous run lets go meanwhile
            world.drills.release("ns", "bert", "previous-run")
        return original(namespace, name, run)

    monkeypatch.setattr(world.drills, "claim", claim)
    execute(world)
    assert last(world)["phase"] != "Error", last(world)
    assert ("run_ended", False) in world.reads  # asked off the event loop
    assert len(loop_calls) >= 3


def test_a_holder_that_ended_but_never_lets_go_still_refuses_the_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.drills.claim("ns", "bert", "stuck-run")
    world.holder_ended = True
    monkeypatch.setattr(run_module, "HOLDER_ENDING_WAIT_S", 0.05)
    execute(world)
    s = last(world)
    assert (s["phase"], s["reason"]) == ("Error", "TargetBusy")
    assert world.drills.holder("ns", "bert") == "stuck-run"


def test_a_run_found_running_is_rolled_back_and_ends_aborted(world: World) -> None:
    running = {"phase": "Running", "steps": [{"name": "kill", "phase": "Running"}]}
    execute(world, status=running)
    assert world.kinds() == REFUSED_END
    s = last(world)
    assert (s["phase"], s["reason"]) == ("Aborted", "OperatorRestarted")
    assert s["message"] == (
        "the operator restarted mid-run and rolled the run back; 0 faults of the journal undone"
    )
    assert s["steps"][0]["phase"] == "Aborted" and s["steps"][0]["reason"] == "OperatorRestarted"
    assert world.log[3] == ("document", False, [], 0)
    assert world.drills.holder("ns", "bert") is None


# ------------------------------------------------------------- the real run's preflight


# A target whose traffic switches by webhook: a plan needs traffic.url to send to it.
WEBHOOK = {"provider": "webhook", "webhook": {"url": "http://switch.example"}}


def webhook_target() -> Any:
    return target(minimal_spec(traffic=WEBHOOK))


def cold_target(**overrides: Any) -> Any:
    spec = minimal_spec(replicas=2, resources={"gpusPerReplica": 1}, clusters=COLD, **overrides)
    return target(spec)


NODE_FAILURE = {"name": "node", "fault": {"type": "NodeFailure"}, "durationSeconds": 1}
ON_STANDBY = {
    "name": "node",
    "fault": {"type": "NodeFailure", "cluster": "standby"},
    "durationSeconds": 1,
}
NO_ENTRY = (
    "bert routes traffic with the webhook provider: set spec.traffic.url to the entry point "
    "its clients use"
)
UNSUPPORTED = "fault PodKill is not a known fault type; nothing was injected"
NO_PROVIDER = (
    "member cluster 'primary' has no infrastructure provider: its Secret has no key "
    "infrastructure-webhook-url (docs/infrastructure-webhook.md)"
)
NO_SECRET = "member cluster 'standby': no Secret labelled for it (test)"
NOT_ENOUGH = "a failover to standby needs 2 free GPUs to scale its cold standby up; it has 1"
UNKNOWN = (
    "a failover to standby needs 2 free GPUs to scale its cold standby up, and its GPU nodes "
    "could not be read: RuntimeError: no nodes for you"
)
BAD_GATE = "condition 'result >': does not parse at column 8"
BAD_ABORT = "condition 'nope > 1': unknown name 'nope' (only 'result' is defined)"
NO_GOLDEN = "ConfigMap ns/golden key golden.jsonl: 404 Not Found"


def no_entry(w: World, mp: pytest.MonkeyPatch, **plan: Any) -> dict[str, Any]:
    w.the_target = webhook_target()
    return plan_doc(traffic={}, **plan)


def unsupported(w: World, mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.delitem(registry.DRIVERS, "PodKill")
    return plan_doc()


def no_secret(w: World, mp: pytest.MonkeyPatch) -> dict[str, Any]:
    w.members = FakeMembers(FakeMember("primary"))
    return plan_doc(steps=[ON_STANDBY])


def cold(
    w: World, mp: pytest.MonkeyPatch, capacity: int | Exception, **plan: Any
) -> dict[str, Any]:
    w.the_target, w.capacity = cold_target(), capacity
    return plan_doc(**plan)


def bad_golden(w: World, mp: pytest.MonkeyPatch, **plan: Any) -> dict[str, Any]:
    w.golden_error = Refusal("GoldenSetInvalid", NO_GOLDEN)
    return plan_doc(modelChecks=GOLDEN, **plan)


Setup = Callable[[World, pytest.MonkeyPatch], dict[str, Any]]


def case(setup: Setup, phase: str, reason: str, message: str, id: str) -> Any:
    return pytest.param(setup, (phase, reason, message), id=id)


REFUSALS = [
    case(no_entry, "Error", "NoTrafficEntry", NO_ENTRY, id="no-traffic-entry"),
    case(unsupported, "Error", "FaultUnsupported", UNSUPPORTED, id="unsupported-fault"),
    case(
        lambda w, mp: plan_doc(steps=[NODE_FAILURE]),
        "Error",
        "NoProvider",
        NO_PROVIDER,
        id="no-provider",
    ),
    case(no_secret, "Error", "NoProvider", NO_SECRET, id="no-member-secret"),
    case(
        lambda w, mp: cold(w, mp, RuntimeError("no nodes for you"), steps=[FAILOVER]),
        "Error",
        "CapacityUnknown",
        UNKNOWN,
        id="capacity-unknown",
    ),
    case(
        lambda w, mp: cold(w, mp, 1, steps=[FAILOVER]),
        "Failed",
        "StandbyCapacityInsufficient",
        NOT_ENOUGH,
        id="capacity-short",
    ),
    case(
        lambda w, mp: plan_doc(gates=[gate("result >")]),
        "Error",
        "InvalidCondition",
        BAD_GATE,
        id="gate-condition",
    ),
    case(bad_golden, "Error", "GoldenSetInvalid", NO_GOLDEN, id="golden-set"),
    case(
        lambda w, mp: plan_doc(abortConditions=[abort("nope > 1")]),
        "Error",
        "InvalidCondition",
        BAD_ABORT,
        id="abort-condition",
    ),
    # Two at once: the first in the preflight's order is the run's reason.
    case(
        lambda w, mp: no_entry(w, mp, steps=[NODE_FAILURE]),
        "Error",
        "NoTrafficEntry",
        NO_ENTRY,
        id="traffic-entry-before-provider",
    ),
    case(
        lambda w, mp: cold(w, mp, 1, steps=[NODE_FAILURE, FAILOVER]),
        "Error",
        "NoProvider",
        NO_PROVIDER,
        id="provider-before-capacity",
    ),
    case(
        lambda w, mp: cold(w, mp, 1, steps=[FAILOVER], gates=[gate("result >")]),
        "Failed",
        "StandbyCapacityInsufficient",
        NOT_ENOUGH,
        id="capacity-before-gate",
    ),
    case(
        lambda w, mp: bad_golden(w, mp, gates=[gate("result >")]),
        "Error",
        "InvalidCondition",
        BAD_GATE,
        id="gate-before-golden-set",
    ),
    case(
        lambda w, mp: bad_golden(w, mp, abortConditions=[abort("nope > 1")]),
        "Error",
        "GoldenSetInvalid",
        NO_GOLDEN,
        id="golden-set-before-abort",
    ),
]


@pytest.mark.parametrize(("setup", "refusal"), REFUSALS)
def test_the_real_run_refuses_on_the_first_failed_check_with_nothing_touched(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    setup: Setup,
    refusal: tuple[str, str, str],
) -> None:
    with caplog.at_level(logging.WARNING, logger=run_module.__name__):
        execute(world, setup(world, monkeypatch))
    assert world.kinds() == REFUSED_END, world.log
    s = last(world)
    assert (s["phase"], s["reason"], s["message"]) == refusal
    phase, reason, _ = refusal
    assert "dryRun" not in s and "seed" not in s
    assert world.log[1] == ("metrics", "plan", phase, reason)
    assert world.log[3] == ("document", True, [], 0)  # the plan in the report, no target
    assert world.engine_built == []
    assert world.drills.holder("ns", "bert") is None
    assert f"DrillRun ns/run-1: {reason}: {refusal[2]}" in caplog.text


def test_a_refused_preflight_reads_nothing_past_its_first_failure(world: World) -> None:
    world.golden_error = Refusal("GoldenSetInvalid", NO_GOLDEN)
    world.capacity = 1
    world.the_target = cold_target(traffic=WEBHOOK)
    execute(world, plan_doc(traffic={}, steps=[FAILOVER], modelChecks=GOLDEN))
    assert last(world)["reason"] == "NoTrafficEntry"
    assert [what for what, _ in world.reads] == ["read_target", "tenancy"]


def test_a_run_that_passes_preflight_runs_the_engine_and_ends_once(world: World) -> None:
    doc = plan_doc(modelChecks=GOLDEN, gates=[gate()], abortConditions=[abort()], historyLimit=4)
    execute(world, doc)
    assert world.kinds() == [
        "write",
        "metrics",  # Running
        "write",  # the engine's verdict
        "metrics",
        "history",
        "document",
        "report",
        "write",
        "prune",
    ]
    running, verdict = world.writes()[0], world.writes()[1]
    assert running["phase"] == "Running" and running["activeCluster"] == "primary"
    assert [s["name"] for s in running["steps"]] == ["kill"] and "seed" in running
    assert world.log[1] == ("metrics", "plan", "Running", None)
    assert verdict["phase"] == "Passed"
    assert world.log[3] == ("metrics", "plan", "Passed", "AllPassed")
    assert world.log[5] == ("document", True, ["primary", "standby"], 0)
    assert world.log[-1] == ("prune", "plan", 4)
    assert world.held_at_report == ["run-1"]
    assert [what for what, _ in world.reads] == [
        "read_target",
        "tenancy",
        "target_status",
        "load_golden_set",
        "target_status",  # preflight, active
    ]
    drill, gates, checker = world.engine_built[0]
    assert len(gates) == 1 and checker is not None and drill.seed == running["seed"]
    assert world.drills.holder("ns", "bert") is None


@pytest.mark.parametrize(
    ("scheduled_time", "trigger"), [("2030-01-01T00:05:00Z", "schedule"), (None, "manual")]
)
def test_a_runs_end_counts_its_verdict_by_who_started_it(
    world: World, monkeypatch: pytest.MonkeyPatch, scheduled_time: str | None, trigger: str
) -> None:
    # The run's own metrics (the real ones here); its plan's lastRun is the plan's daemon's.
    monkeypatch.setattr(run_module, "record_metrics", RECORD_METRICS)
    labels = {"namespace": "ns", "plan": "plan", "trigger": trigger, "verdict": "Passed"}
    ended = {**labels, "reason": "AllPassed"}
    before = REGISTRY.get_sample_value("modeldr_drill_runs_total", ended) or 0.0
    execute(world, scheduled_time=scheduled_time)
    assert REGISTRY.get_sample_value("modeldr_drill_runs_total", ended) == before + 1
    assert REGISTRY.get_sample_value("modeldr_drill_last_verdict", ended) == 1
    phase = {"namespace": "ns", "plan": "plan", "run": "run-1"}
    assert REGISTRY.get_sample_value("modeldr_drill_run_phase", {**phase, "phase": "Passed"}) == 1
    assert REGISTRY.get_sample_value("modeldr_drill_run_phase", {**phase, "phase": "Running"}) == 0


def test_an_engine_that_raises_still_ends_the_run_and_lets_the_target_go(world: World) -> None:
    world.engine_error = RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        execute(world)
    assert world.kinds() == [
        "write",
        "metrics",
        "metrics",
        "history",
        "document",
        "report",
        "write",
        "prune",
    ]
    assert world.log[2] == ("metrics", "plan", "Running", None)
    assert world.held_at_report == ["run-1"]
    assert world.drills.holder("ns", "bert") is None


# ------------------------------------------------------------------------------ dry runs

# The end of a dry run: Running first, then what every other end writes.
DRY_END = ["write", *REFUSED_END]


def test_a_clean_dry_run_is_planned_and_lists_every_check(world: World) -> None:
    world.the_target = cold_target()
    world.capacity = 2
    world.members = FakeMembers(
        FakeMember("primary", prometheus_url="http://prom.example"), FakeMember("standby")
    )
    doc = plan_doc(steps=[*plan_doc()["steps"], FAILOVER], modelChecks=GOLDEN, gates=[gate()])
    execute(world, doc, dry_run=True)
    assert world.kinds() == DRY_END
    running, s = world.writes()[0], last(world)
    assert running["phase"] == "Running"
    assert running["dryRun"] == {"steps": [], "preflight": []}
    assert (s["phase"], s["reason"]) == ("Planned", "DryRun")
    assert s["message"] == (
        "dry run: 2 steps resolved (1 targets), 6 preflight checks; nothing was touched"
    )
    assert s["activeCluster"] == s["dryRun"]["activeCluster"] == "primary"
    assert s["dryRun"]["preflight"] == [
        {"check": "target", "ok": True, "message": "bert is opted in and free"},
        {"check": "tenancy", "ok": True, "message": "allowed by the TenantPolicies covering ns"},
        {"check": "traffic-entry", "ok": True, "message": "1 ready endpoints"},
        {"check": "standby-capacity", "ok": True, "message": "the standby can take the traffic"},
        {"check": "golden-set", "ok": True, "message": "1 examples"},
        {"check": "prometheus", "ok": True, "message": "1 queries on http://prom.example"},
    ]
    assert [p["step"] for p in s["dryRun"]["steps"]] == ["kill", "failover"]
    assert world.log[2] == ("metrics", "plan", "Planned", "DryRun")
    assert [what for what, _ in world.reads] == [
        "read_target",
        "target_status",
        "tenancy",
        "read_gpu_capacity",
        "load_golden_set",
    ]
    assert world.log[4] == ("document", True, ["primary", "standby"], 0)
    assert world.engine_built == [] and world.held_at_report == ["run-1"]
    assert world.drills.holder("ns", "bert") is None


def test_a_dry_run_lists_every_failed_check_and_ends_on_the_first(world: World) -> None:
    world.capacity = RuntimeError("no nodes for you")
    world.the_target = cold_target(traffic=WEBHOOK)
    world.golden_error = Refusal("GoldenSetInvalid", NO_GOLDEN)
    doc = plan_doc(traffic={}, steps=[FAILOVER], modelChecks=GOLDEN, gates=[gate()])
    execute(world, doc, dry_run=True)
    assert world.kinds() == DRY_END
    s = last(world)
    assert (s["phase"], s["reason"]) == ("Error", "NoTrafficEntry")
    entry = NO_ENTRY
    assert s["message"] == (
        "dry run: 1 steps resolved (0 targets), 6 preflight checks; nothing was touched; "
        f"the run could not go as planned: traffic-entry: {entry}"
    )
    assert s["dryRun"]["preflight"] == [
        {"check": "target", "ok": True, "message": "bert is opted in and free"},
        {"check": "tenancy", "ok": True, "message": "allowed by the TenantPolicies covering ns"},
        {"check": "traffic-entry", "ok": False, "reason": "NoTrafficEntry", "message": entry},
        {"check": "standby-capacity", "ok": False, "reason": "CapacityUnknown", "message": UNKNOWN},
        {"check": "golden-set", "ok": False, "reason": "GoldenSetInvalid", "message": NO_GOLDEN},
        {
            "check": "prometheus",
            "ok": False,
            "reason": "MetricsMissing",
            "message": "no Prometheus to ask for 1 queries",
        },
    ]
    assert world.log[4] == ("document", True, ["primary", "standby"], 0)


def test_a_step_the_dry_run_cannot_resolve_comes_before_the_findings(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.capacity = 0
    world.the_target = cold_target()
    monkeypatch.delitem(registry.DRIVERS, "PodKill")
    execute(world, plan_doc(steps=[*plan_doc()["steps"], FAILOVER]), dry_run=True)
    s = last(world)
    assert (s["phase"], s["reason"]) == ("Error", "FaultUnsupported")
    assert s["message"].endswith(
        "the run could not go as planned: step kill: fault PodKill is not a known fault type; "
        "nothing was injected"
    )
    assert [f["check"] for f in s["dryRun"]["preflight"] if not f["ok"]] == ["standby-capacity"]


def test_a_dry_run_of_a_failover_the_standby_cannot_take_ends_failed(world: World) -> None:
    world.the_target = cold_target()
    world.capacity = 1
    execute(world, plan_doc(steps=[FAILOVER]), dry_run=True)
    s = last(world)
    assert (s["phase"], s["reason"]) == ("Failed", "StandbyCapacityInsufficient")


def test_a_dry_run_the_hub_stops_answering_ends_dry_run_failed(world: World) -> None:
    world.status_error = RuntimeError("the hub went away")
    execute(world, dry_run=True)
    assert world.kinds() == DRY_END
    s = last(world)
    assert (s["phase"], s["reason"], s["message"]) == (
        "Error",
        "DryRunFailed",
        "the dry run stopped: the hub went away",
    )
    assert s["dryRun"] == {"steps": [], "preflight": []}
    assert world.log[4] == ("document", True, [], 0)  # the plan, no target
    assert world.drills.holder("ns", "bert") is None


# ------------------------------------------------------------------ one preflight, off the loop


class ReadMembers(FakeMembers):
    """Members whose Secret reads (get) the world notes, with the thread they ran on."""

    def __init__(self, world: World, *members: FakeMember) -> None:
        super().__init__(*members)
        self.world = world

    def get(self, cluster: str) -> FakeMember:
        self.world.read(f"member {cluster}")
        return super().get(cluster)


def slice_resolver(world: World) -> Callable[..., Resolver]:
    """hub_slice_resolver's stand-in: the hub EndpointSlice read notes its thread."""

    def make(hub: Any, namespace: str, service: str) -> Resolver:
        def resolve() -> Endpoints:
            world.read("endpoint slices")
            return Endpoints(("10.0.0.1",), 8080, "primary")

        return resolve

    return make


def two_failures(world: World) -> dict[str, Any]:
    """A plan with two failed checks: no traffic entry, and a standby of unknown capacity."""
    world.the_target = cold_target(traffic=WEBHOOK)
    world.capacity = RuntimeError("no nodes for you")
    return plan_doc(traffic={}, steps=[FAILOVER])


def test_the_real_run_and_the_dry_run_take_their_findings_from_one_preflight(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[bool, list[dict[str, Any]]]] = []
    real_preflight = run_module.preflight

    def preflight(*args: Any, dry_run: bool) -> run_module.Preflight:
        checked = real_preflight(*args, dry_run=dry_run)
        made.append((dry_run, [f.dump() for f in checked.findings]))
        return checked

    monkeypatch.setattr(run_module, "preflight", preflight)
    doc = two_failures(world)
    execute(world, doc)
    refused = last(world)
    world.log.clear()
    execute(world, doc, dry_run=True)
    listed = last(world)

    entry = {"check": "traffic-entry", "ok": False, "reason": "NoTrafficEntry", "message": NO_ENTRY}
    capacity = {
        "check": "standby-capacity",
        "ok": False,
        "reason": "CapacityUnknown",
        "message": UNKNOWN,
    }
    (real, real_findings), (dry, dry_findings) = made
    assert (real, dry) == (False, True)
    # The real run stops at the first failed finding and is refused with it...
    assert real_findings[-1] == entry and capacity not in real_findings
    assert (refused["phase"], refused["reason"], refused["message"]) == (
        "Error",
        "NoTrafficEntry",
        NO_ENTRY,
    )
    # ... the dry run lists both, the same findings, and ends on the first.
    assert entry in dry_findings and capacity in dry_findings
    assert listed["dryRun"]["preflight"] == dry_findings
    assert (listed["phase"], listed["reason"]) == ("Error", "NoTrafficEntry")


def test_preflight_makes_each_check_for_the_runs_that_need_it(world: World) -> None:
    world.members = FakeMembers(
        FakeMember("primary", prometheus_url="http://prom.example", infrastructure_url=URL),
        FakeMember("standby"),
    )
    plan = DrillPlanSpec.parse(
        plan_doc(steps=[NODE_FAILURE, FAILOVER], gates=[gate()], abortConditions=[abort()])
    )
    hot = target()  # a hot standby needs no GPUs: its capacity is not read
    real = run_module.preflight(world.host(), plan, hot, dry_run=False)
    dry = run_module.preflight(world.host(), plan, hot, dry_run=True)
    # The dry run resolves faults step by step (status.dryRun.steps) and does not compile
    # conditions; the real run learns of a missing Prometheus when its gates measure.
    assert [f.check for f in real.findings] == [
        "target",
        "tenancy",
        "traffic-entry",
        "faults",
        "standby-capacity",
        "gate-conditions",
        "abort-conditions",
    ]
    assert [f.check for f in dry.findings] == [
        "target",
        "tenancy",
        "traffic-entry",
        "standby-capacity",
        "prometheus",
    ]
    assert all(f.ok for f in real.findings + dry.findings)
    assert real.first_failure() is None and real.resolver is not None


def test_a_failed_check_stops_the_real_runs_preflight_not_the_dry_runs(world: World) -> None:
    plan = DrillPlanSpec.parse(two_failures(world))
    real = run_module.preflight(world.host(), plan, world.the_target, dry_run=False)
    dry = run_module.preflight(world.host(), plan, world.the_target, dry_run=True)
    assert [(f.check, f.ok) for f in real.findings] == [
        ("target", True),
        ("tenancy", True),
        ("traffic-entry", False),
    ]
    assert [(f.check, f.ok) for f in dry.findings] == [
        ("target", True),
        ("tenancy", True),
        ("traffic-entry", False),
        ("standby-capacity", False),
    ]
    assert real.first_failure() == dry.first_failure() == dry.findings[2]
    assert [what for what, _ in world.reads].count("read_gpu_capacity") == 1


def test_the_real_runs_preflight_reads_nothing_on_the_event_loop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.members = ReadMembers(
        world, FakeMember("primary", infrastructure_url=URL), FakeMember("standby")
    )
    world.the_target, world.capacity = cold_target(), 2
    monkeypatch.setattr(run_module, "hub_slice_resolver", slice_resolver(world))
    doc = plan_doc(traffic={}, steps=[NODE_FAILURE, FAILOVER], modelChecks=GOLDEN)
    execute(world, doc)
    assert last(world)["phase"] == "Passed"
    assert [what for what, _ in world.reads] == [
        "read_target",
        "tenancy",
        "target_status",
        "member primary",
        "member standby",
        "read_gpu_capacity",
        "load_golden_set",
        "target_status",
    ]
    assert world.read_on_the_loop() == []


def test_the_dry_runs_preflight_reads_nothing_on_the_event_loop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.members = ReadMembers(
        world, FakeMember("primary", prometheus_url="http://prom.example"), FakeMember("standby")
    )
    world.the_target, world.capacity = cold_target(), 2
    monkeypatch.setattr(run_module, "hub_slice_resolver", slice_resolver(world))
    doc = plan_doc(traffic={}, steps=[FAILOVER], modelChecks=GOLDEN, gates=[gate()])
    execute(world, doc, dry_run=True)
    s = last(world)
    assert s["phase"] == "Planned", s
    assert s["dryRun"]["preflight"][2]["message"] == "1 ready endpoints in primary"
    assert [what for what, _ in world.reads] == [
        "read_target",
        "target_status",
        "tenancy",
        "endpoint slices",
        "member standby",
        "read_gpu_capacity",
        "load_golden_set",
        "member primary",
    ]
    assert world.read_on_the_loop() == []
