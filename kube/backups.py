"""Model backups between object stores: run (full, incremental, differential), list, restore,
mirror. The layout and the modes' rules are kube/backupmanifest.py's.

Every byte is checked on its way: a file read from the source must hash to what the model's
manifest says before it is written to the backup; a file read from a backup must hash to what
the backup's manifest says before anything is written to the restore target, and the
restored model's manifest must be the digest the backup recorded. A target is written only
once every file passed, the model's manifest last, so a failed restore leaves a target as it
was and a server never sees a half-written model with a complete manifest.

Blocking I/O (boto3): async callers run these in a thread.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from modeldr.kube import objectstore
from modeldr.kube.artifact import MANIFEST_NAME, Manifest, sha256_bytes, sha256_path
from modeldr.kube.backupmanifest import (
    MANIFESTS,
    SETS,
    BackupError,
    BackupFile,
    BackupManifest,
    Mode,
    backup_id,
    check_content_address,
    manifest_key,
    plan_backup,
    set_key,
    source_files,
)
from modeldr.kube.objectstore import S3Url, StoreConfig, StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Called after each file: (file name, bytes done so far, bytes in all).
Progress = Callable[[str, int, int], None]
MIRROR_MARKER = ".modeldr-mirror.json"


@dataclass(frozen=True)
class Location:
    """A store and a prefix in it."""

    store: StoreConfig
    url: S3Url

    def client(self) -> S3Client:
        return objectstore.client(self.store)

    def __str__(self) -> str:
        return f"{self.url} (store {self.store.name})"


@dataclass(frozen=True)
class Copied:
    objects: int
    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class BackupResult:
    manifest: BackupManifest
    manifest_digest: str
    copied: Copied


@dataclass(frozen=True)
class RestoreResult:
    backup: BackupManifest
    model_digest: str
    copied: Copied  # bytes verified (and written, when there was a target)
    target: str | None


@dataclass(frozen=True)
class MirrorResult:
    model_digest: str
    copied: Copied
    unchanged: int


@dataclass(frozen=True)
class Listed:
    manifest: BackupManifest
    digest: str


def read_model(location: Location, s3: S3Client | None = None) -> tuple[Manifest, bytes]:
    """The model's manifest at `location` (its bytes too: their sha256 is the model digest)."""
    s3 = s3 or location.client()
    raw = objectstore.get_bytes(s3, location.store, location.url, MANIFEST_NAME)
    try:
        return Manifest.model_validate(json.loads(raw)), raw
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise BackupError(f"{location}: invalid {MANIFEST_NAME}: {first}") from exc


def history(backup: Location, s3: S3Client | None = None) -> tuple[list[Listed], list[str]]:
    """Every backup under `backup`, oldest first, and the manifests refused (tampered,
    unreadable) with why."""
    s3 = s3 or backup.client()
    listed: list[Listed] = []
    refused: list[str] = []
    manifests = backup.url.child(MANIFESTS)
    for name, _size in objectstore.list_keys(s3, backup.store, manifests):
        digest = name.removesuffix(".json")
        raw = objectstore.get_bytes(s3, backup.store, manifests, name)
        try:
            check_content_address(digest, raw)
            listed.append(Listed(BackupManifest.model_validate(json.loads(raw)), digest))
        except (BackupError, ValueError, ValidationError) as exc:
            refused.append(f"{manifests.child(name)}: {str(exc).splitlines()[0]}")
    listed.sort(key=lambda item: item.manifest.id)
    return listed, refused


