"""`helm install` of charts/modeldr into the hub, and what its RBAC really allows there.

The operator image cannot run in the sandbox (no images), so the Deployment's pods never turn
Ready; the test does not wait for them. It checks the release is deployed, the objects exist,
and asks the hub's authorizer (SubjectAccessReview) what the operator's ServiceAccount may
do: least privilege is checked against the real RBAC engine, not by reading YAML.

Two releases with the same name in two namespaces prove cluster-scoped names do not collide.
Everything is uninstalled; only the CRD stays (Helm never deletes CRDs, and test_crds.py
manages the same CRD from crds/).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from modeldr.kube.constants import MODELDEPLOYMENTS, crd_name
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from tests.tooling import require_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modeldr"


def helm_binary() -> str:
    return require_tool("helm")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [
        helm_binary(),
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--kube-context",
        "hub",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-modeldr"

    @property
    def cluster_name(self) -> str:
        return f"{self.namespace}-{self.fullname}"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"


def install(release: Release, *sets: str) -> None:
    args = ["install", release.name, str(CHART), "--namespace", release.namespace]
    args += ["--create-namespace", "--timeout", "60s"]  # no --wait: the image cannot run here
    # The tenancy roles and admission policies are cluster-wide and fixed-name: one release
    # per hub holds them (the sandbox's own, `make operator-up`), the others turn them off.
    args += ["--set", "tenancy.roles=false", "--set", "tenancy.admissionPolicies=false"]
    for value in sets:
        args += ["--set", value]
    helm(*args)


def uninstall(release: Release) -> None:
    helm("uninstall", release.name, "--namespace", release.namespace, "--timeout", "60s")


def cleanup(release: Release) -> None:
    """Best effort after a failure: no release, namespace or cluster-scoped object is left."""
    helm("uninstall", release.name, "--namespace", release.namespace, check=False)
    rbac = client.RbacAuthorizationV1Api(kube.api_client("hub"))
    with contextlib.suppress(ApiException):
        rbac.delete_cluster_role_binding(release.cluster_name)
    with contextlib.suppress(ApiException):
        rbac.delete_cluster_role(release.cluster_name)
    with contextlib.suppress(ApiException):
        kube.core("hub").delete_namespace(release.namespace)


def status(release: Release) -> str:
    result = helm("status", release.name, "--namespace", release.namespace, "-o", "json")
    info: Any = json.loads(result.stdout)["info"]
    return str(info["status"])


def allowed(
    release: Release,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
    subresource: str = "",
    name: str = "",
) -> bool:
    """Ask the hub's authorizer whether the release's ServiceAccount may do this."""
    authz = client.AuthorizationV1Api(kube.api_client("hub"))
    attributes: dict[str, str] = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if subresource:
        attributes["subresource"] = subresource
    if name:
        attributes["name"] = name
    review = authz.create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": release.user,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{release.namespace}"],
                "resourceAttributes": attributes,
            },
        }
    )
    return bool(review.status.allowed)


@pytest.fixture
def releases(sandbox: Sandbox) -> Iterator[tuple[Release, Release]]:
    name = f"mdr-{uuid.uuid4().hex[:6]}"
    pair = (Release(name, f"{name}-a"), Release(name, f"{name}-b"))
    yield pair
    for release in pair:
        cleanup(release)


def test_install_two_releases_rbac_and_uninstall(releases: tuple[Release, Release]) -> None:
    a, b = releases
    install(a)
    # Same release name, other namespace, the other knobs: names must not collide.
    install(
        b,
        "rbac.trafficProviders.gatewayAPI=true",
        "rbac.trafficProviders.endpointSlice=false",
        "memberClusters.secretNames={member-primary}",
    )
    assert status(a) == "deployed"
    assert status(b) == "deployed"

    hub = kube.api_client("hub")
    core = client.CoreV1Api(hub)
    rbac = client.RbacAuthorizationV1Api(hub)
    apps = client.AppsV1Api(hub)
    for release in (a, b):
        core.read_namespaced_service_account(release.fullname, release.namespace)
        role = rbac.read_cluster_role(release.cluster_name)
        assert role.metadata.labels["app.kubernetes.io/instance"] == release.name
        rbac.read_cluster_role_binding(release.cluster_name)
        deployment = apps.read_namespaced_deployment(release.fullname, release.namespace)
        container = deployment.spec.template.spec.containers[0]
        assert container.security_context.read_only_root_filesystem is True
        assert deployment.spec.template.spec.service_account_name == release.fullname
    ext = client.ApiextensionsV1Api(hub)
    ext.read_custom_resource_definition(crd_name(MODELDEPLOYMENTS))

    # What release a's operator may do in the hub ...
    md = {"group": "modeldr.io"}
    assert allowed(a, "list", "modeldeployments", **md)
    assert allowed(a, "watch", "modeldeployments", **md)
    assert allowed(a, "patch", "modeldeployments", namespace="team-x", **md)
    assert allowed(a, "patch", "modeldeployments", subresource="status", namespace="x", **md)
    assert allowed(a, "update", "modeldeployments", subresource="finalizers", namespace="x", **md)
    assert allowed(a, "create", "events", namespace="team-x")
    assert allowed(a, "create", "endpointslices", group="discovery.k8s.io", namespace="team-x")
    # The drill probe resolves the hub Service like a client: it lists its slices.
    assert allowed(a, "list", "endpointslices", group="discovery.k8s.io", namespace="team-x")
    assert allowed(a, "patch", "services", namespace="team-x")
    assert allowed(a, "list", "secrets", namespace=a.namespace)
    assert allowed(a, "create", "leases", group="coordination.k8s.io", namespace=a.namespace)
    lease = f"{a.fullname}-leader"
    assert allowed(
        a, "update", "leases", group="coordination.k8s.io", namespace=a.namespace, name=lease
    )
    # ... and may not.
    assert not allowed(a, "create", "modeldeployments", namespace="team-x", **md)
    assert not allowed(a, "delete", "modeldeployments", namespace="team-x", **md)
    assert not allowed(a, "update", "modeldeployments", namespace="team-x", **md)
    assert not allowed(a, "get", "secrets", namespace="default")
    assert not allowed(a, "list", "secrets")
    # The journal key: made once in its own namespace, then read by name only.
    assert allowed(a, "create", "secrets", namespace=a.namespace)
    key = "modeldr-journal-key"
    assert allowed(a, "get", "secrets", namespace=a.namespace, name=key)
    assert not allowed(a, "update", "secrets", namespace=a.namespace, name=key)
    assert not allowed(a, "create", "secrets", namespace="team-x")
    # Tenancy: the admin's policies, read; the freeze label of its own namespace.
    assert allowed(a, "list", "tenantpolicies", **md)
    assert not allowed(a, "create", "tenantpolicies", **md)
    assert allowed(a, "get", "namespaces", name=a.namespace)
    assert not allowed(a, "get", "namespaces", name="default")
    assert not allowed(a, "get", "secrets", namespace=b.namespace)
    assert not allowed(
        a, "update", "leases", group="coordination.k8s.io", namespace=a.namespace, name="other"
    )
    assert not allowed(a, "create", "leases", group="coordination.k8s.io", namespace="default")
    assert not allowed(a, "list", "pods", namespace="team-x")
    assert not allowed(a, "delete", "events", namespace="team-x")
    assert not allowed(a, "patch", "httproutes", group="gateway.networking.k8s.io", namespace="x")
    assert not allowed(a, "create", "customresourcedefinitions", group="apiextensions.k8s.io")

    # Release b: Gateway API instead of EndpointSlices, and Secrets by name only.
    assert allowed(b, "patch", "httproutes", group="gateway.networking.k8s.io", namespace="x")
    assert not allowed(b, "create", "httproutes", group="gateway.networking.k8s.io", namespace="x")
    assert not allowed(b, "create", "endpointslices", group="discovery.k8s.io", namespace="x")
    assert allowed(b, "get", "secrets", namespace=b.namespace, name="member-primary")
    assert not allowed(b, "get", "secrets", namespace=b.namespace, name="member-other")
    assert not allowed(b, "list", "secrets", namespace=b.namespace)

    # Uninstalling one release leaves the other's cluster-scoped objects alone.
    uninstall(a)
    with pytest.raises(ApiException) as gone:
        rbac.read_cluster_role(a.cluster_name)
    assert gone.value.status == 404
    rbac.read_cluster_role(b.cluster_name)
    uninstall(b)
    for release in (a, b):
        for read in (rbac.read_cluster_role, rbac.read_cluster_role_binding):
            with pytest.raises(ApiException) as missing:
                read(release.cluster_name)
            assert missing.value.status == 404
    # The namespaces go in the fixture's cleanup.
