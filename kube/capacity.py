"""A member cluster's GPU capacity: allocatable GPUs on Ready, schedulable nodes, per product,
and what live pods request of them. The operator's monitors poll it; the drill preflight reads
it live before it takes a cluster away."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from modeldr.kube.constants import GPU_PRODUCT_LABEL, GPU_RESOURCE
from modeldr.kube.members import CONNECT_TIMEOUT_S, READ_TIMEOUT_S


@dataclass(frozen=True)
class GpuCapacity:
    """Per GPU product: allocatable on Ready, schedulable nodes, and requested by live pods."""

    allocatable: dict[str, int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)

    def free(self, product: str | None) -> int:
        products = [product] if product else list(self.allocatable)
        return sum(max(0, self.allocatable.get(p, 0) - self.requested.get(p, 0)) for p in products)


def list_items(api: client.ApiClient, path: str, query: dict[str, str]) -> list[dict[str, Any]]:
    # Raw JSON, not the generated models: faster, and camelCase like the rendered objects.
    method, url, headers, body, post = api.param_serialize(
        "GET",
        path,
        query_params=list(query.items()),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(
        method,
        url,
        header_params=headers,
        body=body,
        post_params=post,
        _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    )
    response.read()
    if not 200 <= response.status < 300:
        raise client.ApiException(status=response.status, reason=response.reason)
    return list(json.loads(response.data).get("items") or [])


def gpu_node_names(nodes: list[dict[str, Any]]) -> list[str]:
    return [
        node["metadata"]["name"]
        for node in nodes
        if int((node.get("status", {}).get("allocatable") or {}).get(GPU_RESOURCE, 0) or 0)
    ]


def read_gpu_capacity(api: client.ApiClient) -> tuple[GpuCapacity, list[dict[str, Any]]]:
    """Blocking: a member's GPU capacity now, and its nodes. Raises what the calls raise."""
    nodes = list_items(api, "/api/v1/nodes", {})
    # Only the pods of GPU nodes: a CPU node's pods request no GPUs, and a cluster-wide pod
    # list is the largest answer an apiserver gives.
    pods = [
        pod
        for node in gpu_node_names(nodes)
        for pod in list_items(
            api,
            "/api/v1/pods",
            {"fieldSelector": f"spec.nodeName={node},status.phase!=Succeeded,status.phase!=Failed"},
        )
    ]
    return gpu_capacity(nodes, pods), nodes


def gpu_capacity(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> GpuCapacity:
    product_of: dict[str, str] = {}
    allocatable: dict[str, int] = defaultdict(int)
    for node in nodes:
        labels = node["metadata"].get("labels") or {}
        product = labels.get(GPU_PRODUCT_LABEL, "unknown")
        gpus = int((node.get("status", {}).get("allocatable") or {}).get(GPU_RESOURCE, 0) or 0)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions") or []
        )
        if gpus and ready and not node.get("spec", {}).get("unschedulable"):
            product_of[node["metadata"]["name"]] = product
            allocatable[product] += gpus
    requested: dict[str, int] = defaultdict(int)
    for pod in pods:
        node_name = pod.get("spec", {}).get("nodeName")
        if node_name not in product_of:
            continue
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for container in pod["spec"].get("containers") or []:
            limits = (container.get("resources") or {}).get("limits") or {}
            requested[product_of[node_name]] += int(limits.get(GPU_RESOURCE, 0) or 0)
    return GpuCapacity(dict(allocatable), dict(requested))
