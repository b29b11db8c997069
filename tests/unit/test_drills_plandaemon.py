"""The DrillPlan's daemon (drills/plandaemon.py) and its kopf wiring (drills/handlers.py): a
run's phase change wakes its plan's daemon, which writes lastRun at once (not at its next
periodic derivation); heartbeats wake nothing; a run that went is handed over with its last
state; a missed wake is made up by the periodic derivation; a stop ends the daemon. The hub
is the in-memory CustomObjectsApi of test_drills_plans."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from modeldr.drills import handlers, plandaemon
from modeldr.kube.activedrills import ActiveDrills
from modeldr.kube.constants import DRILLPLANS, DRILLRUNS, RUNTIME_KEY
from tests.unit.drill_fakes import FakeMembers, nowhere
from tests.unit.test_drills_plans import SPEC, FakeCustomObjects, run_obj
from tests.unit.test_drills_plans import api as api  # the fixture


def a_run(name: str, phase: str | None, **status: Any) -> dict[str, Any]:
    run = run_obj(name, "2030-01-01T00:00:00Z", phase)
    run["status"] = {**run.get("status", {}), **status}
    return run


def the_plan(api: type[FakeCustomObjects], *runs: dict[str, Any]) -> None:
    api.objects[(DRILLPLANS, "demo", "nightly")] = {
        "metadata": {"name": "nightly", "namespace": "demo", "uid": "u", "generation": 1},
        "spec": SPEC,
    }
    for run in runs:
        api.objects[(DRILLRUNS, "demo", run["metadata"]["name"])] = run


def last_run(api: type[FakeCustomObjects]) -> dict[str, Any]:
    plan = api.objects.get((DRILLPLANS, "demo", "nightly")) or {}
    return dict((plan.get("status") or {}).get("lastRun") or {})


async def until(check: Callable[[], bool], within: float = 2.0) -> float:
    """Seconds until `check` holds (polled every 10 ms); TimeoutError past `within`."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        for _ in iter(check, True):  # until check() is True
            await asyncio.sleep(0.01)
    return time.monotonic() - started


# ---------------------------------------------------------------------------- PlanWakes


def test_a_runs_phase_change_wakes_its_plans_daemon_and_nothing_else_does() -> None:
    async def scenario() -> None:
        wakes = plandaemon.PlanWakes()
        wake = wakes.register("demo", "nightly")
        wake.take()  # the first pass
        pending = a_run("nightly-1", None)
        assert not wakes.run_event(None, pending)  # a new run: nothing to show yet
        running = a_run("nightly-1", "Running", startedAt="2030-01-01T00:00:01Z")
        assert wakes.run_event("MODIFIED", running)
        assert wake.event.is_set()
        assert wake.take() == (False, True)
        assert [r["status"]["phase"] for r in wake.take_seen()] == ["Running"]
        assert not wake.event.is_set()
        # Heartbeats and the live probe: the same phase, no wake.
        beat = a_run("nightly-1", "Running", heartbeatAt="2030-01-01T00:00:05Z")
        assert not wakes.run_event("MODIFIED", beat)
        assert not wake.event.is_set()
        assert wakes.run_event("MODIFIED", a_run("nightly-1", "Passed"))
        # Another plan's run wakes this one not; a plan with no daemon (yet) is no error.
        wake.take()
        other = run_obj("o-1", "2030-01-01T00:00:00Z", "Passed", plan="other")
        assert not wakes.run_event("MODIFIED", other)
        assert not wake.event.is_set()

    asyncio.run(scenario())


def test_a_run_that_went_wakes_its_plan_with_its_last_state() -> None:
    async def scenario() -> None:
        wakes = plandaemon.PlanWakes()
        wake = wakes.register("demo", "nightly")
        wake.take()
        final = a_run("nightly-1", "Aborted", reason="RunDeleted")
        wakes.run_event("MODIFIED", final)
        wake.take()
        assert wakes.run_event("DELETED", final)  # the same phase, but it went
        assert wake.take() == (False, True)
        seen = wake.take_seen()
        assert seen == [final] and seen[0] is not final  # a copy
        assert ("demo", "nightly-1") not in wakes.phases  # forgotten

    asyncio.run(scenario())


