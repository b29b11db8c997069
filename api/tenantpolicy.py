"""`TenantPolicy` (modeldr.io/v1alpha1, cluster-scoped, short name `tp`): what the hub
namespaces it covers may do, written by the platform admin (TENANCY.md, docs/tenancy.md).

No policy covering a namespace means it may place nothing and drill nothing. Several policies
covering one namespace add up (modeldr.api.tenancy evaluates them). The CRD
(crds/modeldr.io_tenantpolicies.yaml) is generated from these models (modeldr/kube/crds.py).

Pure: models and names; no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field, StringConstraints

from modeldr.api.base import SpecModel, StatusModel
from modeldr.api.drillplan import DNS_LABEL, FaultType

KIND: Final = "TenantPolicy"
PLURAL: Final = "tenantpolicies"
SHORT_NAME: Final = "tp"

# Labels of the freeze and of a member cluster's consent (TENANCY.md): on the operator's
# namespace (every drill) or a member's hub Secret (every drill touching that member).
FROZEN_LABEL: Final = "modeldr.io/drills-frozen"
# On a member's hub Secret: whole-cluster faults (ClusterOutage) may be made there.
CLUSTER_FAULTS_LABEL: Final = "modeldr.io/allow-cluster-faults"
TRUE: Final = "true"

# Bounds: every list is bounded so the CRD's CEL rules and the checks stay cheap.
MAX_NAMESPACES: Final = 256
MAX_PLACEMENTS: Final = 64
MAX_PREFIXES: Final = 64
MAX_SELECTOR_LABELS: Final = 16

Namespace = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL)]
# No whitespace: a prefix is one token (the admission policy reads grants one per line).
Prefix = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")]
ClusterName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]
LabelValue = Annotated[str, StringConstraints(max_length=63)]


class Placement(SpecModel):
    """A member cluster and the namespaces there that ModelDeployments of the covered hub
    namespaces may place pods in; the operator creates a member namespace only when it is
    listed here."""

    cluster: ClusterName = Field(description="A member cluster's name.")
    namespaces: list[Namespace] = Field(
        min_length=1, max_length=MAX_NAMESPACES, description="Member namespaces, by exact name."
    )


class DrillsPolicy(SpecModel):
    """What drills of the covered namespaces may do. Left out: no drill at all."""

    faults: list[FaultType] = Field(
        default_factory=list,
        max_length=16,
        description="Fault types allowed; only what is listed (a step of another type ends the "
        "run Error, PolicyDenied, before anything is touched).",
    )
    max_pods_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Cap over any plan's blastRadius.maxPodsPercent; unset: the plan's own.",
    )
    node_selector: dict[str, LabelValue] | None = Field(
        default=None,
        max_length=MAX_SELECTOR_LABELS,
        description="Node-level faults (NodeDrain, GPULoss, NodeFailure) only on nodes with "
        "all these labels; unset: any node (still never one running pods of a workload that "
        "did not opt in).",
    )
    frozen: bool = Field(
        default=False,
        description="true: the covered namespaces' drills in progress end Aborted (Frozen), "
        "every fault undone, and no new one starts.",
    )


class BackupsPolicy(SpecModel):
    """What ModelBackups of the covered namespaces may use."""

    stores: list[Namespace] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="Stores (Secrets modeldr-store-<name> in the operator's namespace) their "
        "ModelBackups may read and write; only what is listed.",
    )
    prefixes: list[Prefix] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="Allowed prefixes of a ModelBackup's spec.backupPrefix (s3://bucket/path/); "
        "only what is listed. A prefix with a '.' or '..' segment is never allowed.",
    )


class TenantPolicySpec(SpecModel):
    """What the hub namespaces it covers may do. A namespace no policy covers may do nothing;
    several policies covering one namespace add up (what any allows is allowed, a freeze in
    any freezes)."""

    namespaces: list[Namespace] = Field(
        min_length=1, max_length=MAX_NAMESPACES, description="Hub namespaces covered."
    )
    placements: list[Placement] = Field(
        default_factory=list,
        max_length=MAX_PLACEMENTS,
        description="Where their ModelDeployments may put pods; only what is listed.",
    )
    model_sources: list[Prefix] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="Allowed prefixes of spec.model.source (end a path with '/'); only what "
        "is listed. A source with a '..' segment is never allowed.",
    )
    images: list[Prefix] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="Allowed prefixes of spec.runtime.image; only what is listed.",
    )
    drills: DrillsPolicy = Field(
        default_factory=lambda: DrillsPolicy.model_validate({}),
        description="What drills may do; left out: no drill.",
    )
    backups: BackupsPolicy = Field(
        default_factory=lambda: BackupsPolicy.model_validate({}),
        description="What ModelBackups may use; left out: no backup.",
    )

    @classmethod
    def parse(cls, spec: Any) -> TenantPolicySpec:
        return cls.model_validate(dict(spec))


class TenantPolicyStatus(StatusModel):
    """Nothing yet: a policy is read, never written, by the operator."""
