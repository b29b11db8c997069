"""DrillPlan schedules (kube/schedule.py, pure): next due times in time zones across DST,
missed starts (deadline, a restarted operator), Forbid and Allow, suspend, run names; and
the scheduler's one decision carried out against the in-memory CustomObjectsApi of
test_drills_plans (drills/plans.schedule_once), with the plan daemon's clock driven by the
test; a run's end: its metrics (the run's) and its plan's last runs (the plan daemon's)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.drillstatus import DrillRunStatus
from modeldr.drills import plandaemon, plans
from modeldr.drills import run as run_module
from modeldr.drills.runstate import RunRef, RunState
from modeldr.kube.constants import DRILL_PLAN_LABEL, DRILLPLANS, DRILLRUNS
from modeldr.kube.schedule import MAX_COUNTED, Schedule, ScheduleError, decide
from tests.unit.drill_fakes import nowhere
from tests.unit.test_drills_plans import SPEC, FakeCustomObjects, run_obj
from tests.unit.test_drills_plans import api as api  # the fixture

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def nexts(schedule: Schedule, start: datetime, n: int) -> list[datetime]:
    out, moment = [], start
    for _ in range(n):
        moment = schedule.next_after(moment)
        out.append(moment)
    return out


# ------------------------------------------------------------------------- next times


def test_five_fields_in_utc() -> None:
    s = Schedule.parse("*/15 3 * * *")
    assert nexts(s, utc(2030, 1, 1, 3, 0), 3) == [
        utc(2030, 1, 1, 3, 15),
        utc(2030, 1, 1, 3, 30),
        utc(2030, 1, 1, 3, 45),
    ]
    # Strictly after: a due time is not its own next.
    assert s.next_after(utc(2030, 1, 1, 3, 45)) == utc(2030, 1, 2, 3, 0)


def test_a_time_zone_moves_the_due_time_in_utc() -> None:
    s = Schedule.parse("0 3 * * *", "Europe/Berlin")
    assert s.next_after(utc(2030, 1, 1)) == utc(2030, 1, 1, 2, 0)  # CET, +1
    assert s.next_after(utc(2030, 7, 1)) == utc(2030, 7, 1, 1, 0)  # CEST, +2


def test_spring_forward_runs_a_skipped_time_once_after_the_gap() -> None:
    # 2026-03-29 in Berlin: 02:00 -> 03:00; 02:30 does not exist that day.
    s = Schedule.parse("30 2 * * *", "Europe/Berlin")
    got = [t.astimezone(BERLIN) for t in nexts(s, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 3)]
    assert [t.strftime("%m-%d %H:%M") for t in got] == ["03-29 03:00", "03-30 02:30", "03-31 02:30"]


def test_fall_back_runs_a_repeated_fixed_time_once() -> None:
    # 2026-10-25 in Berlin: 03:00 -> 02:00; 02:30 happens twice, the drill runs once.
    s = Schedule.parse("30 2 * * *", "Europe/Berlin")
    got = nexts(s, datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_fall_back_runs_an_hourly_schedule_every_real_hour() -> None:
    s = Schedule.parse("@hourly", "America/New_York")
    # 2026-11-01 in New York: 02:00 EDT -> 01:00 EST; 1:00 happens twice, both are hours.
    got = nexts(s, datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), 3)
    assert got == [utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7)]


def test_six_fields_lead_with_seconds() -> None:
    s = Schedule.parse("*/20 * * * * *")
    assert s.with_seconds
    assert nexts(s, utc(2030, 1, 1, 0, 0, 5), 3) == [
        utc(2030, 1, 1, 0, 0, 20),
        utc(2030, 1, 1, 0, 0, 40),
        utc(2030, 1, 1, 0, 1, 0),
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "fragment"),
    [
        ("61 * * * *", None, "spec.schedule '61 * * * *'"),
        ("* * * *", None, "needs 5 fields"),
        ("0 0 0 * * * 2030", None, "not 7"),
        ("@every-tuesday", None, "not 1"),
        ("0 3 * * *", "Mars/Olympus_Mons", "spec.timeZone 'Mars/Olympus_Mons'"),
    ],
)
def test_bad_schedules_name_the_field(expression: str, zone: str | None, fragment: str) -> None:
    with pytest.raises(ScheduleError, match="spec\\.") as refused:
        Schedule.parse(expression, zone)
    assert fragment in str(refused.value)


def test_run_names_are_unique_per_due_time() -> None:
    minute = Schedule.parse("*/5 * * * *")
    assert minute.run_name("nightly", utc(2030, 1, 1, 0, 5)) == "nightly-31557605"
    seconds = Schedule.parse("*/20 * * * * *")
    assert seconds.run_name("nightly", utc(2030, 1, 1, 0, 0, 20)) == "nightly-1893456020"
    # A plan name at its limit (52) still leaves a valid object name (<= 63).
    assert len(seconds.run_name("p" * 52, utc(2030, 1, 1))) <= 63


# -------------------------------------------------------------------------- decisions

EVERY_5_MIN = Schedule.parse("*/5 * * * *")


def decide_at(now: datetime, after: datetime, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "starting_deadline_seconds": None,
        "active_runs": [],
        "concurrency_policy": "Forbid",
        "suspended": False,
        **kw,
    }
    return decide(EVERY_5_MIN, after=after, now=now, **args)


def test_nothing_due_waits_for_the_next_time() -> None:
    d = decide_at(utc(2030, 1, 1, 0, 3), after=utc(2030, 1, 1, 0, 0))
    assert d.start is None and not d.misses and d.handled_through is None
    assert d.next_time == utc(2030, 1, 1, 0, 5)


def test_a_due_time_starts_a_run() -> None:
    d = decide_at(utc(2030, 1, 1, 0, 5, 1), after=utc(2030, 1, 1, 0, 0))
    assert d.start == utc(2030, 1, 1, 0, 5) and not d.misses
    assert d.handled_through == utc(2030, 1, 1, 0, 5)
    assert d.next_time == utc(2030, 1, 1, 0, 10)


def test_forbid_skips_a_due_time_while_a_run_is_in_flight_and_says_which() -> None:
    d = decide_at(utc(2030, 1, 1, 0, 5, 1), after=utc(2030, 1, 1, 0, 0), active_runs=["n-1"])
    assert d.start is None
    [miss] = d.misses
    assert miss.reason == "ConcurrencyForbidden" and miss.scheduled == utc(2030, 1, 1, 0, 5)
    assert "DrillRun n-1" in miss.message
    assert d.handled_through == utc(2030, 1, 1, 0, 5)  # not tried again


def test_allow_starts_it_anyway() -> None:
    d = decide_at(
        utc(2030, 1, 1, 0, 5, 1),
        after=utc(2030, 1, 1, 0, 0),
        active_runs=["n-1"],
        concurrency_policy="Allow",
    )
    assert d.start == utc(2030, 1, 1, 0, 5) and not d.misses


def test_a_restarted_operator_starts_only_the_latest_missed_time() -> None:
    # Down from 00:02 to 00:21: 00:05, 00:10, 00:15 superseded, 00:20 started.
    d = decide_at(utc(2030, 1, 1, 0, 21), after=utc(2030, 1, 1, 0, 0))
    assert d.start == utc(2030, 1, 1, 0, 20)
    assert [(m.reason, m.scheduled.minute) for m in d.misses] == [
        ("Superseded", 5),
        ("Superseded", 10),
        ("Superseded", 15),
    ]


def test_a_start_later_than_the_deadline_is_skipped_and_recorded() -> None:
    d = decide_at(
        utc(2030, 1, 1, 0, 7, 30), after=utc(2030, 1, 1, 0, 0), starting_deadline_seconds=120
    )
    assert d.start is None
    [miss] = d.misses
    assert miss.reason == "StartingDeadlineExceeded" and "150 s late" in miss.message
    assert d.handled_through == utc(2030, 1, 1, 0, 5)
    # Within the deadline it starts.
    d = decide_at(
        utc(2030, 1, 1, 0, 6, 59), after=utc(2030, 1, 1, 0, 0), starting_deadline_seconds=120
    )
    assert d.start == utc(2030, 1, 1, 0, 5)


def test_the_deadline_wins_over_forbid() -> None:
    d = decide_at(
        utc(2030, 1, 1, 0, 9),
        after=utc(2030, 1, 1, 0, 0),
        starting_deadline_seconds=60,
        active_runs=["n-1"],
    )
    assert [m.reason for m in d.misses] == ["StartingDeadlineExceeded"]


def test_a_suspended_plan_lets_due_times_pass_without_a_run_or_a_miss() -> None:
    d = decide_at(utc(2030, 1, 1, 0, 21), after=utc(2030, 1, 1, 0, 0), suspended=True)
    assert d.start is None and not d.misses and d.next_time is None
    assert d.handled_through == utc(2030, 1, 1, 0, 20)  # resuming starts none of them


def test_a_long_outage_is_counted_boundedly() -> None:
    s = Schedule.parse("* * * * *")
    times, more = s.due(utc(2030, 1, 1), utc(2030, 1, 8))  # a week of minutes
    assert len(times) == MAX_COUNTED + 1 and more
    assert times[-1] == utc(2030, 1, 8)
    d = decide(
        s,
        after=utc(2030, 1, 1),
        now=utc(2030, 1, 8, 0, 0, 30),
        starting_deadline_seconds=None,
        active_runs=[],
        concurrency_policy="Forbid",
        suspended=False,
    )
    assert d.start == utc(2030, 1, 8) and d.uncounted and len(d.misses) == MAX_COUNTED


# ------------------------------------------------------- the scheduler's one decision

T0 = utc(2030, 1, 1, 0, 0)


def scheduled_plan(api: type[FakeCustomObjects], **spec: Any) -> None:
    api.objects[(DRILLPLANS, "demo", "nightly")] = {
        "metadata": {
            "name": "nightly",
            "namespace": "demo",
            "uid": "plan-uid",
            "generation": 2,
            "creationTimestamp": "2030-01-01T00:00:00Z",
        },
        "spec": {**SPEC, "schedule": "*/5 * * * *", **spec},
    }


def plan_status(api: type[FakeCustomObjects]) -> dict[str, Any]:
    return dict(api.objects[(DRILLPLANS, "demo", "nightly")].get("status") or {})


def missed(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "modeldr_drill_scheduled_missed_total",
        {"namespace": "demo", "plan": "nightly", "reason": reason},
    )
    return value or 0.0


def test_the_scheduler_starts_a_run_on_time_then_waits(api: type[FakeCustomObjects]) -> None:
    scheduled_plan(api)
    decision, message = plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=2))
    assert decision is not None and decision.start is None
    assert plan_status(api)["nextScheduleTime"] == "2030-01-01T00:05:00Z"
    assert message == "next run due at 2030-01-01T00:05:00Z (*/5 * * * *, UTC)"
    assert not [c for c in api.calls if c[0] == "create"]

    decision, _ = plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=5))
    name = f"nightly-{int((T0 + timedelta(minutes=5)).timestamp()) // 60}"
    run = api.objects[(DRILLRUNS, "demo", name)]
    assert run["metadata"]["labels"] == {DRILL_PLAN_LABEL: "nightly"}
    spec = DrillRunSpec.parse(run["spec"])
    assert spec.scheduled_time == "2030-01-01T00:05:00Z" and spec.plan_generation == 2
    status = plan_status(api)
    assert status["lastScheduleTime"] == status["scheduledThrough"] == "2030-01-01T00:05:00Z"
    assert status["nextScheduleTime"] == "2030-01-01T00:10:00Z"

    # The same moment again (a retried loop, a new leader): no second run.
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=5, seconds=1))
    assert len([c for c in api.calls if c[0] == "create"]) == 1


def test_the_scheduler_records_a_forbidden_start(api: type[FakeCustomObjects]) -> None:
    scheduled_plan(api)
    running = run_obj("nightly-by-hand", "2030-01-01T00:04:00Z", "Running")
    api.objects[(DRILLRUNS, "demo", "nightly-by-hand")] = running
    before = missed("ConcurrencyForbidden")
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=5, seconds=1))
    assert not [c for c in api.calls if c[0] == "create"]
    status = plan_status(api)
    assert status["missedSchedules"] == 1
    last = status["lastMissedSchedule"]
    assert last["reason"] == "ConcurrencyForbidden" and "nightly-by-hand" in last["message"]
    assert status["scheduledThrough"] == "2030-01-01T00:05:00Z"
    assert "lastScheduleTime" not in status
    assert missed("ConcurrencyForbidden") == before + 1
    # An ended run does not hold the next one back.
    running["status"] = {"phase": "Passed"}
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=10, seconds=1))
    assert len([c for c in api.calls if c[0] == "create"]) == 1
    assert plan_status(api)["missedSchedules"] == 1


def test_the_scheduler_says_why_an_unevaluable_schedule_starts_nothing(
    api: type[FakeCustomObjects],
) -> None:
    scheduled_plan(api, schedule="61 * * * *")  # the CRD's pattern lets it through
    decision, message = plans.schedule_once(nowhere(), "demo", "nightly", T0)
    assert decision is not None and decision.start is None and decision.next_time is None
    assert message is not None and "61 * * * *" in message and "no run starts" in message
    assert plan_status(api)["scheduleMessage"] == message


def test_the_scheduler_decides_nothing_for_a_plan_gone_or_unscheduled(
    api: type[FakeCustomObjects],
) -> None:
    assert plans.schedule_once(nowhere(), "demo", "nightly", T0) == (None, None)
    api.objects[(DRILLPLANS, "demo", "nightly")] = {
        "metadata": {"name": "nightly", "namespace": "demo"},
        "spec": SPEC,
    }
    assert plans.schedule_once(nowhere(), "demo", "nightly", T0) == (None, None)
    assert not [c for c in api.calls if c[0] == "patch_status"]  # nothing to clear


def test_a_schedule_removed_clears_what_it_said(api: type[FakeCustomObjects]) -> None:
    # The daemon's own fields: the create/update handler writes observedGeneration only.
    scheduled_plan(api)
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=2))
    assert plan_status(api)["nextScheduleTime"] == "2030-01-01T00:05:00Z"
    del api.objects[(DRILLPLANS, "demo", "nightly")]["spec"]["schedule"]
    assert plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=3)) == (
        None,
        None,
    )
    status = plan_status(api)
    assert status["nextScheduleTime"] is None and status["scheduleMessage"] is None
    gauge = {"namespace": "demo", "plan": "nightly"}
    assert REGISTRY.get_sample_value("modeldr_drill_next_schedule_timestamp_seconds", gauge) is None


def test_a_suspended_scheduled_plan_says_so(api: type[FakeCustomObjects]) -> None:
    scheduled_plan(api, suspend=True)
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=11))
    status = plan_status(api)
    assert status["scheduleMessage"].startswith("suspended")
    assert status["nextScheduleTime"] is None and status["scheduledThrough"].endswith("00:10:00Z")
    assert not [c for c in api.calls if c[0] == "create"]


# ------------------------------------------------------------- a run's end, recorded


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": "demo", "plan": "nightly", **labels})


def run_ends(name: str, status: DrillRunStatus, *, scheduled: bool) -> None:
    """What the run's own `end` records of itself: its metrics (never its plan)."""
    state = RunState(nowhere(), RunRef("demo", name, "u"), status)
    run_module.record_metrics(
        run_module.Run(cast(Any, None), state, "nightly", lambda: None, scheduled)
    )


