"""`modeldr backup run|list|restore|mirror`: model backups between object stores, for people
and CI (docs/backups.md).

A store is named by a Secret `modeldr-store-<name>` in the hub namespace (`-n`, default the
context's) with the keys endpoint, region, accessKeyId and secretAccessKey: who may read that
Secret may use the store, so the hub's RBAC decides who backs up or restores what.

Exit codes, like the drill commands': 0 done (and verified), 1 refused by verification (a
file or manifest that does not hash to what it should: damaged or tampered), 2 a store did
not answer or failed, 3 usage (a bad URL, an unknown store, no backup to restore).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modeldr.client.hub import Hub
from modeldr.kube import backups
from modeldr.kube.backupmanifest import MODES, BackupError, Mode, choose_restore_point
from modeldr.kube.objectstore import S3Url, StoreConfig, StoreError

EXIT_OK, EXIT_REFUSED, EXIT_STORE, EXIT_USAGE = 0, 1, 2, 3
SECRET_PREFIX = "modeldr-store-"

backup = typer.Typer(
    no_args_is_help=True,
    help="Model backups between object stores: run, list, restore, mirror (docs/backups.md).",
)
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context of the hub")]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", help="hub namespace of the store Secrets (default: the context's)"
    ),
]
Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"),
]
Store = Annotated[
    str, typer.Option("--store", help="the model's store (Secret modeldr-store-<name>)")
]
BackupStore = Annotated[
    str, typer.Option("--backup-store", help="the backups' store (Secret modeldr-store-<name>)")
]
AsJson = Annotated[bool, typer.Option("--json", help="one JSON document on stdout")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines on stderr")]


def out() -> Console:
    # One line per message however long (CI logs); tables get room without a terminal.
    console = Console(highlight=False, soft_wrap=True)
    return console if console.is_terminal else Console(highlight=False, soft_wrap=True, width=160)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def usage(message: str) -> typer.Exit:
    err().print(f"error: {message}", markup=False)
    return typer.Exit(EXIT_USAGE)


def parse_url(text: str) -> S3Url:
    try:
        return S3Url.parse(text)
    except ValueError as exc:
        raise usage(str(exc)) from None


def store_config(hub: Hub, namespace: str, name: str) -> StoreConfig:
    """The store's settings from its hub Secret."""
    secret_name = SECRET_PREFIX + name
    try:
        secret = hub.core.read_namespaced_secret(secret_name, namespace, _request_timeout=10)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status == 404:
            raise usage(
                f"no store {name!r}: no Secret {secret_name} in namespace {namespace}"
            ) from None
        raise usage(
            f"reading Secret {namespace}/{secret_name}: {getattr(exc, 'reason', exc)}"
        ) from None
    try:
        return StoreConfig.from_secret_data(name, secret.data)
    except ValueError as exc:
        raise usage(f"Secret {namespace}/{secret_name}: {exc}") from None


def location(
    kubeconfig: str | None, context: str | None, namespace: str | None, store: str, url: str
) -> backups.Location:
    hub = Hub(kubeconfig, context)
    return backups.Location(
        store_config(hub, namespace or hub.context_namespace, store), parse_url(url)
    )


def progress_printer(quiet: bool, verb: str) -> backups.Progress | None:
    if quiet:
        return None
    stream = err()

    def show(name: str, done: int, total: int) -> None:
        share = 100.0 * done / total if total else 100.0
        stream.print(
            f"{verb} {name}: {human(done)} of {human(total)} ({share:.0f} %)", markup=False
        )

    return show


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def guarded(action: Any) -> Any:
    """Run `action`, mapping failures to the exit codes above with one clear line."""
    try:
        return action()
    except BackupError as exc:
        err().print(f"refused: {exc}", markup=False)
        raise typer.Exit(EXIT_REFUSED) from None
    except StoreError as exc:
        err().print(f"store error: {exc}", markup=False)
        raise typer.Exit(EXIT_STORE) from None


