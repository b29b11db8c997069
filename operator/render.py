"""What a ModelDeployment becomes in a member cluster: a Deployment, a Service and a
PodDisruptionBudget. Pure functions of the spec, so they are unit-tested without a cluster.

Objects carry owner labels (`OWNER_LABELS`) so the operator finds its objects in every member
with one label selector, and a ModelDeployment never adopts an object of another one.
"""

from __future__ import annotations

import json
from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import (
    DIGEST_ANNOTATION,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    MANAGED_BY,
    MANAGER,
    POD_ANNOTATIONS_ANNOTATION,
    ROLE_LABEL,
    Role,
    selector_labels,
)
from modeldr.kube.errors import RenderError
from modeldr.kube.objectstore import FALLBACK_STORE_ENV, STORE_ENV
from modeldr.operator import autoscaling

# Seconds the server may need for the requests it accepted during the drain (a batch of long
# sequences on a busy GPU), on top of the drain delay.
INFLIGHT_BUDGET_S = 20
DEFAULT_DRAIN_DELAY_S = 5
MODEL_MOUNT = "/models"
# Where an s3:// source's fetched copy lives: an emptyDir of its own (under the /tmp scratch
# volume's path, which the sandbox's process runtime can write to as well).
FETCH_MOUNT = "/tmp/modeldr-models"


def owner_labels(name: str, hub_namespace: str, role: Role) -> dict[str, str]:
    return {
        MANAGED_BY: MANAGER,
        "app.kubernetes.io/name": "modeldr-server",
        "app.kubernetes.io/instance": name,
        **selector_labels(name, hub_namespace),
        ROLE_LABEL: role,
    }


def drain_delay_seconds(spec: ModelDeploymentSpec, role: Role) -> int:
    """MODELDR_SERVE_DRAIN_DELAY_S of the role's effective env (the server's default if unset)."""
    for var in spec.env_for(role):
        if var.name == "MODELDR_SERVE_DRAIN_DELAY_S":
            try:
                return max(0, int(float(var.value)))
            except ValueError:
                overridden = any(v.name == var.name for v in spec.member(role).runtime.env)
                field = f"spec.clusters.{role}.runtime.env" if overridden else "spec.runtime.env"
                raise RenderError(
                    f"{field} MODELDR_SERVE_DRAIN_DELAY_S={var.value!r} is not a number"
                ) from None
    return DEFAULT_DRAIN_DELAY_S


def grace_period_seconds(spec: ModelDeploymentSpec, role: Role) -> int:
    """terminationGracePeriodSeconds: the server's drain delay plus time to finish requests."""
    return drain_delay_seconds(spec, role) + INFLIGHT_BUDGET_S


