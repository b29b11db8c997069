"""A fault's parameters: what its undo, renewals and observation need besides its targets,
named once. The journal keeps them as strings (status.faults[].parameters, a map of strings
in the CRD, so a new leader reads what an old one wrote); drivers write them with `record()`
and read them back typed with `of()`, never by hand-spelled keys."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from modeldr.api.base import ApiModel
from modeldr.api.drillstatus import FaultRecord


class FaultParameters(ApiModel):
    # Lax, unlike a spec: the journal's strings ("30") are read back as numbers; keys of a
    # newer operator are ignored (the base's extra="ignore").
    model_config = ConfigDict(frozen=True)

    namespace: str | None = None  # the member namespace of the model
    node: str | None = None  # NodeDrain, GPULoss, NodeFailure
    grace_period_seconds: int | None = None  # PodKill, NodeDrain
    model: str | None = None  # ModelCorruption: the Deployment it copies
    loss_percent: int | None = None  # PacketLoss
    latency_milliseconds: int | None = None  # Latency
    jitter_milliseconds: int | None = None  # Latency
    # Set by NodeDrain's inject: pods the PodDisruptionBudget kept (comma-separated).
    refused_by_pod_disruption_budget: str | None = None
    # Set by the step for a renewable fault, pushed on by renewals (drills/renewal.py).
    expires_at: str | None = None
    # Set by the step for a fault whose life it bounds (ModelCorruption): its duration.
    hold_seconds: int | None = None
    # ModelStoreOutage: the label selector of the model's pods (what its observation reads).
    selector: str | None = None
    # ModelStoreLoss: the model's s3:// source, and the backup its undo restores (chosen
    # and proven restorable before anything is deleted).
    source: str | None = None
    backup_store: str | None = None
    backup_url: str | None = None
    backup_id: str | None = None
    model_digest: str | None = None
    # Set by ModelStoreLoss's undo: the restore's seconds and the digest the store holds now.
    restore_seconds: float | None = None
    restored_digest: str | None = None

    @property
    def member_namespace(self) -> str:
        """The namespace, which every driver records (KeyError for a record without it)."""
        if self.namespace is None:
            raise KeyError("namespace")
        return self.namespace

    @property
    def node_name(self) -> str:
        """The node of a node fault (KeyError for a record without one)."""
        if self.node is None:
            raise KeyError("node")
        return self.node

    def record(self) -> dict[str, str]:
        """The journal's form: camelCase keys, strings, nothing unset."""
        return {key: str(value) for key, value in self.dump().items()}

    @classmethod
    def of(cls, record: FaultRecord | dict[str, Any]) -> FaultParameters:
        raw = record.parameters if isinstance(record, FaultRecord) else record
        return cls.model_validate(raw)