@backup.command("run")
def run_cmd(
    source: Annotated[str, typer.Argument(help="the model: s3://bucket/prefix in --store")],
    store: Store,
    to: Annotated[
        str, typer.Option("--to", help="the backups: s3://bucket/prefix in --backup-store")
    ],
    backup_store: BackupStore,
    mode: Annotated[str, typer.Option("--mode", help="full, incremental or differential")] = "full",
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Back up the model: full copies every file; incremental what changed since the last
    backup; differential what changed since the last full one."""
    if mode not in MODES:
        raise usage(f"--mode {mode!r}: use one of {', '.join(MODES)}")
    src = location(kubeconfig, context, namespace, store, source)
    dst = location(kubeconfig, context, namespace, backup_store, to)
    chosen: Mode = mode
    result: backups.BackupResult = guarded(
        lambda: backups.run_backup(src, dst, chosen, progress=progress_printer(quiet, "copied"))
    )
    m = result.manifest
    if as_json:
        print(json.dumps(backup_json(m, result.manifest_digest, result.copied.seconds)))
        return
    out().print(
        f"backup {m.id}: {m.mode}, {m.copied_objects} of {len(m.files)} files copied, "
        f"{human(m.copied_bytes)} of {human(m.total_bytes)}, in {result.copied.seconds:.2f} s "
        f"({result.copied.mb_per_s:.1f} MB/s); model {m.model_digest}; "
        f"manifest sha256:{result.manifest_digest}",
        markup=False,
    )


def backup_json(m: Any, digest: str, seconds: float | None = None) -> dict[str, Any]:
    out = {
        "id": m.id,
        "mode": m.mode,
        "createdAt": m.created_at,
        "base": m.base,
        "modelDigest": m.model_digest,
        "manifestDigest": f"sha256:{digest}",
        "objects": len(m.files),
        "bytes": m.total_bytes,
        "copiedObjects": m.copied_objects,
        "copiedBytes": m.copied_bytes,
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 3)
    return out


@backup.command("list")
def list_cmd(
    backups_url: Annotated[
        str, typer.Argument(metavar="BACKUPS", help="s3://bucket/prefix of the backups")
    ],
    backup_store: BackupStore,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    as_json: AsJson = False,
) -> None:
    """The backups, oldest first, and any manifest refused (changed after it was written)."""
    where = location(kubeconfig, context, namespace, backup_store, backups_url)
    listed, refused = guarded(lambda: backups.history(where))
    if as_json:
        print(
            json.dumps(
                {"backups": [backup_json(b.manifest, b.digest) for b in listed], "refused": refused}
            )
        )
    else:
        table = Table("ID", "MODE", "BASE", "FILES", "COPIED", "MODEL", box=None)
        for item in listed:
            m = item.manifest
            table.add_row(
                m.id,
                m.mode,
                m.base or "-",
                str(len(m.files)),
                f"{m.copied_objects} ({human(m.copied_bytes)})",
                m.model_digest[:19] + "…",
            )
        out().print(table)
        for line in refused:
            err().print(f"refused: {line}", markup=False)
    if refused:
        raise typer.Exit(EXIT_REFUSED)


@backup.command("restore")
def restore_cmd(
    backups_url: Annotated[
        str, typer.Argument(metavar="BACKUPS", help="s3://bucket/prefix of the backups")
    ],
    backup_store: BackupStore,
    to: Annotated[
        str | None, typer.Option("--to", help="restore here: s3://bucket/prefix in --store")
    ] = None,
    store: Annotated[str | None, typer.Option("--store", help="the target's store")] = None,
    backup_id: Annotated[str | None, typer.Option("--backup", help="this backup id")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="the latest backup at or before this time (ISO 8601)")
    ] = None,
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="read and verify every byte, write nothing")
    ] = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Restore a backup (the latest, or --backup ID, or the latest --at TIME) to --to in
    --store, after verifying every file; --verify-only proves it restorable, writing nothing."""
    if verify_only == bool(to or store):
        raise usage("give --to and --store, or --verify-only")
    if bool(to) != bool(store):
        raise usage("--to and --store go together")
    when = parse_time(at) if at else None
    source = location(kubeconfig, context, namespace, backup_store, backups_url)
    target = location(kubeconfig, context, namespace, store, to) if to and store else None
    listed, _refused = guarded(lambda: backups.history(source))
    try:
        chosen = choose_restore_point([item.manifest for item in listed], backup_id, when)
    except BackupError as exc:
        raise usage(str(exc)) from None
    point = next(item for item in listed if item.manifest.id == chosen.id)
    result: backups.RestoreResult = guarded(
        lambda: backups.restore(source, point, target, progress=progress_printer(quiet, "verified"))
    )
    if as_json:
        record = backup_json(chosen, point.digest, result.copied.seconds)
        record.update({"restoredTo": result.target, "verified": True})
        print(json.dumps(record))
        return
    where = f"restored to {result.target}" if result.target else "verified (nothing written)"
    out().print(
        f"backup {chosen.id} {where}: {len(chosen.files)} files, {human(chosen.total_bytes)} in "
        f"{result.copied.seconds:.2f} s ({result.copied.mb_per_s:.1f} MB/s); model "
        f"{chosen.model_digest} verified",
        markup=False,
    )


@backup.command("mirror")
def mirror_cmd(
    source: Annotated[str, typer.Argument(help="the model: s3://bucket/prefix in --store")],
    store: Store,
    to_store: Annotated[str, typer.Option("--to-store", help="the other region's store")],
    to: Annotated[
        str | None, typer.Option("--to", help="s3://bucket/prefix there (default: the same)")
    ] = None,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Copy the model to another region's store so its pods can load it: only the files whose
    content differs there, verified, the model's manifest last."""
    src = location(kubeconfig, context, namespace, store, source)
    dst = location(kubeconfig, context, namespace, to_store, to or source)
    result: backups.MirrorResult = guarded(
        lambda: backups.mirror(src, dst, progress=progress_printer(quiet, "copied"))
    )
    if as_json:
        print(
            json.dumps(
                {
                    "modelDigest": result.model_digest,
                    "copiedObjects": result.copied.objects,
                    "copiedBytes": result.copied.bytes,
                    "unchanged": result.unchanged,
                    "seconds": round(result.copied.seconds, 3),
                }
            )
        )
        return
    out().print(
        f"mirrored {src} to {dst}: {result.copied.objects} files copied "
        f"({human(result.copied.bytes)}), {result.unchanged} unchanged, in "
        f"{result.copied.seconds:.2f} s; model {result.model_digest}",
        markup=False,
    )


def parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise usage(f"--at {text!r} is not an ISO 8601 time like 2026-12-06T07:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(typer.main.get_command(backup)())
