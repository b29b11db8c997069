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


class Recording(Planned):
    """Runs nothing: records which modes run_due asked for, in order."""

    ran: list[str]

    def run(self, mode, body, now, status, progress=None):  # type: ignore[no-untyped-def]
        self.ran.append(mode)
        return mode, {"result": "Succeeded", "startedAt": "2026-12-06T07:30:00Z"}

    def retain(self, status):  # type: ignore[no-untyped-def]
        return None


def recording(**schedules: str) -> Recording:
    plan = planned(**schedules)
    recorder = Recording(plan.spec, plan.schedules, plan.source, None, plan.backup)
    recorder.ran = []
    return recorder


def test_a_mode_asked_for_now_runs_in_order_with_what_is_due() -> None:
    body = {"metadata": {"creationTimestamp": CREATED}}
    plan = recording(full="0 3 1 1 *", incremental="*/10 * * * *")
    backupdaemon.run_due(plan, body, {}, at("2026-12-06T07:30:01Z"), lambda _: None, "full")
    assert plan.ran == ["full", "incremental"]  # the ask joins the due run, full first
    plan = recording(full="0 3 1 1 *")
    backupdaemon.run_due(plan, body, {}, at("2026-12-06T07:30:01Z"), lambda _: None, "full")
    assert plan.ran == ["full"]
    plan = recording(full="0 3 1 1 *")
    backupdaemon.run_due(plan, body, {}, at("2026-12-06T07:30:01Z"), lambda _: None)
    assert plan.ran == []  # nothing due, nothing asked


class Annotations:
    """The CustomObjectsApi calls asked_now makes: the patches it sent."""

    def __init__(self) -> None:
        self.patches: list[dict[str, object]] = []

    def patch_namespaced_custom_object(self, *args: object, **kwargs: object) -> None:
        patch = args[5]
        assert isinstance(patch, dict)
        self.patches.append(patch)


def test_the_backup_now_annotation_is_removed_before_its_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    monkeypatch.setattr(
        backupdaemon, "post_event", lambda ref, kind, reason, msg: events.append(reason)
    )
    meta = {"name": "b", "namespace": "n", "uid": "u"}
    api = Annotations()
    asked = {"metadata": {**meta, "annotations": {"modeldr.io/backup-now": "differential"}}}
    assert backupdaemon.asked_now(api, asked) == "differential"
    removed = {"metadata": {"annotations": {"modeldr.io/backup-now": None}}}
    assert api.patches == [removed]
    wrong = {"metadata": {**meta, "annotations": {"modeldr.io/backup-now": "now"}}}
    assert backupdaemon.asked_now(api, wrong) is None
    assert api.patches == [removed, removed] and events == ["BackupNowIgnored"]
    assert backupdaemon.asked_now(api, {"metadata": meta}) is None
    assert len(api.patches) == 2