def test_a_spec_change_wakes_the_plans_daemon_and_a_dropped_one_is_gone() -> None:
    async def scenario() -> None:
        wakes = plandaemon.PlanWakes()
        wakes.spec_changed("demo", "nightly")  # no daemon yet: it decides at start anyway
        assert wakes.plans == {}
        wake = wakes.register("demo", "nightly")
        wake.take()
        wakes.spec_changed("demo", "nightly")
        assert wake.take()[:2] == (True, False)
        wakes.drop("demo", "nightly", plandaemon.PlanWake())  # not its wake: kept
        assert wakes.plans[("demo", "nightly")] is wake
        wakes.drop("demo", "nightly", wake)
        assert wakes.plans == {}

    asyncio.run(scenario())


# ------------------------------------------------------------------------------ the loop


def test_a_runs_verdict_reaches_its_plan_at_once(
    api: type[FakeCustomObjects], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plandaemon, "REDERIVE_S", 3600.0)  # only a wake can do it in time
    running = a_run("nightly-1", "Running", startedAt="2030-01-01T00:00:01Z")
    the_plan(api, running)

    async def scenario() -> float:
        wakes = plandaemon.PlanWakes()
        wake = wakes.register("demo", "nightly")
        daemon = asyncio.create_task(plandaemon.run_plan(nowhere(), "demo", "nightly", {}, wake))
        await until(lambda: last_run(api).get("phase") == "Running")  # the first pass
        # The engine writes the verdict; its watch event reaches the handler.
        running["status"] |= {"phase": "Passed", "finishedAt": "2030-01-01T00:01:00Z"}
        wakes.run_event("MODIFIED", running)
        took = await until(lambda: last_run(api).get("phase") == "Passed")
        wake.stop()
        await asyncio.wait_for(daemon, timeout=2)
        return took

    assert asyncio.run(scenario()) < 1.0
    assert last_run(api)["finishedAt"] == "2030-01-01T00:01:00Z"


def test_a_missed_wake_is_made_up_by_the_periodic_derivation(
    api: type[FakeCustomObjects], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plandaemon, "REDERIVE_S", 0.05)
    running = a_run("nightly-1", "Running", startedAt="2030-01-01T00:00:01Z")
    the_plan(api, running)

    async def scenario() -> None:
        wake = plandaemon.PlanWakes().register("demo", "nightly")
        daemon = asyncio.create_task(plandaemon.run_plan(nowhere(), "demo", "nightly", {}, wake))
        await until(lambda: last_run(api).get("phase") == "Running")
        running["status"] |= {"phase": "Failed", "finishedAt": "2030-01-01T00:01:00Z"}
        await until(lambda: last_run(api).get("phase") == "Failed")  # no event at all
        wake.stop()
        await asyncio.wait_for(daemon, timeout=2)

    asyncio.run(scenario())
    writes = [c for c in api.calls if c[:2] == ("patch_status", DRILLPLANS)]
    assert len(writes) == 2  # derived many times, written when it changed only


def test_a_hub_that_fails_is_tried_again_and_the_seen_runs_are_kept(
    api: type[FakeCustomObjects], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plandaemon, "REDERIVE_S", 3600.0)
    monkeypatch.setattr(plandaemon, "RETRY_S", 0.05)
    the_plan(api)
    api.fail["list"] = RuntimeError("the hub does not answer (test)")
    gone = a_run("nightly-1", "Aborted", startedAt="2030-01-01T00:00:01Z")
    gone["status"]["finishedAt"] = "2030-01-01T00:01:00Z"

    async def scenario() -> None:
        wakes = plandaemon.PlanWakes()
        wake = wakes.register("demo", "nightly")
        daemon = asyncio.create_task(plandaemon.run_plan(nowhere(), "demo", "nightly", {}, wake))
        wakes.run_event("DELETED", gone)  # went while the hub was down
        await until(lambda: len([c for c in api.calls if c[0] == "list"]) >= 2)
        api.fail.clear()
        await until(lambda: last_run(api).get("phase") == "Aborted")
        wake.stop()
        await asyncio.wait_for(daemon, timeout=2)

    asyncio.run(scenario())


