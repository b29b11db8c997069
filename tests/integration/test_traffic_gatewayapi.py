"""The gatewayapi traffic provider against the hub's real apiserver and Gateway API CRDs.

The standard-channel CRDs come from `scripts/tools.sh` (MODELDR_GATEWAY_API_CRDS) and are
applied server-side (idempotent). No Gateway controller runs: the test checks what the
provider writes to the HTTPRoute, which is all modeldr owns.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.errors import TrafficConflict
from modeldr.operator.traffic import TrafficError
from modeldr.operator.traffic.base import ClusterTarget, Owner, TrafficTarget
from modeldr.operator.traffic.gatewayapi import (
    GROUP,
    PLURAL,
    VERSION,
    GatewayAPIProvider,
    RouteRef,
)
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from tests.specs import minimal_spec
from tests.tooling import require_tool
from tests.unit.test_chart import find, render

pytestmark = pytest.mark.integration

MD = "bert"
CRD_NAME = f"{PLURAL}.{GROUP}"

Route = dict[str, Any]


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [
        require_tool("kubectl"),
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
        "--request-timeout=20s",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def gateway_api_crds(sandbox: Sandbox) -> None:
    """The Gateway API standard-channel CRDs in the hub (server-side apply: idempotent)."""
    crds = require_tool("gateway-api-crds")
    kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=modeldr-tests", "-f", crds
    )
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
    kube.wait_for(
        lambda: kubectl("get", PLURAL, "-A", check=False).returncode == 0,
        timeout=30,
        what="the httproutes API to be served",
    )


@pytest.fixture
def hub() -> client.ApiClient:
    return kube.api_client("hub")


@pytest.fixture
def routes(hub: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(hub)


def owner(namespace: str) -> Owner:
    return Owner(namespace=namespace, name=MD, uid="00000000-0000-0000-0000-000000000001")


def make_spec(
    route_name: str = MD, route_namespace: str | None = None, **settings: str
) -> ModelDeploymentSpec:
    http_route = {"name": route_name}
    if route_namespace:
        http_route["namespace"] = route_namespace
    gateway_api = {"httpRoute": http_route, **settings}
    return minimal_spec(MD, traffic={"provider": "gatewayapi", "gatewayAPI": gateway_api})


def target(active: str) -> TrafficTarget:
    return TrafficTarget(
        active_cluster=active,
        primary_cluster="primary",
        standby_cluster="standby",
        addresses=("127.2.0.5",),
        port=8080,
        reason="test",
    )


def create_route(
    routes: client.CustomObjectsApi, namespace: str, backends: dict[str, int], name: str = MD
) -> Route:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                    "backendRefs": [
                        {"name": backend, "port": 8080, "weight": weight}
                        for backend, weight in backends.items()
                    ],
                }
            ],
        },
    }
    created: Route = routes.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return created


def read_route(routes: client.CustomObjectsApi, namespace: str, name: str = MD) -> Route:
    route: Route = routes.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return route


def weights(route: Route) -> dict[str, int]:
    return {
        ref["name"]: ref.get("weight", 1)
        for rule in route["spec"]["rules"]
        for ref in rule["backendRefs"]
    }


@pytest.mark.usefixtures("gateway_api_crds")
def test_switch_writes_weights_once_and_fails_back(
    hub: client.ApiClient, routes: client.CustomObjectsApi, hub_namespace: str
) -> None:
    created = create_route(
        routes, hub_namespace, {f"{MD}-primary": 100, f"{MD}-standby": 0, "other": 7}
    )
    provider = GatewayAPIProvider()
    md, spec = owner(hub_namespace), make_spec()

    provider.apply(hub, md, spec, target("standby"))
    switched = read_route(routes, hub_namespace)
    assert weights(switched) == {f"{MD}-primary": 0, f"{MD}-standby": 100, "other": 7}
    # Nothing but the weights changed.
    expected = copy.deepcopy(created["spec"])
    expected["rules"][0]["backendRefs"][0]["weight"] = 0
    expected["rules"][0]["backendRefs"][1]["weight"] = 100
    assert switched["spec"] == expected

    provider.apply(hub, md, spec, target("standby"))
    again = read_route(routes, hub_namespace)
    assert again["metadata"]["resourceVersion"] == switched["metadata"]["resourceVersion"], (
        "an apply with the weights already in place must not write"
    )

    provider.apply(hub, md, spec, target("primary"))
    assert weights(read_route(routes, hub_namespace))[f"{MD}-primary"] == 100

    provider.cleanup(hub, md, spec)
    assert weights(read_route(routes, hub_namespace))[f"{MD}-primary"] == 100, "route left alone"


@pytest.mark.usefixtures("gateway_api_crds")
def test_active_active_writes_each_clusters_weight(
    hub: client.ApiClient, routes: client.CustomObjectsApi, hub_namespace: str
) -> None:
    """traffic.mode activeActive: the route carries both clusters' weights, and a withdrawn
    cluster's 0 (the operator's weighing), other backends untouched."""
    create_route(routes, hub_namespace, {f"{MD}-primary": 100, f"{MD}-standby": 0, "other": 7})
    provider, md, spec = GatewayAPIProvider(), owner(hub_namespace), make_spec()

    def both(primary: int, standby: int) -> TrafficTarget:
        return replace(
            target("primary"),
            mode="activeActive",
            clusters=(
                ClusterTarget("primary", "primary", ("127.1.0.5",), primary),
                ClusterTarget("standby", "standby", ("127.2.0.5",), standby),
            ),
        )

    provider.apply(hub, md, spec, both(70, 30))
    assert weights(read_route(routes, hub_namespace)) == {
        f"{MD}-primary": 70,
        f"{MD}-standby": 30,
        "other": 7,
    }
    provider.apply(hub, md, spec, both(0, 30))
    assert weights(read_route(routes, hub_namespace))[f"{MD}-primary"] == 0


@pytest.mark.usefixtures("gateway_api_crds")
def test_explicit_backends_and_route_namespace(
    hub: client.ApiClient, routes: client.CustomObjectsApi, hub_namespace: str
) -> None:
    create_route(routes, hub_namespace, {"east": 0, "west": 100}, name="edge-route")
    spec = make_spec("edge-route", hub_namespace, primaryBackend="east", standbyBackend="west")
    GatewayAPIProvider().apply(hub, owner(hub_namespace), spec, target("primary"))
    assert weights(read_route(routes, hub_namespace, "edge-route")) == {"east": 100, "west": 0}
    # TENANCY.md: a route in another namespace is another team's: never patched.
    other_namespace_owner = Owner(namespace="default", name=MD, uid="u")
    with pytest.raises(TrafficConflict, match=f"HTTPRoute {hub_namespace}/edge-route is in"):
        GatewayAPIProvider().apply(hub, other_namespace_owner, spec, target("standby"))
    assert weights(read_route(routes, hub_namespace, "edge-route")) == {"east": 100, "west": 0}


class _RacingProvider(GatewayAPIProvider):
    """Another writer edits the route right after the provider's first read."""

    def __init__(self, routes: client.CustomObjectsApi) -> None:
        super().__init__()
        self.routes = routes
        self.reads = 0

    def _get(self, api: client.CustomObjectsApi, ref: RouteRef) -> Route:
        route = super()._get(api, ref)
        self.reads += 1
        if self.reads == 1:
            self.routes.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                {"metadata": {"annotations": {"edited-by": "someone-else"}}},
            )
        return route


