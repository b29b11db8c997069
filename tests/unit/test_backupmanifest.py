"""The backups' pure rules: which files each mode copies, where every file's bytes are, which
backup a restore picks, and the content address that exposes a changed manifest."""

from __future__ import annotations

import datetime as dt

import pytest

from modeldr.kube.artifact import MANIFEST_NAME, FileEntry, Manifest, sha256_bytes
from modeldr.kube.backupmanifest import (
    BackupError,
    BackupFile,
    BackupManifest,
    backup_id,
    check_content_address,
    choose_restore_point,
    plan_backup,
    reference_for,
    source_files,
)

T0 = dt.datetime(2026, 12, 6, 7, 0, tzinfo=dt.UTC)


def digest(text: str) -> str:
    return sha256_bytes(text.encode())


def model(**contents: str) -> dict[str, tuple[str, int]]:
    return {name: (digest(text), len(text)) for name, text in contents.items()}


def recorded(plan_id: str, plan: object, when: dt.datetime) -> BackupManifest:
    from modeldr.kube.backupmanifest import BackupPlan

    assert isinstance(plan, BackupPlan)
    return BackupManifest.model_validate(
        {
            "id": plan.id,
            "mode": plan.mode,
            "createdAt": when.isoformat().replace("+00:00", "Z"),
            "source": "s3://models/m (store primary)",
            "modelDigest": "sha256:" + "0" * 64,
            "base": plan.base,
            "files": {n: e.model_dump() for n, e in plan.files.items()},
            "copiedObjects": len(plan.copy),
            "copiedBytes": plan.copy_bytes,
        }
    )


def test_the_three_modes_copy_against_their_references() -> None:
    v1 = model(weights="w" * 100, config="c1", vocab="v")
    history: list[BackupManifest] = []
    full_id = backup_id("full", T0)
    full = plan_backup("full", v1, history, full_id)
    assert full.copy == ("config", "vocab", "weights") and full.copy_bytes == 103
    history.append(recorded(full_id, full, T0))

    v2 = {**v1, **model(config="c2")}
    inc1_id = backup_id("incremental", T0 + dt.timedelta(hours=1))
    inc1 = plan_backup("incremental", v2, history, inc1_id)
    assert inc1.copy == ("config",) and inc1.base == full_id
    # Unchanged files point at the set that already holds them.
    assert inc1.files["weights"].set == full_id and inc1.files["config"].set == inc1_id
    history.append(recorded(inc1_id, inc1, T0 + dt.timedelta(hours=1)))

    v3 = {**v2, **model(vocab="v3")}
    inc2_id = backup_id("incremental", T0 + dt.timedelta(hours=2))
    inc2 = plan_backup("incremental", v3, history, inc2_id)
    assert inc2.copy == ("vocab",) and inc2.base == inc1_id
    assert inc2.files["config"].set == inc1_id
    history.append(recorded(inc2_id, inc2, T0 + dt.timedelta(hours=2)))

    diff_id = backup_id("differential", T0 + dt.timedelta(hours=3))
    diff = plan_backup("differential", v3, history, diff_id)
    # Every change since the full one, whatever the incrementals copied in between.
    assert diff.copy == ("config", "vocab") and diff.base == full_id
    assert diff.files["weights"].set == full_id


def test_a_changed_size_with_the_same_hash_is_still_copied() -> None:
    history = [
        BackupManifest.model_validate(
            {
                "id": "20261206T070000000000Z-full",
                "mode": "full",
                "createdAt": "2026-12-06T07:00:00Z",
                "source": "s",
                "modelDigest": "sha256:" + "0" * 64,
                "files": {"a": {"sha256": digest("x"), "size": 2, "set": "x"}},
                "copiedObjects": 1,
                "copiedBytes": 2,
            }
        )
    ]
    plan = plan_backup("incremental", {"a": (digest("x"), 1)}, history, "new")
    assert plan.copy == ("a",)


@pytest.mark.parametrize("mode", ["incremental", "differential"])
def test_incremental_and_differential_need_a_full_backup(mode: str) -> None:
    with pytest.raises(BackupError, match="no full backup here yet"):
        reference_for(mode, [])  # type: ignore[arg-type]


def test_source_files_include_the_manifest_itself() -> None:
    manifest = Manifest(
        task="sequence-classification",
        revision="r1",
        files={"model.safetensors": FileEntry(sha256=digest("w"), size=1)},
    )
    raw = manifest.to_bytes()
    files = source_files(manifest, raw)
    assert files[MANIFEST_NAME] == (sha256_bytes(raw), len(raw))
    assert files["model.safetensors"] == (digest("w"), 1)


def test_backup_ids_sort_by_time_and_name_the_mode() -> None:
    early = backup_id("full", T0)
    late = backup_id("incremental", T0 + dt.timedelta(microseconds=1))
    assert early < late and early.endswith("Z-full") and late.endswith("Z-incremental")


def test_restore_point_by_id_by_time_or_the_latest() -> None:
    runs: list[BackupManifest] = []
    for hours, mode in ((0, "full"), (1, "incremental"), (2, "differential")):
        when = T0 + dt.timedelta(hours=hours)
        plan = plan_backup(mode, model(a=str(hours)), runs, backup_id(mode, when))  # type: ignore[arg-type]
        runs.append(recorded(plan.id, plan, when))
    assert choose_restore_point(runs).mode == "differential"
    assert choose_restore_point(runs, at=T0 + dt.timedelta(minutes=90)).mode == "incremental"
    assert choose_restore_point(runs, backup=runs[0].id) is runs[0]
    with pytest.raises(BackupError, match="no backup was made at or before"):
        choose_restore_point(runs, at=T0 - dt.timedelta(seconds=1))
    with pytest.raises(BackupError, match="no backup 'nope'"):
        choose_restore_point(runs, backup="nope")
    with pytest.raises(BackupError, match="no backup to restore"):
        choose_restore_point([])


def test_a_manifest_must_hash_to_its_name() -> None:
    raw = b'{"a": 1}'
    check_content_address(sha256_bytes(raw), raw)
    with pytest.raises(BackupError, match="changed after the backup was written"):
        check_content_address(sha256_bytes(raw), raw + b" ")


def test_backup_file_refuses_a_bad_hash() -> None:
    with pytest.raises(ValueError):
        BackupFile(sha256="xyz", size=1, set="s")
