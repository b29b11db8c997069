"""A ModelBackup's daemon: its schedules, its runs, its retention, its status.

Each wake it reads the ModelBackup afresh (a spec change takes effect within MAX_SLEEP_S) and
checks it against the tenant's policy (spec.backups of the TenantPolicies covering its
namespace: the stores and the backup prefix) before touching any store. For every mode with
a due time since its last run, the latest due time runs once (a restarted operator does not
start a burst), full first, then differential, then incremental: a mirror to the standby
store when one is named (its time is the standby copy's age, the RPO), then the backup
(kube/backups.py), then retention (keepFull). The stores' credentials are the admin's Secrets
`modeldr-store-<name>` in the operator's namespace; a tenant names a store, never reads it.
Blocking I/O runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from modeldr.api import modelbackup as MB
from modeldr.kube import backups
from modeldr.kube.backupmanifest import BackupError, expired
from modeldr.kube.backupplaces import BackupUnusable as NotNow
from modeldr.kube.backupplaces import places
from modeldr.kube.config import OperatorConfig
from modeldr.kube.constants import GROUP, VERSION
from modeldr.kube.events import post_event
from modeldr.kube.objectstore import StoreError
from modeldr.kube.schedule import Schedule, ScheduleError, stamp
from modeldr.kube.tenancy import Tenancy
from modeldr.operator import metrics

log = logging.getLogger(__name__)

MAX_SLEEP_S = 10.0
PROGRESS_EVERY_S = 2.0
MIN_SLEEP_S = 0.5
TIMEOUT = 10
# A full backup first: an incremental due at the same minute then copies nothing new.
MODE_ORDER: tuple[MB.Mode, ...] = ("full", "differential", "incremental")
LAST_RUN_FIELDS = tuple(MB.LastRun.model_fields[f].alias or f for f in MB.LastRun.model_fields)


async def run_backups(
    hub: client.ApiClient,
    config: OperatorConfig,
    tenancy: Tenancy,
    namespace: str,
    name: str,
    stopped: Any,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """The daemon's loop; returns once kopf stops it (object deleted, operator stopping)."""
    while not stopped:
        try:
            delay = await asyncio.to_thread(
                backup_once, hub, config, tenancy, namespace, name, clock
            )
        except Exception:  # the hub unreachable, a 5xx: try again soon
            log.exception("ModelBackup %s/%s", namespace, name)
            delay = MAX_SLEEP_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=max(delay, MIN_SLEEP_S))


def backup_once(
    hub: client.ApiClient,
    config: OperatorConfig,
    tenancy: Tenancy,
    namespace: str,
    name: str,
    clock: Callable[[], datetime],
) -> float:
    """One look at the ModelBackup: run what is due; returns seconds until the next look."""
    custom = client.CustomObjectsApi(hub)
    try:
        body = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, MB.PLURAL, name, _request_timeout=TIMEOUT
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return MAX_SLEEP_S
        raise
    status = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    try:
        plan = Planned.read(hub, config, tenancy, namespace, body)
    except NotNow as exc:
        write_status(custom, namespace, name, generation, phase=exc.phase, message=str(exc))
        return MAX_SLEEP_S

    def running(text: str) -> None:
        write_status(custom, namespace, name, generation, phase="Running", message=text)

    asked = asked_now(custom, body)
    last_runs = run_due(plan, body, status, clock(), running, asked)
    upcoming = plan.next_runs(clock())
    mode, at = min(upcoming.items(), key=lambda item: item[1])
    write_status(
        custom,
        namespace,
        name,
        generation,
        phase="Suspended" if plan.spec.suspend else "Scheduled",
        message=None,
        extra={
            "lastRuns": last_runs or None,
            "lastBackup": status.get("lastBackup"),
            "standbyCopy": status.get("standbyCopy"),
            "backups": status.get("backups"),
            "nextRun": f"{mode}@{stamp(at)}",
        },
    )
    return min(MAX_SLEEP_S, (at - clock()).total_seconds() + MIN_SLEEP_S)


