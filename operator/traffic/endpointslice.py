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
from modeldr.kube import k8s
from modeldr.kube.constants import ACTIVE_CLUSTER_ANNOTATION, GROUP, MANAGED_BY, MANAGER, NAME_LABEL
from modeldr.kube.errors import TrafficConflict
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


def owned_by(obj: Any, owner: Owner) -> bool:
    return any(ref.uid == owner.uid for ref in obj.metadata.owner_references or [])


class EndpointSliceProvider:
    name = "endpointslice"

    def __init__(self) -> None:
        # (namespace, Service name, owner uid) whose two objects are known to be the owner's:
        # read once (or created), then applied without reads.
        self._owned: set[tuple[str, str, str]] = set()

    def apply(
        self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
    ) -> None:
        core = client.CoreV1Api(hub)
        discovery = client.DiscoveryV1Api(hub)
        svc = render_service(owner, spec, target)
        eps = render_slice(owner, spec, target)
        key = (owner.namespace, svc["metadata"]["name"], owner.uid)
        try:
            if key not in self._owned:
                claim(core.read_namespaced_service, core.create_namespaced_service, svc, owner)
                claim(
                    discovery.read_namespaced_endpoint_slice,
                    discovery.create_namespaced_endpoint_slice,
                    eps,
                    owner,
                )
                self._owned.add(key)
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
        except TrafficConflict:
            raise
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
        self._owned = {key for key in self._owned if key[2] != owner.uid}


def claim(read: Any, create: Any, obj: dict[str, Any], owner: Owner) -> None:
    """Create the object, or find it the owner's already; TrafficConflict for one of that
    name that is not (a person's Service, another ModelDeployment's): never adopted."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    for _ in range(2):  # created by someone else between the read and the create: read again
        found = k8s.call(read, name, owner.namespace, _request_timeout=(2, 5), absent=None)
        if found is not None:
            if owned_by(found, owner):
                return
            raise TrafficConflict(
                f"{kind} {owner.namespace}/{name} exists and is not this ModelDeployment's: "
                "modeldr never adopts an object; remove it, or name another one with "
                "spec.traffic.endpointSlice.serviceName"
            )
        if (
            k8s.call(create, owner.namespace, obj, _request_timeout=(2, 5), conflict=None)
            is not None
        ):
            return
    raise TrafficError(f"{kind} {owner.namespace}/{name}: created and gone again meanwhile")
