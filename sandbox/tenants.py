"""TenantPolicies for the sandbox's own namespaces (TENANCY.md: a hub namespace no policy
covers may do nothing): the tests' namespaces and the benchmarks'. The example namespace's
policy is examples/sandbox/tenantpolicy.yaml, which `make operator-up` applies."""

from __future__ import annotations

import contextlib
from typing import Any

from kubernetes import client

from modeldr.api.drillplan import FAULT_TYPES
from modeldr.api.tenantpolicy import PLURAL as POLICIES
from modeldr.kube.constants import GROUP, ROLES, VERSION
from sandbox import kube


def _custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub"))


def policy_body(
    hub_ns: str,
    *,
    member_namespaces: tuple[str, ...] = (),
    clusters: tuple[str, ...] = ROLES,
    drills: dict[str, Any] | None = None,
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
            "modelSources": ["file:///tmp/modeldr/models/"],
            "images": ["modeldr/serving:"],
            "drills": drills if drills is not None else {"faults": list(FAULT_TYPES)},
        },
    }


def put_policy(body: dict[str, Any]) -> None:
    """Create the TenantPolicy, or replace the one of that name."""
    name = body["metadata"]["name"]
    try:
        current = _custom().get_cluster_custom_object(GROUP, VERSION, POLICIES, name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        _custom().create_cluster_custom_object(GROUP, VERSION, POLICIES, body)
        return
    body = {
        **body,
        "metadata": {
            **body["metadata"],
            **{"resourceVersion": current["metadata"]["resourceVersion"]},
        },
    }
    _custom().replace_cluster_custom_object(GROUP, VERSION, POLICIES, name, body)


def delete_policy(name: str) -> None:
    with contextlib.suppress(client.ApiException):
        _custom().delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)
