"""What a model backup holds and what the next one must copy: pure, so unit-tested.

A backup store keeps, under its prefix (docs/backups.md):

- `sets/<backup id>/<file>`: the bytes one backup run copied;
- `manifests/<sha256>.json`: one manifest per run, named by the sha256 of its own bytes
  (content-addressed: a changed manifest no longer matches its name and is refused).

A run's manifest lists every file of the model at that moment, each with its sha256, size
and the set holding its bytes. So a restore to any point reads one manifest, whatever the
mode that wrote it. The modes differ only in the reference a file is compared with:

- `full` copies every file;
- `incremental` copies what differs from the latest backup of any mode;
- `differential` copies what differs from the latest full backup.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modeldr.kube.artifact import MANIFEST_NAME, Manifest, sha256_bytes

Mode = Literal["full", "incremental", "differential"]
MODES: tuple[Mode, ...] = ("full", "incremental", "differential")
BACKUP_SCHEMA = "modeldr.backup/v1"
SETS = "sets"
MANIFESTS = "manifests"


class BackupFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    set: str = Field(min_length=1, description="the backup id whose set holds the bytes")


class BackupManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    schema_: Literal["modeldr.backup/v1"] = Field(default="modeldr.backup/v1", alias="schema")
    id: str = Field(pattern=r"^[0-9]{8}T[0-9]{12}Z-(full|incremental|differential)$")
    mode: Mode
    created_at: str = Field(alias="createdAt")
    source: str = Field(description="where the model was read: store name and s3:// URL")
    model_digest: str = Field(alias="modelDigest", pattern=r"^sha256:[0-9a-f]{64}$")
    base: str | None = Field(default=None, description="the backup this one was compared with")
    files: dict[str, BackupFile]
    copied_objects: int = Field(alias="copiedObjects", ge=0)
    copied_bytes: int = Field(alias="copiedBytes", ge=0)

    def to_bytes(self) -> bytes:
        payload = json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=True) + "\n"
        return payload.encode("utf-8")

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())


class BackupError(Exception):
    """A backup or restore cannot be done as asked; the message says why and what to do."""


def backup_id(mode: Mode, now: dt.datetime) -> str:
    """Sorts by time (microseconds: two runs in one second stay apart), says the mode."""
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + f"Z-{mode}"


def manifest_key(digest: str) -> str:
    return f"{MANIFESTS}/{digest}.json"


def set_key(set_id: str, name: str) -> str:
    return f"{SETS}/{set_id}/{name}"


def source_files(manifest: Manifest, manifest_bytes: bytes) -> dict[str, tuple[str, int]]:
    """(sha256, size) of every file of the model, its manifest included."""
    files = {name: (entry.sha256, entry.size) for name, entry in manifest.files.items()}
    files[MANIFEST_NAME] = (sha256_bytes(manifest_bytes), len(manifest_bytes))
    return files


def reference_for(mode: Mode, history: list[BackupManifest]) -> BackupManifest | None:
    """The backup a new one of `mode` is compared with (None for full)."""
    if mode == "full":
        return None
    ordered = sorted(history, key=lambda b: b.id)
    if mode == "differential":
        ordered = [b for b in ordered if b.mode == "full"]
    if not ordered or not any(b.mode == "full" for b in history):
        raise BackupError(
            f"no full backup here yet: {'an' if mode == 'incremental' else 'a'} {mode} backup "
            "copies changes since one (run a full backup first)"
        )
    return ordered[-1]


@dataclass(frozen=True)
class BackupPlan:
    id: str
    mode: Mode
    base: str | None
    files: dict[str, BackupFile]
    copy: tuple[str, ...]  # the files this run copies into its own set

    @property
    def copy_bytes(self) -> int:
        return sum(self.files[name].size for name in self.copy)


def plan_backup(
    mode: Mode,
    files: dict[str, tuple[str, int]],
    history: list[BackupManifest],
    new_id: str,
) -> BackupPlan:
    """Which files to copy, and where every file's bytes will be, for a run of `mode`."""
    reference = reference_for(mode, history)
    planned: dict[str, BackupFile] = {}
    copy: list[str] = []
    for name, (sha256, size) in sorted(files.items()):
        kept = reference.files.get(name) if reference else None
        if kept is not None and kept.sha256 == sha256 and kept.size == size:
            planned[name] = kept
        else:
            planned[name] = BackupFile(sha256=sha256, size=size, set=new_id)
            copy.append(name)
    return BackupPlan(new_id, mode, reference.id if reference else None, planned, tuple(copy))


def choose_restore_point(
    history: list[BackupManifest], backup: str | None = None, at: dt.datetime | None = None
) -> BackupManifest:
    """The backup to restore: by id, else the latest at or before `at`, else the latest."""
    if not history:
        raise BackupError("there is no backup to restore")
    if backup is not None:
        for candidate in history:
            if candidate.id == backup:
                return candidate
        raise BackupError(f"no backup {backup!r} here (modeldr backup list shows them)")
    ordered = sorted(history, key=lambda b: b.id)
    if at is not None:
        before = [b for b in ordered if parse_time(b.created_at) <= at]
        if not before:
            raise BackupError(f"no backup was made at or before {at.isoformat()}")
        return before[-1]
    return ordered[-1]


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_content_address(name_digest: str, raw: bytes) -> None:
    """A manifest must hash to its own name: anything else was changed after it was written."""
    actual = sha256_bytes(raw)
    if actual != name_digest:
        raise BackupError(
            f"backup manifest {manifest_key(name_digest)} has sha256 {actual}: it was changed "
            "after the backup was written; refusing to use it"
        )


def expired(history: list[BackupManifest], keep_full: int) -> list[str]:
    """Ids of the backups retention removes: everything older than the oldest of the newest
    `keep_full` full backups. What is newer only ever points at sets of those fulls or later
    (an incremental's chain and a differential's base end at the latest full before them)."""
    fulls = sorted(b.id for b in history if b.mode == "full")
    if len(fulls) <= keep_full:
        return []
    oldest_kept = fulls[-keep_full]
    return sorted(b.id for b in history if b.id < oldest_kept)