def run_backup(
    source: Location,
    backup: Location,
    mode: Mode,
    *,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """One backup run of the model at `source` into `backup`, in `mode`."""
    t0 = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    src_s3, dst_s3 = source.client(), backup.client()
    manifest, raw = read_model(source, src_s3)
    listed, _refused = history(backup, dst_s3)
    plan = plan_backup(
        mode, source_files(manifest, raw), [item.manifest for item in listed], backup_id(mode, now)
    )
    done = 0
    with tempfile.TemporaryDirectory(prefix="modeldr-backup-") as scratch:
        for name in plan.copy:
            entry = plan.files[name]
            path = _fetch_verified(source, src_s3, source.url.key(name), entry, Path(scratch))
            _upload(backup, dst_s3, path, backup.url.key(set_key(plan.id, name)))
            done += entry.size
            if progress:
                progress(name, done, plan.copy_bytes)
    result = BackupManifest.model_validate(
        {
            "id": plan.id,
            "mode": mode,
            "createdAt": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "source": str(source),
            "modelDigest": f"sha256:{sha256_bytes(raw)}",
            "base": plan.base,
            "files": {name: entry.model_dump() for name, entry in plan.files.items()},
            "copiedObjects": len(plan.copy),
            "copiedBytes": plan.copy_bytes,
        }
    )
    body = result.to_bytes()
    digest = sha256_bytes(body)
    _put(backup, dst_s3, backup.url.key(manifest_key(digest)), body)
    return BackupResult(result, digest, Copied(len(plan.copy), done, time.monotonic() - t0))


def restore(
    backup: Location,
    point: Listed,
    target: Location | None,
    *,
    progress: Progress | None = None,
) -> RestoreResult:
    """The model as backup `point` recorded it, verified, then written to `target` (None:
    verify only, nothing written)."""
    t0 = time.monotonic()
    src_s3 = backup.client()
    chosen = point.manifest
    # The manifest was verified against its name when listed; read it again now, so a change
    # since the listing is refused too.
    raw_backup = objectstore.get_bytes(src_s3, backup.store, backup.url, manifest_key(point.digest))
    check_content_address(point.digest, raw_backup)
    total = chosen.total_bytes
    done = 0
    with tempfile.TemporaryDirectory(prefix="modeldr-restore-") as scratch:
        staged = Path(scratch)
        for name, entry in sorted(chosen.files.items()):
            key = backup.url.key(set_key(entry.set, name))
            _fetch_verified(backup, src_s3, key, entry, staged, keep_as=name)
            done += entry.size
            if progress:
                progress(name, done, total)
        _check_restored_model(chosen, staged)
        if target is not None:
            _write_model(target, staged, sorted(chosen.files))
    return RestoreResult(
        chosen,
        chosen.model_digest,
        Copied(len(chosen.files), done, time.monotonic() - t0),
        str(target) if target else None,
    )


def mirror(source: Location, target: Location, *, progress: Progress | None = None) -> MirrorResult:
    """Make `target` serve the same model as `source` (another region's store): copy the files
    whose content differs from the target's current model, verified, the manifest last."""
    t0 = time.monotonic()
    src_s3, dst_s3 = source.client(), target.client()
    manifest, raw = read_model(source, src_s3)
    wanted = source_files(manifest, raw)
    present = _present(target, dst_s3)
    changed = sorted(name for name, value in wanted.items() if present.get(name) != value)
    total = sum(wanted[name][1] for name in changed)
    done = 0
    with tempfile.TemporaryDirectory(prefix="modeldr-mirror-") as scratch:
        staged = Path(scratch)
        for name in changed:
            sha256, size = wanted[name]
            entry = BackupFile(sha256=sha256, size=size, set="source")
            _fetch_verified(source, src_s3, source.url.key(name), entry, staged, keep_as=name)
            done += size
            if progress:
                progress(name, done, total)
        _write_model(target, staged, changed)
    model_digest = f"sha256:{sha256_bytes(raw)}"
    marker = {
        "source": str(source),
        "modelDigest": model_digest,
        "mirroredAt": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    _put(target, dst_s3, target.url.key(MIRROR_MARKER), json.dumps(marker).encode())
    return MirrorResult(
        model_digest, Copied(len(changed), done, time.monotonic() - t0), len(wanted) - len(changed)
    )


def publish(directory: Path, target: Location, *, progress: Progress | None = None) -> MirrorResult:
    """Put a local model directory into a store: every file checked against the directory's
    manifest first, then the files whose content differs at the target, the manifest last."""
    t0 = time.monotonic()
    raw = (directory / MANIFEST_NAME).read_bytes()
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise BackupError(f"{directory / MANIFEST_NAME}: {str(exc).splitlines()[0]}") from exc
    wanted = source_files(manifest, raw)
    for name, (sha256, size) in wanted.items():
        path = directory / name
        if name != MANIFEST_NAME and (
            not path.is_file() or path.stat().st_size != size or sha256_path(path) != sha256
        ):
            raise BackupError(f"{path} does not match {MANIFEST_NAME}: refusing to publish it")
    present = _present(target, target.client())
    changed = sorted(name for name, value in wanted.items() if present.get(name) != value)
    _write_model(target, directory, changed)
    done = sum(wanted[name][1] for name in changed)
    if progress:
        progress(MANIFEST_NAME, done, done)
    return MirrorResult(
        f"sha256:{sha256_bytes(raw)}",
        Copied(len(changed), done, time.monotonic() - t0),
        len(wanted) - len(changed),
    )


def _present(target: Location, s3: S3Client) -> dict[str, tuple[str, int]]:
    """The files of the model at `target` ({} when there is none)."""
    try:
        manifest, raw = read_model(target, s3)
    except objectstore.ObjectMissing:
        return {}
    return source_files(manifest, raw)


def mirror_age(target: Location, now: dt.datetime | None = None) -> tuple[float, str] | None:
    """(seconds since the target was last mirrored, the model digest it got), None if never."""
    s3 = target.client()
    try:
        raw = objectstore.get_bytes(s3, target.store, target.url, MIRROR_MARKER)
    except objectstore.ObjectMissing:
        return None
    marker = json.loads(raw)
    at = dt.datetime.fromisoformat(str(marker["mirroredAt"]).replace("Z", "+00:00"))
    return ((now or dt.datetime.now(dt.UTC)) - at).total_seconds(), str(marker["modelDigest"])


def delete_backup(backup: Location, item: Listed) -> int:
    """Remove one backup: its set's objects, then its manifest. Returns the objects removed."""
    s3 = backup.client()
    keys = [
        backup.url.key(f"{SETS}/{item.manifest.id}/{name}")
        for name, _size in objectstore.list_keys(
            s3, backup.store, backup.url.child(f"{SETS}/{item.manifest.id}")
        )
    ]
    keys.append(backup.url.key(manifest_key(item.digest)))
    for key in keys:
        try:
            s3.delete_object(Bucket=backup.url.bucket, Key=key)
        except Exception as exc:
            raise objectstore.describe(
                backup.store, f"s3://{backup.url.bucket}/{key}", exc
            ) from exc
    return len(keys)


def _fetch_verified(
    location: Location,
    s3: S3Client,
    key: str,
    entry: BackupFile,
    scratch: Path,
    keep_as: str | None = None,
) -> Path:
    """Download one object into `scratch` and check its size and sha256 against `entry`."""
    path = scratch / (keep_as or entry.sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    where = f"s3://{location.url.bucket}/{key} (store {location.store.name})"
    try:
        s3.download_file(location.url.bucket, key, str(path))
    except Exception as exc:
        raise objectstore.describe(location.store, where, exc) from exc
    size = path.stat().st_size
    actual = sha256_path(path)
    if size != entry.size or actual != entry.sha256:
        raise BackupError(
            f"{where}: has {size} bytes with sha256 {actual}, expected {entry.size} bytes with "
            f"sha256 {entry.sha256}: refusing it (changed or damaged in the store)"
        )
    return path


def _check_restored_model(chosen: BackupManifest, staged: Path) -> None:
    """The restored manifest is the model the backup recorded, and lists what was restored."""
    raw = (staged / MANIFEST_NAME).read_bytes()
    digest = f"sha256:{sha256_bytes(raw)}"
    if digest != chosen.model_digest:
        raise BackupError(
            f"backup {chosen.id}: the restored {MANIFEST_NAME} is {digest}, the backup "
            f"recorded {chosen.model_digest}; refusing it"
        )
    listed = set(Manifest.model_validate(json.loads(raw)).files) | {MANIFEST_NAME}
    if listed != set(chosen.files):
        raise BackupError(f"backup {chosen.id}: its files differ from its model's manifest")


def _write_model(target: Location, staged: Path, names: list[str]) -> None:
    s3 = target.client()
    for name in sorted(n for n in names if n != MANIFEST_NAME):
        _upload(target, s3, staged / name, target.url.key(name))
    if MANIFEST_NAME in names:
        _upload(target, s3, staged / MANIFEST_NAME, target.url.key(MANIFEST_NAME))


def _upload(location: Location, s3: S3Client, path: Path, key: str) -> None:
    try:
        s3.upload_file(str(path), location.url.bucket, key)
    except Exception as exc:
        raise objectstore.describe(
            location.store, f"s3://{location.url.bucket}/{key}", exc
        ) from exc


def _put(location: Location, s3: S3Client, key: str, body: bytes) -> None:
    try:
        s3.put_object(Bucket=location.url.bucket, Key=key, Body=body)
    except Exception as exc:
        raise objectstore.describe(
            location.store, f"s3://{location.url.bucket}/{key}", exc
        ) from exc


__all__ = [
    "BackupError",
    "BackupResult",
    "Listed",
    "Location",
    "MirrorResult",
    "RestoreResult",
    "StoreError",
    "delete_backup",
    "history",
    "mirror",
    "mirror_age",
    "publish",
    "read_model",
    "restore",
    "run_backup",
]
