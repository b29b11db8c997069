"""The ModelBackup daemon's pure parts: which modes are due, in which order, and the progress
note of a long copy. Its runs against real stores are tested on the sandbox
(tests/integration/test_model_store.py)."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from modeldr.api.modelbackup import ModelBackupSpec
from modeldr.kube.backups import Location
from modeldr.kube.objectstore import S3Url, StoreConfig
from modeldr.kube.schedule import Schedule
from modeldr.operator import backupdaemon
from modeldr.operator.backupdaemon import Planned, ProgressNote

STORE = StoreConfig("s", "http://127.0.0.1:1", "r", "k", "s")
CREATED = "2026-12-06T06:00:00Z"


def planned(**schedules: str) -> Planned:
    spec = ModelBackupSpec.model_validate(
        {
            "modelDeployment": "m",
            "sourceStore": "p",
            "backupStore": "b",
            "backupPrefix": "s3://backups/m",
            "schedules": schedules,
        }
    )
    where = Location(STORE, S3Url.parse("s3://models/m"))
    parsed = {mode: Schedule.parse(cron) for mode, cron in spec.schedules.of().items()}
    return Planned(spec, parsed, where, None, where)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_due_modes_run_full_first_and_once_per_due_time() -> None:
    plan = planned(full="0 7 * * *", incremental="*/10 * * * *", differential="0 * * * *")
    # At 07:00 all three are due since the object's creation: full first.
    assert plan.due({}, CREATED, at("2026-12-06T07:00:01Z")) == [
        "full",
        "differential",
        "incremental",
    ]
    ran = {
        "lastRuns": {
            mode: {"startedAt": "2026-12-06T07:00:00Z"}
            for mode in ("full", "differential", "incremental")
        }
    }
    # Nothing again until the next due time; a week of operator downtime: one run each.
    assert plan.due(ran, CREATED, at("2026-12-06T07:09:59Z")) == []
    assert plan.due(ran, CREATED, at("2026-12-06T07:10:00Z")) == ["incremental"]
    assert plan.due(ran, CREATED, at("2026-12-13T07:00:00Z")) == [
        "full",
        "differential",
        "incremental",
    ]


def test_a_suspended_backup_lets_due_times_pass() -> None:
    plan = planned(incremental="* * * * *")
    plan.spec = plan.spec.model_copy(update={"suspend": True})
    assert plan.due({}, CREATED, at("2026-12-06T08:00:00Z")) == []


def test_the_next_runs_are_each_modes_next_due_time() -> None:
    plan = planned(full="@daily", incremental="*/10 * * * *")
    upcoming = plan.next_runs(at("2026-12-06T07:05:00Z"))
    assert upcoming == {
        "full": at("2026-12-07T00:00:00Z"),
        "incremental": at("2026-12-06T07:10:00Z"),
    }


def test_progress_is_said_at_most_every_two_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    clock = iter([100.0, 100.5, 103.0])
    monkeypatch.setattr(backupdaemon, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    note = ProgressNote(said.append, "full")
    note("a", 120_000_000, 419_400_000)
    note("b", 200_000_000, 419_400_000)  # 0.5 s later: not said
    note("c", 300_000_000, 419_400_000)
    note("d", 419_400_000, 419_400_000)  # done: the run's own record says the rest
    assert said == [
        "full backup: 120.0 MB of 419.4 MB (29 %)",
        "full backup: 300.0 MB of 419.4 MB (72 %)",
    ]
    assert backupdaemon.PROGRESS_EVERY_S == 2.0