def test_a_scheduled_runs_end_is_its_plans_last_scheduled_run_and_counted(
    api: type[FakeCustomObjects],
) -> None:
    scheduled_plan(api)
    run = run_obj("nightly-1", "2030-01-01T00:05:00Z", "Failed")
    run["spec"]["scheduledTime"] = "2030-01-01T00:05:00Z"
    run["status"] |= {
        "reason": "GateFailed",
        "rtoSeconds": 4.5,
        "startedAt": "2030-01-01T00:05:01Z",
        "finishedAt": "2030-01-01T00:06:00Z",
    }
    api.objects[(DRILLRUNS, "demo", "nightly-1")] = run
    labels = {"trigger": "schedule", "verdict": "Failed", "reason": "GateFailed"}
    before = sample("modeldr_drill_runs_total", **labels) or 0.0
    run_ends("nightly-1", DrillRunStatus.parse(run["status"]), scheduled=True)
    plans.derive_last_runs(nowhere(), "demo", "nightly")  # the plan's daemon, woken
    st = plan_status(api)
    assert st["lastScheduledRun"] == st["lastRun"]
    assert st["lastRun"]["scheduledTime"] == "2030-01-01T00:05:00Z"
    assert st["lastRun"]["rtoSeconds"] == 4.5
    assert sample("modeldr_drill_runs_total", **labels) == before + 1
    assert sample("modeldr_drill_last_verdict", **labels) == 1
    assert sample("modeldr_drill_rto_seconds") == 4.5
    assert sample("modeldr_drill_run_phase", run="nightly-1", phase="Failed") == 1

    # The next scheduled run passes: the failed verdict's series turns 0 (the alert clears).
    run2 = run_obj("nightly-2", "2030-01-01T00:10:00Z", "Passed")
    run2["spec"]["scheduledTime"] = "2030-01-01T00:10:00Z"
    run2["status"] |= {"reason": "AllPassed", "finishedAt": "2030-01-01T00:11:00Z"}
    api.objects[(DRILLRUNS, "demo", "nightly-2")] = run2
    run_ends("nightly-2", DrillRunStatus.parse(run2["status"]), scheduled=True)
    plans.derive_last_runs(nowhere(), "demo", "nightly")
    assert sample("modeldr_drill_last_verdict", **labels) == 0
    ok = {"trigger": "schedule", "verdict": "Passed", "reason": "AllPassed"}
    assert sample("modeldr_drill_last_verdict", **ok) == 1
    assert plan_status(api)["lastScheduledRun"]["name"] == "nightly-2"


