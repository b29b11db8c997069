"""Names the operator, the drill engine, the sandbox, the benchmarks and the tests share.

Spell an API group, plural, label, annotation or role here once and import it everywhere
else: a name that drifts between the CRD, the operator and a test is a bug that no type
checker finds.
"""

from __future__ import annotations

from typing import Final, Literal

GROUP: Final = "modeldr.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

# ModelDeployment
MODELDEPLOYMENT_KIND: Final = "ModelDeployment"
MODELDEPLOYMENTS: Final = "modeldeployments"
# DrillPlan and DrillRun (the drill engine, modeldr.drills)
DRILLPLAN_KIND: Final = "DrillPlan"
DRILLPLANS: Final = "drillplans"
DRILLRUN_KIND: Final = "DrillRun"
DRILLRUNS: Final = "drillruns"


def crd_name(plural: str) -> str:
    """The CustomResourceDefinition's name for one of our plurals."""
    return f"{plural}.{GROUP}"


# The two member roles of a ModelDeployment.
Role = Literal["primary", "standby"]
ROLES: Final[tuple[Role, Role]] = ("primary", "standby")

# kopf's operator memo: the process's shared parts (hub client, members, monitors, active
# drills), built once at startup (modeldr.operator.runtime.Runtime).
RUNTIME_KEY: Final = "runtime"

# kopf's bookkeeping on our objects.
FINALIZER: Final = f"{GROUP}/finalizer"
KOPF_PREFIX: Final = GROUP
DIFFBASE_KEY: Final = "last-handled-configuration"

# Labels on what the operator creates in member clusters (and on the hub traffic objects).
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "modeldr"
NAME_LABEL: Final = f"{GROUP}/name"
NAMESPACE_LABEL: Final = f"{GROUP}/namespace"
ROLE_LABEL: Final = f"{GROUP}/role"
# Hub Secrets holding a member cluster's kubeconfig carry this label (value: the cluster name).
MEMBER_CLUSTER_LABEL: Final = f"{GROUP}/member-cluster"
# A ModelDeployment opts in to drills with this label set to DRILLS_ENABLED.
DRILLS_LABEL: Final = f"{GROUP}/drills"
DRILLS_ENABLED: Final = "enabled"
# A DrillRun names its plan with this label.
DRILL_PLAN_LABEL: Final = f"{GROUP}/drill-plan"

# Annotations on a ModelDeployment.
# A requested switch: the annotation's value names the role or cluster to serve from.
SWITCH_ANNOTATION: Final = f"{GROUP}/switch-to"
# "true": the operator leaves the ModelDeployment alone (no reconcile, no health checks, no
# failover, no status writes) until the annotation is removed. Deletion still cleans up.
PAUSED_ANNOTATION: Final = f"{GROUP}/paused"
# Annotations on what the operator renders.
DIGEST_ANNOTATION: Final = f"{GROUP}/expected-digest"
# A JSON object of annotations added to the pod template (e.g. a service mesh's, or the
# sandbox's `sandbox.modeldr.io/run: process`, which runs the pods as real processes).
POD_ANNOTATIONS_ANNOTATION: Final = f"{GROUP}/pod-template-annotations"
# On the hub EndpointSlice: which cluster its endpoints are in.
ACTIVE_CLUSTER_ANNOTATION: Final = f"{GROUP}/active-cluster"

# GPUs.
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"


def selector_labels(name: str, hub_namespace: str) -> dict[str, str]:
    """The labels that select a ModelDeployment's pods in a member cluster."""
    # Immutable once a Deployment exists: never add the role or anything that changes.
    return {NAME_LABEL: name, NAMESPACE_LABEL: hub_namespace}
