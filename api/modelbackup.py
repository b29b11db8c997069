"""Pydantic models of the ModelBackup CRD (crds/modeldr.io_modelbackups.yaml, generated from
them by scripts/gen_drill_crds.py): a ModelDeployment's artifact backed up on schedules, full,
incremental and differential, to a backup store, and mirrored to the standby region's store.

Stores are named, not described: `<name>` is the admin's Secret `modeldr-store-<name>` in the
operator's namespace (endpoint, region, accessKeyId, secretAccessKey), and a TenantPolicy
says which stores and backup prefixes a namespace may use (spec.backups).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from modeldr.api.base import Message, SpecModel, StatusModel
from modeldr.api.schema import Rule, validations

KIND: Final = "ModelBackup"
PLURAL: Final = "modelbackups"
SHORT_NAME: Final = "mbk"
DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
S3_PREFIX: Final = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$"

StoreName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=DNS_LABEL)]
S3Prefix = Annotated[str, StringConstraints(min_length=8, max_length=1024, pattern=S3_PREFIX)]
Cron = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Mode = Literal["full", "incremental", "differential"]
# `kubectl annotate mbk NAME modeldr.io/backup-now=full`: that mode runs within seconds,
# whatever the schedules say; the operator removes the annotation when it starts the run.
BACKUP_NOW_ANNOTATION: Final = "modeldr.io/backup-now"
NO_SCHEDULE: Final = "schedules needs at least one of full, incremental, differential"


class BackupSchedules(SpecModel):
    """When each mode runs (cron: 5 fields, @hourly-style, or 6 with seconds first)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("has(self.full) || has(self.incremental) || has(self.differential)", NO_SCHEDULE)
        )
    )

    full: Cron | None = Field(default=None, description="Full backups: every file.")
    incremental: Cron | None = Field(
        default=None, description="Incremental backups: what changed since the last backup."
    )
    differential: Cron | None = Field(
        default=None, description="Differential backups: what changed since the last full one."
    )

    @model_validator(mode="after")
    def _one_at_least(self) -> BackupSchedules:
        if not (self.full or self.incremental or self.differential):
            raise ValueError(NO_SCHEDULE)
        return self

    def of(self) -> dict[Mode, str]:
        """The modes that have a schedule, and theirs."""
        given: dict[Mode, str | None] = {
            "full": self.full,
            "incremental": self.incremental,
            "differential": self.differential,
        }
        return {mode: cron for mode, cron in given.items() if cron}


class ModelBackupSpec(SpecModel):
    """What to back up (a ModelDeployment's s3:// model), from and to which stores, when, and
    how many full backups to keep."""

    model_deployment: str = Field(
        min_length=1,
        max_length=253,
        description="The ModelDeployment in this namespace: its spec.model.source (s3://) is "
        "what is backed up.",
    )
    source_store: StoreName = Field(
        description="The store holding spec.model.source (the primary region's)."
    )
    standby_store: StoreName | None = Field(
        default=None,
        description="The standby region's store: the model is mirrored there (same bucket and "
        "prefix) before every backup; the copy's age is the RPO in status.standbyCopy.",
    )
    backup_store: StoreName = Field(description="The store the backups are written to.")
    backup_prefix: S3Prefix = Field(
        description="s3://bucket/prefix of the backups in backupStore (sets/, manifests/)."
    )
    schedules: BackupSchedules = Field(description="At least one mode's schedule.")
    time_zone: str | None = Field(
        default=None, max_length=64, description="IANA time zone of the schedules (UTC)."
    )
    keep_full: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Retention: the newest keepFull full backups and the backups built on "
        "them are kept; older ones (their sets and manifests) are deleted.",
    )
    suspend: bool = Field(default=False, description="true: due times pass, nothing runs.")


class LastRun(StatusModel):
    id: str | None = None
    result: Literal["Succeeded", "Failed"]
    started_at: str
    seconds: float | None = None
    objects: int | None = None
    bytes: int | None = None
    copied_objects: int | None = None
    copied_bytes: int | None = None
    manifest_digest: str | None = None
    model_digest: str | None = None
    message: Message | None = None


class LastRuns(StatusModel):
    full: LastRun | None = None
    incremental: LastRun | None = None
    differential: LastRun | None = None


class StandbyCopy(StatusModel):
    store: str
    model_digest: str | None = None
    mirrored_at: str | None = Field(
        default=None, description="When the standby's copy was last made equal to the source."
    )
    up_to_date: bool = Field(
        default=False, description="At the last run, the copy served the source's digest."
    )
    message: Message | None = None


class ModelBackupStatus(StatusModel):
    observed_generation: int | None = None
    phase: Literal["Scheduled", "Running", "PolicyDenied", "Invalid", "Suspended"] | None = None
    message: Message | None = None
    last_runs: LastRuns | None = None
    last_backup: str | None = Field(default=None, description="Time of the newest backup.")
    standby_copy: StandbyCopy | None = None
    next_run: str | None = Field(default=None, description="mode@time of the next run.")
    backups: int | None = Field(default=None, description="Backups kept after retention.")
