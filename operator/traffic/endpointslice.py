"""The `endpointslice` traffic provider: a global entry point in the hub.

In the ModelDeployment's hub namespace it keeps a selector-less Service (default name: the
ModelDeployment's) and one EndpointSlice of that Service listing the active cluster's ready
pod addresses. Clients that resolve a Service through its EndpointSlices (a mesh, a gateway,
a client library, the sandbox's probes) follow the active cluster with no DNS TTL. Both
objects are owned by the ModelDeployment, so deleting it removes them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.constants import ACTIVE_CLUSTER_ANNOTATION, GROUP, MANAGED_BY, MANAGER, NAME_LABEL
from modeldr.operator.traffic.base import Owner, TrafficError, TrafficTarget

# The EndpointSlice controller of the hub leaves slices managed by another value alone.
SLICE_MANAGER = GROUP
ACTIVE_ANNOTATION = ACTIVE_CLUSTER_ANNOTATION
FIELD_MANAGER = "modeldr"
APPLY = "application/apply-patch+yaml"


def service_name(owner: Owner, spec: ModelDeploymentSpec) -> str:
    return spec.service_name(owner.name)


def slice_name(owner: Owner, spec: ModelDeploymentSpec) -> str:
    return f"{service_name(owner, spec)}-modeldr"


def address_type(addresses: tuple[str, ...]) -> str:
    if addresses and all(ipaddress.ip_address(a).version == 6 for a in addresses):
        return "IPv6"
    return "IPv4"


def render_service(
    owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(owner, spec),
            "namespace": owner.namespace,
            "labels": {MANAGED_BY: MANAGER, NAME_LABEL: owner.name},
            "ownerReferences": [owner.reference()],
        },
        # No selector: the hub's EndpointSlice controller leaves the slices to us.
        "spec": {"ports": [{"name": "http", "port": target.port, "protocol": "TCP"}]},
    }


def render_slice(owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(owner, spec),
            "namespace": owner.namespace,
            "labels": {
                "kubernetes.io/service-name": service_name(owner, spec),
                "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
                MANAGED_BY: MANAGER,
                NAME_LABEL: owner.name,
            },
            "annotations": {ACTIVE_ANNOTATION: target.active_cluster},
            "ownerReferences": [owner.reference()],
        },
        "addressType": address_type(target.addresses),
        "ports": [{"name": "http", "port": target.port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [address],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "zone": target.active_cluster,
            }
            for address in target.addresses
        ],
    }


class EndpointSliceProvider:
    name = "endpointslice"

    def apply(
        self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
    ) -> None:
        core = client.CoreV1Api(hub)
        discovery = client.DiscoveryV1Api(hub)
        svc = render_service(owner, spec, target)
        eps = render_slice(owner, spec, target)
        try:
            core.patch_namespaced_service(
                svc["metadata"]["name"],
                owner.namespace,
                svc,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
                _request_timeout=(2, 5),
            )
            discovery.patch_namespaced_endpoint_slice(
                eps["metadata"]["name"],
                owner.namespace,
                eps,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
                _request_timeout=(2, 5),
            )
        except client.ApiException as exc:
            raise TrafficError(
                f"hub Service/EndpointSlice {owner.namespace}/{svc['metadata']['name']}: "
                f"{exc.status} {exc.reason}"
                + (
                    " (is rbac.trafficProviders.endpointSlice enabled?)"
                    if exc.status == 403
                    else ""
                )
            ) from None

    def cleanup(self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec) -> None:
        # Owned by the ModelDeployment: the hub's garbage collector deletes them with it.
        return None