def run_due(
    plan: Planned,
    body: dict[str, Any],
    status: dict[str, Any],
    now: datetime,
    running: Callable[[str], None],
    asked: MB.Mode | None = None,
) -> dict[str, Any]:
    """Run every mode due now (and the one asked for by annotation), then retention; the last
    runs by mode (status updated)."""
    due = plan.due(status, body["metadata"]["creationTimestamp"], now)
    if asked is not None and asked not in due:
        due = [mode for mode in MODE_ORDER if mode in due or mode == asked]
    last_runs = dict(status.get("lastRuns") or {})
    for mode in due:
        running(f"{mode} backup")
        ran, record = plan.run(mode, body, now, status, ProgressNote(running, mode))
        # Every field of the record, None included: a merge patch keeps what it does not name.
        record = {field: record.get(field) for field in LAST_RUN_FIELDS}
        last_runs[mode] = record
        if ran != mode:
            last_runs[ran] = {**record, "message": None}
        status["lastRuns"] = last_runs
    if due:
        plan.retain(status)
    return last_runs


def asked_now(custom: client.CustomObjectsApi, body: dict[str, Any]) -> MB.Mode | None:
    """The mode `modeldr.io/backup-now` asks to run at once (suspended or not), its annotation
    removed first: one ask, at most one run, even if the operator dies during it. A value
    that is no mode is removed with a warning event and runs nothing."""
    value = (body["metadata"].get("annotations") or {}).get(MB.BACKUP_NOW_ANNOTATION)
    if value is None:
        return None
    namespace, name = labels(body)
    patch = {"metadata": {"annotations": {MB.BACKUP_NOW_ANNOTATION: None}}}
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, MB.PLURAL, name, patch, _request_timeout=TIMEOUT
    )
    if value not in MODE_ORDER:
        post_event(
            obj_ref(body),
            "Warning",
            "BackupNowIgnored",
            f"{MB.BACKUP_NOW_ANNOTATION}={value!r} is not a mode (full, incremental, "
            "differential): nothing run",
        )
        return None
    mode: MB.Mode = value
    return mode


class ProgressNote:
    """A long copy's progress in status.message (`full backup: 120.0 MB of 419.4 MB (29 %)`),
    at most every PROGRESS_EVERY_S: people watching `kubectl get mbk -o wide` see it move."""

    def __init__(self, say: Callable[[str], None], mode: str) -> None:
        self.say = say
        self.mode = mode
        self.last = 0.0

    def __call__(self, name: str, done: int, total: int) -> None:
        if done >= total:  # the run's own record says the rest
            return
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        share = 100.0 * done / total if total else 100.0
        with contextlib.suppress(client.ApiException):  # a lost note is no failure
            self.say(
                f"{self.mode} backup: {done / 1e6:.1f} MB of {total / 1e6:.1f} MB ({share:.0f} %)"
            )