def test_a_manual_runs_end_leaves_the_scheduled_verdict_alone(
    api: type[FakeCustomObjects],
) -> None:
    scheduled_plan(api)
    api.objects[(DRILLPLANS, "demo", "nightly")]["status"] = {
        "lastScheduledRun": {"name": "nightly-1", "phase": "Passed"}
    }
    by_hand = run_obj("by-hand", "2030-01-01T00:00:00Z", "Error")
    by_hand["status"] |= {
        "reason": "TargetBusy",
        "startedAt": "2030-01-01T00:00:01Z",
        "finishedAt": "2030-01-01T00:00:01Z",
    }
    api.objects[(DRILLRUNS, "demo", "by-hand")] = by_hand
    run_ends("by-hand", DrillRunStatus.parse(by_hand["status"]), scheduled=False)
    plans.derive_last_runs(nowhere(), "demo", "nightly")
    st = plan_status(api)
    assert st["lastRun"]["name"] == "by-hand"
    assert st["lastScheduledRun"] == {"name": "nightly-1", "phase": "Passed"}  # untouched
    manual = {"trigger": "manual", "verdict": "Error", "reason": "TargetBusy"}
    assert sample("modeldr_drill_last_verdict", **manual) == 1


def test_a_run_of_no_plan_records_no_metrics() -> None:
    state = RunState(nowhere(), RunRef("demo", "orphan", "u"), DrillRunStatus.parse({}))
    state.status = DrillRunStatus.parse({"phase": "Error", "reason": "PlanNotFound"})
    run_module.record_metrics(run_module.Run(cast(Any, None), state, "", lambda: None))
    labels = {"namespace": "demo", "plan": "", "run": "orphan", "phase": "Error"}
    assert REGISTRY.get_sample_value("modeldr_drill_run_phase", labels) is None