def model_volume(spec: ModelDeploymentSpec) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(volume, volumeMount, model directory in the container) for the model source."""
    source = spec.model.source
    if source.startswith("file:///"):
        # A directory on the node, mounted at the same path: the server (and the sandbox's
        # process runtime, which has no mount namespace) reads it where it is.
        path = "/" + source.removeprefix("file:///").rstrip("/")
        volume = {"name": "model", "hostPath": {"path": path, "type": "Directory"}}
        return volume, {"name": "model", "mountPath": path, "readOnly": True}, path
    if source.startswith("pvc://"):
        claim, _, sub_path = source.removeprefix("pvc://").partition("/")
        volume = {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True}
        directory = f"{MODEL_MOUNT}/{sub_path.strip('/')}" if sub_path.strip("/") else MODEL_MOUNT
        return volume, mount, directory
    if source.startswith("s3://"):
        # The server fetches the files from the member's store into this pod's own scratch
        # volume and verifies them before serving (serving/fetch.py).
        volume = {"name": "model", "emptyDir": {}}
        return volume, {"name": "model", "mountPath": FETCH_MOUNT}, FETCH_MOUNT
    scheme = source.split("://", 1)[0]
    raise RenderError(
        f"spec.model.source {scheme}:// is not supported by this operator version yet; "
        "use file:///<dir on the node>, pvc://<claim>/<path> or s3://<bucket>/<prefix>"
    )


def store_env(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    """An s3:// source's store settings, read by the kubelet from the member namespace's store
    Secrets (spec.model.store): the operator names them and never sees the credentials."""
    if not spec.model.source.startswith("s3://"):
        return []
    env: list[dict[str, Any]] = [{"name": "MODELDR_SERVE_MODEL_SOURCE", "value": spec.model.source}]
    store = spec.model.store
    for names, secret in (
        (STORE_ENV, store.secret_name),
        (FALLBACK_STORE_ENV, store.fallback_secret_name),
    ):
        if secret:
            env += [
                {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for key, var in names.items()
            ]
    return env


def pod_template_annotations(
    spec: ModelDeploymentSpec, md_annotations: dict[str, str]
) -> dict[str, str]:
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(spec.runtime.port),
        "prometheus.io/path": "/metrics",
        DIGEST_ANNOTATION: spec.model.expected_digest,
    }
    raw = md_annotations.get(POD_ANNOTATIONS_ANNOTATION)
    if raw:
        try:
            extra = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RenderError(
                f"annotation {POD_ANNOTATIONS_ANNOTATION} is not JSON: {exc}"
            ) from None
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise RenderError(
                f"annotation {POD_ANNOTATIONS_ANNOTATION} must be a JSON object of strings"
            )
        annotations.update({k: v for k, v in extra.items() if k != DIGEST_ANNOTATION})
    return annotations


def server_env(spec: ModelDeploymentSpec, role: Role, model_dir: str) -> list[dict[str, Any]]:
    """The container env in the role's cluster: what the operator derives from the spec, then
    the defaults the user env does not set, then the user env (spec.runtime.env with the
    role's clusters.<role>.runtime.env merged by name, ModelDeploymentSpec.env_for)."""
    batching = spec.runtime.batching
    user = {var.name: var.value for var in spec.env_for(role)}
    derived = {
        "MODELDR_SERVE_MODEL_DIR": model_dir,
        "MODELDR_SERVE_MODEL_NAME": spec.model.name,
        "MODELDR_SERVE_EXPECTED_DIGEST": spec.model.expected_digest,
        "MODELDR_SERVE_HOST": "$(POD_IP)",
        "MODELDR_SERVE_PORT": str(spec.runtime.port),
        "MODELDR_SERVE_MAX_BATCH_SIZE": str(batching.max_batch_size),
        "MODELDR_SERVE_MAX_BATCH_DELAY_MS": str(batching.max_batch_delay_ms),
        "MODELDR_SERVE_MAX_QUEUE": str(batching.max_queue),
        # The server plans its drain within the pod's grace period.
        "MODELDR_SERVE_GRACE_PERIOD_S": str(grace_period_seconds(spec, role)),
    }
    defaults = {
        "MODELDR_SERVE_DRAIN_DELAY_S": str(DEFAULT_DRAIN_DELAY_S),
        "HOME": "/tmp",
        # The server refuses texts-per-request above its queue bound.
        "MODELDR_SERVE_MAX_TEXTS_PER_REQUEST": str(min(64, batching.max_queue)),
    }
    if spec.resources.gpus_per_replica == 0:
        defaults["MODELDR_SERVE_DEVICE"] = "cpu"
    env: list[dict[str, Any]] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]
    env += [{"name": k, "value": v} for k, v in derived.items()]
    env += store_env(spec)
    env += [{"name": k, "value": v} for k, v in defaults.items() if k not in user]
    env += [{"name": k, "value": v} for k, v in user.items() if k not in derived]
    return env


def container_resources(spec: ModelDeploymentSpec) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    res = spec.resources
    if res.cpu is not None:
        requests["cpu"] = limits["cpu"] = str(res.cpu)
    if res.memory is not None:
        requests["memory"] = limits["memory"] = str(res.memory)
    if res.gpus_per_replica:
        # Extended resources: the limit is the request.
        limits[GPU_RESOURCE] = str(res.gpus_per_replica)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def scratch_mounts(mount: dict[str, Any]) -> list[dict[str, Any]]:
    tmp = {"name": "tmp", "mountPath": "/tmp"}
    # A fetched model's volume lies inside /tmp: the parent is listed (and mounted) first.
    return [tmp, mount] if mount["mountPath"] == FETCH_MOUNT else [mount, tmp]


