"""Where a ModelBackup's copies live: its stores resolved from the admin's Secrets, checked
against the tenant's policy first, and the restore point a drill restores from.

Shared by the operator's backup daemon (operator/backupdaemon.py) and the `ModelStoreLoss`
drill fault (drills/faults/storeloss.py): both act only on what a ModelBackup that its
namespace's TenantPolicies allow names. A tenant names a store, never reads its Secret.
Blocking I/O (the hub, boto3): async callers run these in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from modeldr.api import modelbackup as MB
from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube import backups
from modeldr.kube.backupmanifest import BackupError, parse_time
from modeldr.kube.config import OperatorConfig
from modeldr.kube.constants import GROUP, MODELDEPLOYMENTS, VERSION
from modeldr.kube.objectstore import S3Url, StoreConfig, StoreError
from modeldr.kube.tenancy import Tenancy

TIMEOUT = 10
STORE_SECRET_PREFIX = "modeldr-store-"


class BackupUnusable(Exception):
    """A ModelBackup (or a restore point) that cannot be used as it is: a phase or reason
    (Invalid, PolicyDenied, NoBackup, BackupTooOld, BackupUnrestorable) and why."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


@dataclass(frozen=True)
class Places:
    """A ModelBackup's spec and the locations it names (its policy allowed them)."""

    spec: MB.ModelBackupSpec
    source: backups.Location
    standby: backups.Location | None
    backup: backups.Location


def places(
    hub: client.ApiClient,
    config: OperatorConfig,
    tenancy: Tenancy,
    namespace: str,
    body: dict[str, Any],
) -> Places:
    """The ModelBackup's stores, after its policy check (PolicyDenied touches no store)."""
    try:
        spec = MB.ModelBackupSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise BackupUnusable("Invalid", str(exc).splitlines()[0]) from None
    stores = [s for s in (spec.source_store, spec.standby_store, spec.backup_store) if s]
    denial = tenancy.grants(namespace).backup_denial(stores, spec.backup_prefix)
    if denial:
        raise BackupUnusable("PolicyDenied", denial)
    source = model_source(hub, namespace, spec.model_deployment)
    core = client.CoreV1Api(hub)

    def at(store: str, url: str) -> backups.Location:
        return backups.Location(store_config(core, config, store), S3Url.parse(url))

    return Places(
        spec,
        at(spec.source_store, source),
        at(spec.standby_store, source) if spec.standby_store else None,
        at(spec.backup_store, spec.backup_prefix),
    )


def model_source(hub: client.ApiClient, namespace: str, name: str) -> str:
    """The ModelDeployment's s3:// source (what its policy admitted)."""
    custom = client.CustomObjectsApi(hub)
    try:
        md = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, MODELDEPLOYMENTS, name, _request_timeout=TIMEOUT
        )
    except client.ApiException as exc:
        if exc.status == 404:
            raise BackupUnusable("Invalid", f"no ModelDeployment {name} in {namespace}") from None
        raise
    source = ModelDeploymentSpec.parse(md["spec"]).model.source
    if not source.startswith("s3://"):
        raise BackupUnusable(
            "Invalid", f"ModelDeployment {name} serves {source}: only s3:// sources are backed up"
        )
    return source


def store_config(core: client.CoreV1Api, config: OperatorConfig, store: str) -> StoreConfig:
    """The store's settings from the admin's Secret modeldr-store-<store>, in the namespace
    of the member Secrets, read as the chart lets the operator read those: `list` there, or
    `get` of the names in memberClusters.secretNames (which must then name the store's)."""
    namespace, name = config.member_secrets_namespace, STORE_SECRET_PREFIX + store
    try:
        if config.member_secret_names:
            found = [core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)]
        else:
            found = core.list_namespaced_secret(
                namespace, field_selector=f"metadata.name={name}", _request_timeout=TIMEOUT
            ).items
    except client.ApiException as exc:
        if exc.status == 404:
            found = []
        elif exc.status == 403:
            raise BackupUnusable(
                "Invalid",
                f"the operator may not read Secret {namespace}/{name} (with "
                "memberClusters.secretNames set, add it there)",
            ) from None
        else:
            raise
    if not found:
        raise BackupUnusable("Invalid", f"no store {store!r}: no Secret {namespace}/{name}")
    try:
        return StoreConfig.from_secret_data(store, found[0].data)
    except ValueError as exc:
        raise BackupUnusable("Invalid", f"Secret {namespace}/{name}: {exc}") from None


def backups_of(hub: client.ApiClient, namespace: str, model: str) -> list[dict[str, Any]]:
    """The ModelBackups in `namespace` that back up ModelDeployment `model`, by name."""
    listed = client.CustomObjectsApi(hub).list_namespaced_custom_object(
        GROUP, VERSION, namespace, MB.PLURAL, _request_timeout=TIMEOUT
    )
    found = [
        item
        for item in listed.get("items") or []
        if (item.get("spec") or {}).get("modelDeployment") == model
    ]
    return sorted(found, key=lambda item: str(item["metadata"]["name"]))


@dataclass(frozen=True)
class RestorePoint:
    """The newest backup of a model, proven restorable (every file read back and checked)."""

    model_backup: str  # the ModelBackup's name
    places: Places
    backup_id: str
    manifest_digest: str
    model_digest: str
    taken_at: datetime
    bytes: int

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.taken_at).total_seconds()


def restore_point(
    hub: client.ApiClient,
    config: OperatorConfig,
    tenancy: Tenancy,
    namespace: str,
    model: str,
    max_age_seconds: float,
) -> RestorePoint:
    """The newest backup of `model` by any ModelBackup of its namespace that its policy allows,
    no older than `max_age_seconds`, verified restorable (a verify-only restore, nothing
    written); BackupUnusable (NoBackup, BackupTooOld, BackupUnrestorable) says why not."""
    found = backups_of(hub, namespace, model)
    if not found:
        raise BackupUnusable(
            "NoBackup",
            f"no ModelBackup in {namespace} backs up ModelDeployment {model}: a lost store "
            "could not be restored",
        )
    newest: tuple[str, Places, backups.Listed] | None = None
    for body in found:
        where = places(hub, config, tenancy, namespace, body)
        try:
            listed, _refused = backups.history(where.backup)
        except StoreError as exc:
            raise BackupUnusable("BackupUnrestorable", f"{where.backup}: {exc}") from None
        for item in listed:
            if newest is None or parse_time(item.manifest.created_at) > parse_time(
                newest[2].manifest.created_at
            ):
                newest = (body["metadata"]["name"], where, item)
    if newest is None:
        names = ", ".join(b["metadata"]["name"] for b in found)
        raise BackupUnusable("NoBackup", f"ModelBackup {names} has no backup of {model} yet")
    name, where, item = newest
    point = RestorePoint(
        name,
        where,
        item.manifest.id,
        item.digest,
        item.manifest.model_digest,
        parse_time(item.manifest.created_at),
        item.manifest.total_bytes,
    )
    if point.age_seconds() > max_age_seconds:
        raise BackupUnusable(
            "BackupTooOld",
            f"the newest backup of {model} ({point.backup_id}, ModelBackup {name}) is "
            f"{point.age_seconds():.0f} s old; the plan allows {max_age_seconds:.0f} s "
            "(maxBackupAgeSeconds)",
        )
    try:
        backups.restore(where.backup, item, None)
    except (BackupError, StoreError) as exc:
        raise BackupUnusable(
            "BackupUnrestorable",
            f"the newest backup of {model} ({point.backup_id}) does not restore: {exc}",
        ) from None
    return point
