"""A DrillPlan's lastRun and lastScheduledRun derived from its runs (drills/lastrun.py, pure):
the run that moved last wins (its end, else its start), a run not started is left out,
equal moments are broken by name, a run no longer there keeps its entry while it is the most
recent, and nothing is written when nothing changed."""

from __future__ import annotations

from typing import Any

from modeldr.drills import lastrun
from modeldr.kube.constants import DRILL_PLAN_LABEL


def run(
    name: str,
    phase: str | None,
    started: str | None = None,
    finished: str | None = None,
    *,
    plan: str = "nightly",
    scheduled: str | None = None,
    label_only: bool = False,
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"planGeneration": 3}
    if not label_only:
        spec["planRef"] = {"name": plan}
    if scheduled:
        spec["scheduledTime"] = scheduled
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "demo",
            "creationTimestamp": "2030-01-01T00:00:00Z",
            "labels": {DRILL_PLAN_LABEL: plan},
        },
        "spec": spec,
    }
    fields = {"phase": phase, "startedAt": started, "finishedAt": finished, **status}
    obj["status"] = {k: v for k, v in fields.items() if v is not None}
    return obj


def derive(runs: list[dict[str, Any]], status: Any = None) -> dict[str, Any]:
    return lastrun.derive(runs, "nightly", status)


def named(fields: dict[str, Any], field: str = "lastRun") -> str:
    return str(fields[field]["name"])


def test_the_latest_finished_run_wins_with_every_field() -> None:
    runs = [
        run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:02:00Z"),
        run(
            "n-2",
            "Failed",
            "2030-01-01T00:01:00Z",
            "2030-01-01T00:03:00Z",
            reason="GateFailed",
            rtoSeconds=4.5,
        ),
        run("n-3", "Aborted", "2030-01-01T00:00:30Z", "2030-01-01T00:01:30Z"),
    ]
    fields = derive(runs)
    assert fields["lastRun"] == {
        "name": "n-2",
        "phase": "Failed",
        "reason": "GateFailed",
        "startedAt": "2030-01-01T00:01:00Z",
        "finishedAt": "2030-01-01T00:03:00Z",
        "planGeneration": 3,
        "scheduledTime": None,
        "rtoSeconds": 4.5,
    }
    assert "lastScheduledRun" not in fields  # none of them was the schedule's


def test_a_run_not_started_is_left_out() -> None:
    finished = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    assert named(derive([finished, run("n-2", None), run("n-3", "Pending")])) == "n-1"
    assert derive([run("n-2", None)]) == {}  # nothing to show yet


def test_a_run_in_flight_shows_until_another_moves_after_it() -> None:
    # What the runs wrote when they wrote their plan: Running at their start, the verdict at
    # their end, whichever came last.
    done = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    running = run("n-2", "Running", "2030-01-01T00:02:00Z")
    fields = derive([done, running])
    assert named(fields) == "n-2" and fields["lastRun"]["phase"] == "Running"
    assert fields["lastRun"]["finishedAt"] is None  # written as null: the entry is replaced whole
    # A run refused at 00:03 (TargetBusy) while n-2 goes on, then n-2's verdict at 00:05.
    refused = run(
        "n-3", "Error", "2030-01-01T00:03:00Z", "2030-01-01T00:03:00Z", reason="TargetBusy"
    )
    assert named(derive([done, running, refused])) == "n-3"
    ended = run("n-2", "Passed", "2030-01-01T00:02:00Z", "2030-01-01T00:05:00Z")
    assert named(derive([done, ended, refused])) == "n-2"