def server_container(
    spec: ModelDeploymentSpec, role: Role, mount: dict[str, Any], model_dir: str
) -> dict[str, Any]:
    """The model server's container: the image, its env, probes and a locked-down context."""
    return {
        "name": "server",
        "image": spec.runtime.image,
        "imagePullPolicy": spec.runtime.image_pull_policy,
        "command": ["modeldr-serve", "run"],
        # A refused start (a digest or file mismatch, no store answering) shows its reason in
        # the pod's status: kubectl describe, the operator's events.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "env": server_env(spec, role, model_dir),
        "ports": [{"name": "http", "containerPort": spec.runtime.port, "protocol": "TCP"}],
        "resources": container_resources(spec),
        # Read-only root: torch and tokenizers get a scratch /tmp.
        "volumeMounts": scratch_mounts(mount),
        # Ready only once the model is loaded and warmed, and not while draining;
        # the server itself turns not-ready on SIGTERM, so no preStop sleep is
        # needed: drain delay and grace period above are matched to its drain.
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
            "successThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def replicas_field(spec: ModelDeploymentSpec, replicas: int) -> dict[str, int]:
    """The Deployment's replicas, unless an HPA owns them (spec.autoscaling): server-side
    apply then leaves the field to the autoscaler instead of reverting every scale."""
    return {} if spec.autoscaling else {"replicas": replicas}


def deployment(
    name: str,
    hub_namespace: str,
    spec: ModelDeploymentSpec,
    role: Role,
    replicas: int,
    md_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    member = spec.member(role)
    volume, mount, model_dir = model_volume(spec)
    labels = owner_labels(name, hub_namespace, role)
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": grace_period_seconds(spec, role),
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
        "containers": [server_container(spec, role, mount, model_dir)],
        "volumes": [volume, {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if spec.resources.gpus_per_replica:
        pod_spec["tolerations"] = [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
        # The role's own product (clusters.<role>.resources.gpuProduct) wins: a standby
        # may run on another GPU type than the primary.
        product = spec.gpu_product_for(role)
        if product:
            pod_spec["nodeSelector"] = {GPU_PRODUCT_LABEL: product}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": member.namespace, "labels": labels},
        "spec": {
            **replicas_field(spec, replicas),
            "selector": {"matchLabels": selector_labels(name, hub_namespace)},
            # Never below the wanted capacity during a rollout: GPUs permitting, one extra.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": pod_template_annotations(spec, md_annotations or {}),
                },
                "spec": pod_spec,
            },
        },
    }


def service(name: str, hub_namespace: str, spec: ModelDeploymentSpec, role: Role) -> dict[str, Any]:
    member = spec.member(role)
    slice_settings = spec.traffic.endpoint_slice
    node_port: dict[str, Any] = {}
    exposure: dict[str, Any] = {}
    if spec.traffic.provider == "endpointslice" and slice_settings.node_ports:
        # Clients enter on the nodes that run a ready pod (the hub slice lists exactly
        # those): Local keeps a request on its node, so a dead node fails like its pods.
        node_port = {"nodePort": slice_settings.node_port}
        exposure = {"type": "NodePort", "externalTrafficPolicy": "Local"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": member.namespace,
            "labels": owner_labels(name, hub_namespace, role),
        },
        "spec": {
            "selector": selector_labels(name, hub_namespace),
            "ports": [
                {
                    "name": "http",
                    "port": spec.runtime.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    **node_port,
                }
            ],
            **exposure,
        },
    }


def pod_disruption_budget(
    name: str, hub_namespace: str, spec: ModelDeploymentSpec, role: Role
) -> dict[str, Any]:
    member = spec.member(role)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": name,
            "namespace": member.namespace,
            "labels": owner_labels(name, hub_namespace, role),
        },
        "spec": {
            # One replica at a time through drains and upgrades of the member's nodes.
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(name, hub_namespace)},
            # A replica that never got ready (e.g. bad weights) may still be evicted.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def member_objects(
    name: str,
    hub_namespace: str,
    spec: ModelDeploymentSpec,
    role: Role,
    replicas: int,
    md_annotations: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The member's objects; with spec.autoscaling, `replicas` is the HPA's minReplicas."""
    objects = [
        deployment(name, hub_namespace, spec, role, replicas, md_annotations),
        service(name, hub_namespace, spec, role),
        pod_disruption_budget(name, hub_namespace, spec, role),
    ]
    if spec.autoscaling:
        member = spec.member(role)
        labels = owner_labels(name, hub_namespace, role)
        objects.append(
            autoscaling.horizontal_pod_autoscaler(
                name, member.namespace, labels, spec.autoscaling, role, replicas
            )
        )
    return objects


def is_subset(desired: Any, actual: Any) -> bool:
    """True when every field of `desired` has the same value in `actual`.

    The apiserver adds defaults (protocol, terminationMessagePath, ...) but keeps what we set,
    so "desired is contained in actual" means "no drift". Lists compare item by item in order.
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return False
        # The apiserver omits empty values (Go's omitempty): a desired False, 0 or "" matches
        # an absent field.
        return all(
            is_subset(v, actual[k]) if k in actual else v in (False, 0, "", None, [], {})
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
    if isinstance(desired, int | float) and isinstance(actual, int | float):
        return desired == actual
    return str(desired) == str(actual) if desired is not None else actual is None