def test_the_last_verdicts_come_back_from_the_plans_status_after_a_restart() -> None:
    last = {
        "name": "n-9",
        "phase": "Failed",
        "reason": "NotRecovered",
        "finishedAt": "2030-01-02T00:00:00Z",
        "scheduledTime": "2030-01-01T23:55:00Z",
    }
    plans.restore_verdict_metrics("demo", "restored", {"lastRun": last, "lastScheduledRun": last})
    labels = {
        "namespace": "demo",
        "plan": "restored",
        "trigger": "schedule",
        "verdict": "Failed",
        "reason": "NotRecovered",
    }
    assert REGISTRY.get_sample_value("modeldr_drill_last_verdict", labels) == 1
    manual = {**labels, "trigger": "manual"}
    assert REGISTRY.get_sample_value("modeldr_drill_last_verdict", manual) is None


def test_a_restarted_scheduler_resumes_from_the_status(api: type[FakeCustomObjects]) -> None:
    # The operator was down from 00:06 to 00:21: 00:10 and 00:15 are Superseded, 00:20 starts.
    scheduled_plan(api)
    api.objects[(DRILLPLANS, "demo", "nightly")]["status"] = {
        "scheduledThrough": "2030-01-01T00:05:00Z",
        "lastScheduleTime": "2030-01-01T00:05:00Z",
        "missedSchedules": 1,
    }
    before = missed("Superseded")
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=21))
    assert creates_of(api) == [f"nightly-{int((T0 + timedelta(minutes=20)).timestamp()) // 60}"]
    status = plan_status(api)
    assert status["missedSchedules"] == 3 and missed("Superseded") == before + 2
    assert status["scheduledThrough"] == status["lastScheduleTime"] == "2030-01-01T00:20:00Z"