def test_equal_moments_are_broken_by_name_whatever_the_order() -> None:
    a = run("n-a", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    b = run("n-b", "Failed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    assert named(derive([a, b])) == named(derive([b, a])) == "n-b"


def test_timestamps_in_other_notations_compare_as_moments() -> None:
    early = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T01:30:00+01:00")
    late = run("n-2", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:45:00.5Z")
    assert named(derive([early, late])) == "n-2"


def test_only_the_plans_runs_count_by_their_plan_ref_else_their_label() -> None:
    other = run("o-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T09:00:00Z", plan="other")
    mine = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    labelled = run("n-2", "Failed", "2030-01-01T00:00:00Z", "2030-01-01T00:02:00Z", label_only=True)
    assert named(derive([other, mine, labelled])) == "n-2"
    # A run made by hand carries its planRef, not always the label.
    by_hand = run("by-hand", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:03:00Z")
    del by_hand["metadata"]["labels"]
    assert named(derive([other, mine, labelled, by_hand])) == "by-hand"


def test_a_run_whose_status_no_model_reads_is_left_out() -> None:
    good = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    odd = run("n-2", "Exploded", "2030-01-01T00:00:00Z", "2030-01-01T00:02:00Z")
    assert named(derive([good, odd])) == "n-1"


def test_the_schedules_runs_make_last_scheduled_run() -> None:
    scheduled = run(
        "n-100",
        "Passed",
        "2030-01-01T00:05:01Z",
        "2030-01-01T00:06:00Z",
        scheduled="2030-01-01T00:05:00Z",
    )
    by_hand = run("by-hand", "Error", "2030-01-01T00:07:00Z", "2030-01-01T00:07:00Z")
    fields = derive([scheduled, by_hand])
    assert named(fields) == "by-hand"
    assert named(fields, "lastScheduledRun") == "n-100"
    assert fields["lastScheduledRun"]["scheduledTime"] == "2030-01-01T00:05:00Z"


def test_nothing_is_written_when_nothing_changed_in_any_notation() -> None:
    runs = [run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")]
    status = derive(runs)
    assert derive(runs, status) == {}
    # Another notation of the same entry (isoformat's +00:00, nulls left out): the same once
    # read. (What the runs wrote before lacked planGeneration: an upgrade writes it once.)
    before = {
        "lastRun": {
            "name": "n-1",
            "phase": "Passed",
            "startedAt": "2030-01-01T00:00:00+00:00",
            "finishedAt": "2030-01-01T00:01:00+00:00",
            "planGeneration": 3,
        }
    }
    assert derive(runs, before) == {}


def test_a_deleted_run_keeps_its_entry_while_it_is_the_most_recent() -> None:
    old = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    gone = {"name": "n-2", "phase": "Failed", "finishedAt": "2030-01-01T00:02:00Z"}
    # n-2 was deleted (by hand, or pruned): the status keeps it, n-1 is older.
    assert derive([old], {"lastRun": gone, "lastScheduledRun": gone}) == {}
    # A run that moves after it replaces it.
    new = run("n-3", "Running", "2030-01-01T00:03:00Z")
    assert named(derive([old, new], {"lastRun": gone})) == "n-3"
    # No runs at all: the record stays (an entry is never removed).
    assert derive([], {"lastRun": gone}) == {}


def test_a_listed_run_replaces_its_own_entry_even_when_that_looks_newer() -> None:
    # The entry said Running with a later start than the run now shows (hand-edited, or a run
    # deleted and made again under its name): the run as listed is the truth.
    entry = {"name": "n-1", "phase": "Running", "startedAt": "2030-01-01T00:09:00Z"}
    now = run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")
    fields = derive([now], {"lastRun": entry})
    assert fields["lastRun"]["phase"] == "Passed"


def test_an_unreadable_entry_in_the_status_is_replaced() -> None:
    runs = [run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")]
    assert named(derive(runs, {"lastRun": {"phase": "Passed"}})) == "n-1"  # no name


def test_an_entry_is_written_whole() -> None:
    runs = [run("n-1", "Passed", "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z")]
    assert (
        set(derive(runs)["lastRun"])
        == set(lastrun.ENTRY_FIELDS)
        == {
            "name",
            "phase",
            "reason",
            "startedAt",
            "finishedAt",
            "planGeneration",
            "scheduledTime",
            "rtoSeconds",
        }
    )