class Planned:
    """A ModelBackup that may run: its spec, schedules and the stores it names."""

    def __init__(
        self,
        spec: MB.ModelBackupSpec,
        schedules: dict[MB.Mode, Schedule],
        source: backups.Location,
        standby: backups.Location | None,
        backup: backups.Location,
    ) -> None:
        self.spec = spec
        self.schedules = schedules
        self.source = source
        self.standby = standby
        self.backup = backup

    @classmethod
    def read(
        cls,
        hub: client.ApiClient,
        config: OperatorConfig,
        tenancy: Tenancy,
        namespace: str,
        body: dict[str, Any],
    ) -> Planned:
        where = places(hub, config, tenancy, namespace, body)  # the policy first
        spec = where.spec
        try:
            schedules = {
                mode: Schedule.parse(cron, spec.time_zone)
                for mode, cron in spec.schedules.of().items()
            }
        except ScheduleError as exc:
            raise NotNow("Invalid", str(exc)) from None
        return cls(spec, schedules, where.source, where.standby, where.backup)

    def due(self, status: dict[str, Any], created: str, now: datetime) -> list[MB.Mode]:
        """The modes with a due time after their last run (or the object's creation)."""
        if self.spec.suspend:
            return []
        last_runs = status.get("lastRuns") or {}
        due: list[MB.Mode] = []
        for mode in MODE_ORDER:
            schedule = self.schedules.get(mode)
            if schedule is None:
                continue
            since = (last_runs.get(mode) or {}).get("startedAt") or created
            if schedule.next_after(parse(since)) <= now:
                due.append(mode)
        return due

    def next_runs(self, now: datetime) -> dict[MB.Mode, datetime]:
        return {mode: schedule.next_after(now) for mode, schedule in self.schedules.items()}

    def run(
        self,
        mode: MB.Mode,
        body: dict[str, Any],
        now: datetime,
        status: dict[str, Any],
        progress: backups.Progress | None = None,
    ) -> tuple[MB.Mode, dict[str, Any]]:
        """Mirror to the standby, then back up; the mode that ran and its record. With no
        full backup yet, an incremental or differential one runs as a full one (as Bacula
        upgrades a job): there is nothing to build on."""
        started = stamp(now)
        if self.standby is not None:
            status["standbyCopy"] = self.mirror(body, status.get("standbyCopy") or {})
        upgraded = mode != "full" and not self.has_full()
        ran: MB.Mode = "full" if upgraded else mode
        try:
            result = backups.run_backup(self.source, self.backup, ran, progress=progress)
        except (BackupError, StoreError) as exc:
            message = f"{mode} backup failed: {exc}"
            post_event(obj_ref(body), "Warning", "BackupFailed", message)
            metrics.BACKUP_RESULT.labels(*labels(body), mode).set(0)
            return mode, {"result": "Failed", "startedAt": started, "message": message[:1000]}
        m = result.manifest
        status["lastBackup"] = m.created_at
        post_event(
            obj_ref(body),
            "Normal",
            "BackupSucceeded",
            f"{mode} backup {m.id}: {m.copied_objects} of {len(m.files)} files, "
            f"{m.copied_bytes} bytes copied in {result.copied.seconds:.2f} s",
        )
        for recorded in {mode, ran}:
            metrics.BACKUP_RESULT.labels(*labels(body), recorded).set(1)
            metrics.BACKUP_LAST_SUCCESS.labels(*labels(body), recorded).set(now.timestamp())
        note = f"no full backup yet: ran a full one instead of {mode}" if upgraded else None
        return ran, {
            "message": note,
            "id": m.id,
            "result": "Succeeded",
            "startedAt": started,
            "seconds": round(result.copied.seconds, 3),
            "objects": len(m.files),
            "bytes": m.total_bytes,
            "copiedObjects": m.copied_objects,
            "copiedBytes": m.copied_bytes,
            "manifestDigest": f"sha256:{result.manifest_digest}",
            "modelDigest": m.model_digest,
        }

    def has_full(self) -> bool:
        listed, _refused = backups.history(self.backup)
        return any(item.manifest.mode == "full" for item in listed)

    def mirror(self, body: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        """The standby region's copy made equal to the source; when that fails (its store
        down), the copy's last time stays: its age keeps growing, which is the RPO."""
        assert self.standby is not None
        try:
            mirrored = backups.mirror(self.source, self.standby)
        except (BackupError, StoreError) as exc:
            message = f"standby copy not updated: {exc}"
            post_event(obj_ref(body), "Warning", "StandbyCopyFailed", message)
            return {
                **previous,
                "store": self.standby.store.name,
                "upToDate": False,
                "message": message[:1000],
            }
        at = datetime.now(UTC)
        metrics.STANDBY_COPY_TIMESTAMP.labels(*labels(body)).set(at.timestamp())
        return {
            "store": self.standby.store.name,
            "modelDigest": mirrored.model_digest,
            "mirroredAt": stamp(at),
            "upToDate": True,
            "message": None,
        }

    def retain(self, status: dict[str, Any]) -> None:
        """Remove what keepFull no longer keeps; the count of backups kept."""
        listed, _refused = backups.history(self.backup)
        gone = set(expired([item.manifest for item in listed], self.spec.keep_full))
        for item in listed:
            if item.manifest.id in gone:
                backups.delete_backup(self.backup, item)
        status["backups"] = len(listed) - len(gone)


def write_status(
    custom: client.CustomObjectsApi,
    namespace: str,
    name: str,
    generation: int | None,
    *,
    phase: str,
    message: str | None,
    extra: dict[str, Any] | None = None,
) -> None:
    patch = {"status": {"observedGeneration": generation, "phase": phase, "message": message}}
    patch["status"].update(extra or {})
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, MB.PLURAL, name, patch, _request_timeout=TIMEOUT
    )


def obj_ref(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": MB.KIND,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
    }


def labels(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