def test_a_restarted_scheduler_skips_a_start_past_its_deadline(
    api: type[FakeCustomObjects],
) -> None:
    scheduled_plan(api, startingDeadlineSeconds=60)
    api.objects[(DRILLPLANS, "demo", "nightly")]["status"] = {
        "scheduledThrough": "2030-01-01T00:05:00Z"
    }
    plans.schedule_once(nowhere(), "demo", "nightly", T0 + timedelta(minutes=12))
    assert creates_of(api) == []
    last = plan_status(api)["lastMissedSchedule"]
    assert last["reason"] == "StartingDeadlineExceeded" and last["scheduledTime"].endswith("10:00Z")


def creates_of(api: type[FakeCustomObjects]) -> list[str]:
    return [name for method, _, name in api.calls if method == "create"]


def test_the_plans_daemon_starts_each_due_time_and_stops_when_told(
    api: type[FakeCustomObjects], monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_plan with the scheduler's clock driven by the test (a minute a reading) and its
    sleeps shortened: runs start, never twice for a due time, and it returns once stopped
    (kopf stops it when the plan is deleted)."""
    scheduled_plan(api, schedule="* * * * *")
    monkeypatch.setattr(plandaemon, "MAX_SCHEDULER_SLEEP_S", 0.01)
    ticks = iter(T0 + timedelta(minutes=m, seconds=1) for m in range(1, 1000))
    decisions = 0
    wake = plandaemon.PlanWake()

    def clock() -> datetime:
        nonlocal decisions
        decisions += 1
        for (plural, _, _), obj in api.objects.items():
            if plural == DRILLRUNS:
                obj["status"] = {"phase": "Passed"}  # each run over before the next is due
        if decisions == 8:  # the plan is deleted after a few due times: kopf stops it
            del api.objects[(DRILLPLANS, "demo", "nightly")]
            wake.stop()
        return next(ticks)

    async def daemon() -> None:
        loop = plandaemon.run_plan(nowhere(), "demo", "nightly", {}, wake, clock)
        await asyncio.wait_for(loop, timeout=5)

    asyncio.run(daemon())
    created = creates_of(api)
    assert len(created) >= 3 and len(created) == len(set(created))
    assert (
        REGISTRY.get_sample_value(
            "modeldr_drill_next_schedule_timestamp_seconds",
            {"namespace": "demo", "plan": "nightly"},
        )
        is None
    )  # dropped when the daemon ends
