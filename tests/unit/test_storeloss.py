"""ModelStoreLoss's pure parts: what the provider is asked, how the undo's restore is judged,
the plan's rules for its fields, and the sandbox provider's checks of the request."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldr.api.drillplan import DEFAULT_MAX_BACKUP_AGE_SECONDS, Fault, Msg, Step
from modeldr.api.drillstatus import FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.faults.storeloss import RESTORE_TOO_SLOW, assess_restore, model_of
from modeldr.drills.infra import InfrastructureError, InfrastructureProvider
from sandbox.webhook_server import RequestError, Webhook

DIGEST = "sha256:" + "a" * 64
PARAMETERS = FaultParameters(
    namespace="team-x",
    source="s3://models/team-x/tiny-bert",
    backup_store="backup",
    backup_url="s3://modeldr-backups/team-x/tiny-bert",
    backup_id="20261206T101500000000Z-full",
    model_digest=DIGEST,
)


def record(state: str = "Undone", **extra: str) -> FaultRecord:
    return FaultRecord.model_validate(
        {
            "id": "f-1",
            "step": "lose",
            "type": "ModelStoreLoss",
            "cluster": "primary",
            "state": state,
            "message": "provider answered 503" if state != "Undone" else None,
            "parameters": {**PARAMETERS.record(), **extra},
        }
    )


def test_the_provider_is_asked_to_delete_the_source_and_restore_the_named_backup() -> None:
    assert model_of(PARAMETERS) == {
        "source": "s3://models/team-x/tiny-bert",
        "restoreFrom": {
            "store": "backup",
            "url": "s3://modeldr-backups/team-x/tiny-bert",
            "id": "20261206T101500000000Z-full",
            "modelDigest": DIGEST,
        },
    }


def test_only_store_loss_names_a_model_for_the_provider() -> None:
    provider = InfrastructureProvider("http://127.0.0.1:1", "token")
    from datetime import UTC, datetime

    soon = datetime.now(UTC)
    with pytest.raises(InfrastructureError, match="only it, names a model"):
        provider.inject("f-1", "ModelStoreLoss", "primary", expires_at=soon)
    with pytest.raises(InfrastructureError, match="only it, names a model"):
        provider.inject("f-1", "ClusterOutage", "primary", expires_at=soon, model={})


def test_a_restore_within_the_expectation_passes_and_a_slow_one_fails() -> None:
    done = record(restoreSeconds="2.500", restoredDigest=DIGEST)
    passed = assess_restore(done, 10)
    assert passed.phase is Phase.PASSED
    assert "backup 20261206T101500000000Z-full restored" in passed.message
    assert "2.50 s" in passed.message
    slow = assess_restore(done, 1)
    assert (slow.phase, slow.reason) == (Phase.FAILED, RESTORE_TOO_SLOW)
    assert "over maxRestoreSeconds 1" in slow.message
    assert assess_restore(done, None).phase is Phase.PASSED  # measured, not checked


def test_a_restore_not_measured_or_not_done_never_passes_a_time_expectation() -> None:
    # Undone with no answer of ours: the provider restored it at its expiry.
    unmeasured = assess_restore(record(), 10)
    assert (unmeasured.phase, unmeasured.reason) == (Phase.INCONCLUSIVE, "RestoreNotMeasured")
    assert assess_restore(record(), None).phase is Phase.PASSED
    failed = assess_restore(record(state="Applied"), None)
    assert (failed.phase, failed.reason) == (Phase.ERROR, "UndoFailed")


def fault(**fields: Any) -> dict[str, Any]:
    return {"type": "ModelStoreLoss", "cluster": "primary", **fields}


def test_backup_age_and_restore_time_belong_to_store_loss_only() -> None:
    assert Fault.model_validate(fault()).backup_age_limit == DEFAULT_MAX_BACKUP_AGE_SECONDS
    assert Fault.model_validate(fault(maxBackupAgeSeconds=60)).backup_age_limit == 60
    with pytest.raises(ValidationError, match=Msg.BACKUP_AGE_ONLY):
        Fault.model_validate({"type": "PodKill", "maxBackupAgeSeconds": 60})
    step = {"name": "s", "durationSeconds": 5, "expect": {"maxRestoreSeconds": 5}}
    assert Step.model_validate({**step, "fault": fault()}).expect.max_restore_seconds == 5
    with pytest.raises(ValidationError, match="maxRestoreSeconds is only for"):
        Step.model_validate({**step, "fault": {"type": "PodKill"}})
    with pytest.raises(ValidationError, match="maxRestoreSeconds is only for"):
        Step.model_validate({**step, "action": {"type": "Wait"}})


def test_the_provider_refuses_a_store_loss_without_its_backup() -> None:
    body = {"type": "ModelStoreLoss", "model": model_of(PARAMETERS)}
    assert Webhook._validate_model(body) == model_of(PARAMETERS)
    for broken in (
        {"type": "ModelStoreLoss"},
        {"type": "ModelStoreLoss", "model": {"source": "file:///x", "restoreFrom": {}}},
        {
            "type": "ModelStoreLoss",
            "model": {**model_of(PARAMETERS), "restoreFrom": {"store": "backup"}},
        },
        {"type": "ClusterOutage", "model": model_of(PARAMETERS)},
    ):
        with pytest.raises(RequestError) as refused:
            Webhook._validate_model(broken)
        assert refused.value.status == 400
    assert Webhook._validate_model({"type": "ClusterOutage"}) is None