@pytest.mark.usefixtures("gateway_api_crds")
def test_concurrent_edit_is_kept_and_the_switch_retried(
    hub: client.ApiClient, routes: client.CustomObjectsApi, hub_namespace: str
) -> None:
    create_route(routes, hub_namespace, {f"{MD}-primary": 100, f"{MD}-standby": 0})
    provider = _RacingProvider(routes)
    provider.apply(hub, owner(hub_namespace), make_spec(), target("standby"))
    # Read, stale patch refused (409), read again, patch, read back.
    assert provider.reads == 3
    route = read_route(routes, hub_namespace)
    assert weights(route) == {f"{MD}-primary": 0, f"{MD}-standby": 100}
    assert route["metadata"]["annotations"]["edited-by"] == "someone-else"


@pytest.mark.usefixtures("gateway_api_crds")
def test_missing_backend_is_named_and_nothing_is_written(
    hub: client.ApiClient, routes: client.CustomObjectsApi, hub_namespace: str
) -> None:
    created = create_route(routes, hub_namespace, {f"{MD}-primary": 100, "somebody-else": 0})
    with pytest.raises(TrafficError) as info:
        GatewayAPIProvider().apply(hub, owner(hub_namespace), make_spec(), target("standby"))
    assert f"HTTPRoute {hub_namespace}/{MD} has no backendRef named '{MD}-standby'" in str(
        info.value
    )
    after = read_route(routes, hub_namespace)
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


