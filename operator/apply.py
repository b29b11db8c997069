"""Writes to member clusters (blocking; called from worker threads).

Server-side apply with field manager `modeldr` and force, so a person's `kubectl edit` of a
field modeldr owns is reverted (drift repair) while fields modeldr does not set are left
alone. An object of the same name that modeldr does not own is never taken over.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from modeldr.kube import k8s
from modeldr.kube.constants import MANAGED_BY, MANAGER, NAME_LABEL, NAMESPACE_LABEL
from modeldr.kube.errors import ConflictError

FIELD_MANAGER = "modeldr"
APPLY = "application/apply-patch+yaml"
TIMEOUT = (1.0, 10.0)
HPA = "HorizontalPodAutoscaler"


def _owned_by(obj: Any, name: str, hub_namespace: str) -> bool:
    labels = obj.metadata.labels or {}
    return (
        labels.get(MANAGED_BY) == MANAGER
        and labels.get(NAME_LABEL) == name
        and labels.get(NAMESPACE_LABEL) == hub_namespace
    )


def _read(api: client.ApiClient, kind: str, namespace: str, name: str) -> Any:
    if kind == "Deployment":
        return client.AppsV1Api(api).read_namespaced_deployment(
            name, namespace, _request_timeout=TIMEOUT
        )
    if kind == "Service":
        return client.CoreV1Api(api).read_namespaced_service(
            name, namespace, _request_timeout=TIMEOUT
        )
    if kind == HPA:
        return client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(
            name, namespace, _request_timeout=TIMEOUT
        )
    return client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
        name, namespace, _request_timeout=TIMEOUT
    )


def _apply(api: client.ApiClient, obj: dict[str, Any]) -> None:
    kind, name, namespace = obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]
    kwargs: dict[str, Any] = {
        "field_manager": FIELD_MANAGER,
        "force": True,
        "_content_type": APPLY,
        "_request_timeout": TIMEOUT,
    }
    if kind == "Deployment":
        client.AppsV1Api(api).patch_namespaced_deployment(name, namespace, obj, **kwargs)
    elif kind == "Service":
        client.CoreV1Api(api).patch_namespaced_service(name, namespace, obj, **kwargs)
    elif kind == HPA:
        client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler(
            name, namespace, obj, **kwargs
        )
    else:
        client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget(
            name, namespace, obj, **kwargs
        )


def ensure_namespace(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    if k8s.call(core.read_namespace, namespace, _request_timeout=TIMEOUT, absent=None) is None:
        k8s.call(
            core.create_namespace,
            {"metadata": {"name": namespace, "labels": {MANAGED_BY: MANAGER}}},
            _request_timeout=TIMEOUT,
            conflict=k8s.DONE,  # created meanwhile
        )


def apply_objects(
    api: client.ApiClient,
    objects: list[dict[str, Any]],
    name: str,
    hub_namespace: str,
    *,
    known: set[str],
) -> list[str]:
    """Apply `objects`; `known` are kinds already seen as ours (no ownership read needed).

    Returns the kinds written.
    """
    written = []
    if any(obj["kind"] not in known for obj in objects):
        ensure_namespace(api, objects[0]["metadata"]["namespace"])
    for obj in objects:
        kind, namespace = obj["kind"], obj["metadata"]["namespace"]
        if kind not in known:
            existing = k8s.call(_read, api, kind, namespace, obj["metadata"]["name"], absent=None)
            if existing is not None and not _owned_by(existing, name, hub_namespace):
                raise ConflictError(
                    f"{kind} {namespace}/{obj['metadata']['name']} exists and is not "
                    f"managed by this ModelDeployment ({hub_namespace}/{name}); rename or "
                    "remove it"
                )
        _apply(api, obj)
        written.append(kind)
    return written


def delete_objects(api: client.ApiClient, namespace: str, name: str, hub_namespace: str) -> int:
    """Delete the member objects if they are ours; returns how many were deleted."""
    deleted = 0
    for kind in ("Deployment", "Service", "PodDisruptionBudget", HPA):
        try:
            existing = k8s.call(_read, api, kind, namespace, name, absent=None)
        except client.ApiException as exc:
            if kind == HPA and exc.status == 403:
                continue  # an identity without HPA rights never created one
            raise
        if existing is None or not _owned_by(existing, name, hub_namespace):
            continue
        if k8s.call(_delete, api, kind, namespace, name, absent=k8s.DONE) is not k8s.DONE:
            deleted += 1  # a 404 here: deleted meanwhile by someone else
    return deleted


def _delete(api: client.ApiClient, kind: str, namespace: str, name: str) -> None:
    if kind == "Deployment":
        client.AppsV1Api(api).delete_namespaced_deployment(
            name, namespace, propagation_policy="Background", _request_timeout=TIMEOUT
        )
    elif kind == "Service":
        client.CoreV1Api(api).delete_namespaced_service(name, namespace, _request_timeout=TIMEOUT)
    elif kind == HPA:
        client.AutoscalingV2Api(api).delete_namespaced_horizontal_pod_autoscaler(
            name, namespace, _request_timeout=TIMEOUT
        )
    else:
        client.PolicyV1Api(api).delete_namespaced_pod_disruption_budget(
            name, namespace, _request_timeout=TIMEOUT
        )


def scale_up_to(api: client.ApiClient, namespace: str, name: str, replicas: int) -> bool:
    """Raise the Deployment's replicas to `replicas` now through its scale subresource (as
    the autoscaler itself writes them); never lowers them. True if it wrote."""
    apps = client.AppsV1Api(api)
    scale = apps.read_namespaced_deployment_scale(name, namespace, _request_timeout=TIMEOUT)
    if (scale.spec.replicas or 0) >= replicas:
        return False
    apps.patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": replicas}}, _request_timeout=TIMEOUT
    )
    return True


def delete_hpa(api: client.ApiClient, namespace: str, name: str, hub_namespace: str) -> None:
    """Delete the ModelDeployment's HPA (spec.autoscaling removed), if it is ours."""
    existing = k8s.call(_read, api, HPA, namespace, name, absent=None)
    if existing is not None and _owned_by(existing, name, hub_namespace):
        k8s.call(_delete, api, HPA, namespace, name, absent=k8s.DONE)
