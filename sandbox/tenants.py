"""TenantPolicies for the sandbox's own namespaces (TENANCY.md: a hub namespace no policy
covers may do nothing): the tests' namespaces and the benchmarks'. The example namespace's
policy is examples/sandbox/tenantpolicy.yaml, which `make operator-up` applies."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from kubernetes import client

from modeldr.api.drillplan import FAULT_TYPES
from modeldr.api.tenancy import ADMISSION_CONFIGMAP, NamedPolicy, admission_grants
from modeldr.api.tenantpolicy import PLURAL as POLICIES
from modeldr.api.tenantpolicy import TenantPolicySpec
from modeldr.kube.constants import GROUP, ROLES, VERSION
from sandbox import kube

# The chart's admission policy binding (charts/modeldr/templates/tenancy.yaml), and the
# namespace of the sandbox's release, where the operator compiles the grants it reads.
BINDING = "modeldr-tenant-placement"
NAMESPACE = "modeldr-system"


def _custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub"))


def policy_body(
    hub_ns: str,
    *,
    member_namespaces: tuple[str, ...] = (),
    clusters: tuple[str, ...] = ROLES,
    drills: dict[str, Any] | None = None,
    model_sources: tuple[str, ...] = ("file:///tmp/modeldr/models/", "s3://models/"),
    images: tuple[str, ...] = ("modeldr/serving:",),
    backups: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The TenantPolicy a test namespace needs (TENANCY.md: no policy, nothing allowed): its
    ModelDeployment in the sandbox's members, in the member namespace of the same name (and
    `member_namespaces`), the sandbox's model and image, every fault type."""
    namespaces = [hub_ns, *member_namespaces]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TenantPolicy",
        "metadata": {"name": hub_ns, "labels": {"modeldr.io/test": "true"}},
        "spec": {
            "namespaces": [hub_ns],
            "placements": [{"cluster": c, "namespaces": namespaces} for c in clusters],
            "modelSources": list(model_sources),
            "images": list(images),
            "drills": drills if drills is not None else {"faults": list(FAULT_TYPES)},
            "backups": backups or {},
        },
    }


def put_policy(body: dict[str, Any], *, admitted: bool = True) -> None:
    """Create the TenantPolicy, or replace the one of that name; with `admitted`, wait until
    the admission policy reads its grants (the operator must be running)."""
    name = body["metadata"]["name"]
    try:
        current = _custom().get_cluster_custom_object(GROUP, VERSION, POLICIES, name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        _custom().create_cluster_custom_object(GROUP, VERSION, POLICIES, body)
        if admitted:
            wait_admitted(body)
        return
    body = {
        **body,
        "metadata": {
            **body["metadata"],
            **{"resourceVersion": current["metadata"]["resourceVersion"]},
        },
    }
    _custom().replace_cluster_custom_object(GROUP, VERSION, POLICIES, name, body)
    if admitted:
        wait_admitted(body)


def wait_admitted(body: dict[str, Any], timeout: float = 15.0) -> None:
    """Until the admission policy reads this TenantPolicy's grants (the operator's leader
    compiles them within a second; operator/admission.py). Returns at once where the chart's
    admission policy is not installed."""
    admission = client.AdmissionregistrationV1Api(kube.api_client("hub"))
    try:
        admission.read_validating_admission_policy_binding(BINDING)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    name = body["metadata"]["name"]
    wanted = admission_grants([NamedPolicy(name, TenantPolicySpec.parse(body["spec"]))])
    core = kube.core("hub")
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            seen = dict(core.read_namespaced_config_map(ADMISSION_CONFIGMAP, NAMESPACE).data or {})
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        if all(seen.get(ns) == grants for ns, grants in wanted.items()):
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"the operator did not compile TenantPolicy {name} for admission within {timeout:.0f} s "
        f"(ConfigMap {NAMESPACE}/{ADMISSION_CONFIGMAP}); is the operator running?"
    )


def delete_policy(name: str) -> None:
    with contextlib.suppress(client.ApiException):
        _custom().delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)