@pytest.mark.usefixtures("gateway_api_crds")
def test_missing_route_says_how_to_fix(hub: client.ApiClient, hub_namespace: str) -> None:
    with pytest.raises(TrafficError) as info:
        GatewayAPIProvider().apply(
            hub, owner(hub_namespace), make_spec("no-such-route"), target("standby")
        )
    message = str(info.value)
    assert f"HTTPRoute {hub_namespace}/no-such-route not found in the hub" in message
    assert f"'{MD}-primary' and '{MD}-standby'" in message


def _impersonating(service_account: str, namespace: str) -> client.ApiClient:
    api = kube.api_client("hub")
    api.set_default_header(
        "Impersonate-User", f"system:serviceaccount:{namespace}:{service_account}"
    )
    return api


@pytest.mark.usefixtures("gateway_api_crds")
def test_chart_rbac_is_enough_and_a_missing_verb_is_reported(
    routes: client.CustomObjectsApi, hub_namespace: str
) -> None:
    """The chart's httproutes rule (rbac.trafficProviders.gatewayAPI=true), as the operator."""
    cluster_role = find(render("rbac.trafficProviders.gatewayAPI=true"), "ClusterRole")
    rule = next(r for r in cluster_role["rules"] if PLURAL in r["resources"])
    rbac = client.RbacAuthorizationV1Api(kube.api_client("hub"))
    core = kube.core("hub")

    def grant(account: str, rules: list[dict[str, Any]]) -> Callable[[], client.ApiClient]:
        core.create_namespaced_service_account(hub_namespace, {"metadata": {"name": account}})
        rbac.create_namespaced_role(hub_namespace, {"metadata": {"name": account}, "rules": rules})
        rbac.create_namespaced_role_binding(
            hub_namespace,
            {
                "metadata": {"name": account},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": account,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": account, "namespace": hub_namespace}
                ],
            },
        )
        return lambda: _impersonating(account, hub_namespace)

    create_route(routes, hub_namespace, {f"{MD}-primary": 100, f"{MD}-standby": 0})
    as_operator = grant("operator", [rule])

    def switch() -> bool:
        GatewayAPIProvider().apply(
            as_operator(), owner(hub_namespace), make_spec(), target("standby")
        )
        return True

    # The authorizer sees a new RoleBinding within a moment; a 403 before that is retried.
    kube.wait_for(switch, timeout=15, what="the switch as the operator's ServiceAccount")
    assert weights(read_route(routes, hub_namespace))[f"{MD}-standby"] == 100

    read_only = grant("read-only", [{**rule, "verbs": ["get", "list", "watch"]}])
    with pytest.raises(
        TrafficError, match=r"may not patch httproutes.*rbac\.trafficProviders\.gatewayAPI=true"
    ):
        GatewayAPIProvider().apply(
            read_only(), owner(hub_namespace), make_spec(), target("primary")
        )
    assert weights(read_route(routes, hub_namespace))[f"{MD}-standby"] == 100