def test_a_status_no_model_reads_does_not_stop_the_daemon(
    api: type[FakeCustomObjects],
) -> None:
    the_plan(api, a_run("nightly-1", "Running", startedAt="2030-01-01T00:00:01Z"))

    async def scenario() -> None:
        wake = plandaemon.PlanWakes().register("demo", "nightly")
        bad = {"missedSchedules": -1}  # its verdict metrics cannot be restored from it
        daemon = asyncio.create_task(plandaemon.run_plan(nowhere(), "demo", "nightly", bad, wake))
        await until(lambda: last_run(api).get("phase") == "Running")
        wake.stop()
        await asyncio.wait_for(daemon, timeout=2)

    asyncio.run(scenario())


# ------------------------------------------------------------------------- kopf wiring


# kopf's decorators type the handlers as kopf calls them (every kwarg): called here with
# those the handlers read.
startup: Any = handlers.drills_startup
plan_daemon: Any = handlers.drillplan_daemon
run_moved: Any = handlers.drillrun_moved


class Stopped:
    """kopf's DaemonStopped as the plan's daemon uses it."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    async def wait(self) -> None:
        await self.flag.wait()


def test_the_handlers_wake_the_plans_daemon_from_a_runs_event(
    api: type[FakeCustomObjects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drills' startup puts the wakes in the operator memo; kopf copies it into every
    object's memo; the DrillRun event handler wakes the plan's daemon through it."""
    monkeypatch.setattr(plandaemon, "REDERIVE_S", 3600.0)
    running = a_run("nightly-1", "Running", startedAt="2030-01-01T00:00:01Z")
    the_plan(api, running)
    host = SimpleNamespace(
        hub=nowhere(), members=FakeMembers(), drills=ActiveDrills(), tenancy=None, seal=None
    )

    async def scenario() -> None:
        operator_memo = kopf.Memo({RUNTIME_KEY: host})
        await startup(memo=operator_memo)
        # What kopf does for each object it sees: a shallow copy of the operator memo.
        plan_memo, run_memo = copy.copy(operator_memo), copy.copy(operator_memo)
        stopped = Stopped()
        daemon = asyncio.create_task(
            plan_daemon(
                stopped=stopped,
                name="nightly",
                namespace="demo",
                status={},
                memo=plan_memo,
            )
        )
        await until(lambda: last_run(api).get("phase") == "Running")
        running["status"] |= {"phase": "Passed", "finishedAt": "2030-01-01T00:01:00Z"}
        event = {"type": "MODIFIED", "object": running}
        await run_moved(event=event, memo=run_memo)
        await until(lambda: last_run(api).get("phase") == "Passed", within=1.0)
        stopped.flag.set()  # kopf stops it: the plan deleted, the operator stopping
        await asyncio.wait_for(daemon, timeout=1)
        assert handlers.plan_wakes(run_memo).plans == {}

    asyncio.run(scenario())


def test_the_handlers_need_the_drills_startup() -> None:
    with pytest.raises(RuntimeError, match="startup"):
        handlers.plan_wakes(kopf.Memo())


def test_a_deleted_run_takes_its_metric_series_with_it() -> None:
    """A run pruned by the history limit or deleted by hand leaves no
    modeldr_drill_run_phase series behind (those of the other runs stay)."""
    from modeldr.drills import handlers
    from modeldr.drills import metrics as drill_metrics

    def series(run: str) -> list[object]:
        return [k for k in drill_metrics.RUN_PHASE._metrics if k[:3] == ("demo", "nightly", run)]

    drill_metrics.run_phase("demo", "nightly", "nightly-1", "Passed")
    drill_metrics.run_phase("demo", "nightly", "nightly-2", "Running")
    memo: dict[str, object] = {handlers.PLAN_WAKES_KEY: plandaemon.PlanWakes()}
    gone = a_run("nightly-1", "Passed")
    moved: Any = handlers.drillrun_moved  # kopf's decorator types it as a full handler
    asyncio.run(moved(event={"type": "DELETED", "object": gone}, memo=memo))
    assert series("nightly-1") == [] and series("nightly-2") != []
    drill_metrics.forget("demo", "nightly", "nightly-2")
