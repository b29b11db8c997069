"""ModelStoreLoss: a model's objects deleted from a member region's object store, and `mode`
of its pods restarted into the loss; undo restores the model from its newest backup and
verifies it. Asked of the member's infrastructure provider (the store is the
infrastructure's), with the same journal, expiry and renewal as ModelStoreOutage: if nobody
renews it, the provider restores the backup by itself (docs/infrastructure-webhook.md).

Nothing is deleted without a way back: the step chooses the restore point first, the
newest backup of the model by a ModelBackup its TenantPolicy allows, no older than
`fault.maxBackupAgeSeconds`, and proves it restorable (every file read back and checked, a
verify-only restore) before the journal entry is written. The undo's answer says what the
restore wrote; the step measures it (`status.steps[].restoreSeconds`,
`expect.maxRestoreSeconds`) and checks that the store serves the backed-up model again.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from modeldr.api.drillplan import Expect
from modeldr.api.drillstatus import FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills.faults.base import Aim, Choice, Observation, choose_pods
from modeldr.drills.faults.infrastructure import (
    INJECT_TIMEOUT_S,
    PROVIDER,
    call_inject,
    call_renew,
    provider_for,
    restart_pods,
)
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.refusal import Refusal
from modeldr.kube.backupplaces import BackupUnusable, RestorePoint, restore_point
from modeldr.kube.members import MemberRegistry
from modeldr.kube.tenancy import Tenancy

#: The reason of a step whose restore was slower than expect.maxRestoreSeconds.
RESTORE_TOO_SLOW = "RestoreTooSlow"


def find_restore_point(
    members: MemberRegistry, namespace: str, model: str, max_age_seconds: float
) -> RestorePoint:
    """The backup a ModelStoreLoss of `model` would restore; Refusal (NoBackup,
    BackupTooOld, BackupUnrestorable, PolicyDenied, Invalid) when there is none to trust."""
    settings = members.settings
    tenancy = Tenancy(members.hub, settings.namespace)
    try:
        return restore_point(members.hub, settings, tenancy, namespace, model, max_age_seconds)
    except BackupUnusable as exc:
        raise Refusal(exc.phase, str(exc)) from None


class ModelStoreLoss:
    provider = PROVIDER
    needs_infrastructure = True
    inject_allowance_s = INJECT_TIMEOUT_S

    def describe(self, fault_type: str) -> str:
        return (
            "the member's infrastructure provider deletes the model's objects from the "
            "region's object store (the newest backup proven restorable first, no older than "
            "maxBackupAgeSeconds) and `mode` of the model's pods are restarted meanwhile; "
            "undo restores the backup into the store and verifies it (restoreSeconds, "
            "expect.maxRestoreSeconds)"
        )

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        where = aim.where
        provider_for(members, where.cluster)  # no provider: Error before anything is chosen
        point = find_restore_point(
            members, where.hub_namespace, where.name, aim.fault.backup_age_limit
        )
        targets = choose_pods(members, aim)
        parameters = FaultParameters(
            namespace=where.namespace,
            selector=where.label_selector,
            source=str(point.places.source.url),
            backup_store=point.places.backup.store.name,
            backup_url=str(point.places.backup.url),
            backup_id=point.backup_id,
            model_digest=point.model_digest,
        )
        return Choice(targets, parameters.record(), aim.seed)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        call_inject(members, record, None, model=model_of(FaultParameters.of(record)))
        # The model is gone from the store now: the restarted pods start into the loss.
        restart_pods(members, record)

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        call_renew(members, record, expires_at)

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        """The provider restores the backup (and verifies it) before it answers; the answer's
        model digest must be the backup's. Transient errors propagate: the journal retries."""
        t0 = time.monotonic()
        answer = provider_for(members, record.cluster).undo(record.id)
        seconds = time.monotonic() - t0
        result = answer.get("result")
        if not isinstance(result, dict):
            return  # unknown to the provider: never applied, or restored at its expiry
        expected = FaultParameters.of(record).model_digest
        restored = str(result.get("modelDigest") or "")
        if restored != expected:
            raise Refusal(
                "RestoreMismatch",
                f"{record.type} {record.id}: the provider restored model {restored or 'none'}, "
                f"not the backup's {expected}",
            )
        record.parameters["restoreSeconds"] = f"{seconds:.3f}"
        record.parameters["restoredDigest"] = restored

    def after_undo(self, record: FaultRecord, expect: Expect) -> Observation:
        return assess_restore(record, expect.max_restore_seconds)


def model_of(parameters: FaultParameters) -> dict[str, Any]:
    """The inject's `model`: what to delete, and the backup that undo restores."""
    return {
        "source": parameters.source,
        "restoreFrom": {
            "store": parameters.backup_store,
            "url": parameters.backup_url,
            "id": parameters.backup_id,
            "modelDigest": parameters.model_digest,
        },
    }


def assess_restore(record: FaultRecord, max_restore_seconds: float | None) -> Observation:
    """Pure: what the undo said about the restore, against the step's expectation."""
    parameters = FaultParameters.of(record)
    seconds = parameters.restore_seconds
    if record.state != "Undone":
        return Observation(
            Phase.ERROR, "UndoFailed", f"{record.type} {record.id} not restored: {record.message}"
        )
    if seconds is None:
        # Undone without an answer of ours: the provider restored it at its expiry.
        phase = Phase.INCONCLUSIVE if max_restore_seconds is not None else Phase.PASSED
        return Observation(
            phase,
            "RestoreNotMeasured",
            "the model was restored by the provider at the fault's expiry, not by this step's "
            "undo: its time was not measured",
        )
    what = (
        f"backup {parameters.backup_id} restored into the store and verified in {seconds:.2f} s "
        f"(model {parameters.restored_digest})"
    )
    if max_restore_seconds is not None and seconds > max_restore_seconds:
        return Observation(
            Phase.FAILED,
            RESTORE_TOO_SLOW,
            f"{what}: over maxRestoreSeconds {max_restore_seconds:g}",
        )
    return Observation(Phase.PASSED, "Restored", what)
