"""What scripts/kind-demo.sh (make kind-demo, the kind-drill workflow) applies to the hub,
validated by the sandbox hub's real apiserver with a server-side dry-run (nothing stored):
the example ModelDeployment, DrillPlan and golden set of examples/kind, the chart rendered
with the script's own --set values, and the member Secret as the script builds it. kind
itself cannot run here (no Docker engine); tests/unit/test_kind.py checks the rest."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modeldr.api.tenantpolicy import CLUSTER_FAULTS_LABEL
from modeldr.kube.constants import DRILLPLANS, DRILLRUNS, MEMBER_CLUSTER_LABEL, crd_name
from modeldr.kube.members import KUBECONFIG_KEY
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from sandbox.operator_up import member_kubeconfig
from sandbox.tenants import delete_policy, put_policy
from tests.integration.test_crds import apply_crds, kubectl
from tests.tooling import require_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts/kind-demo.sh"
POLICY = ROOT / "examples/kind/tenantpolicy.yaml"
APPLIED = [
    POLICY,
    ROOT / "examples/sandbox/golden-set.yaml",
    ROOT / "examples/kind/modeldeployment.yaml",
    ROOT / "examples/kind/drillplan.yaml",
    ROOT / "examples/kind/drillplan-outage.yaml",
    ROOT / "examples/kind/drillplan-partition.yaml",
    ROOT / "examples/kind/drillplan-node-failure.yaml",
]


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    apply_crds()
    for plural in (DRILLPLANS, DRILLRUNS):
        kubectl("wait", "--for=condition=Established", f"crd/{crd_name(plural)}", "--timeout=30s")


def dry_run(namespace: str, manifest: str) -> subprocess.CompletedProcess[str]:
    return kubectl(
        "apply",
        "--server-side",
        "--field-manager=kind-demo",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=manifest,
        check=False,
    )


@pytest.fixture
def kind_tenant(operator: None, hub_namespace: str) -> Iterator[str]:
    """The test's namespace under the kind example's TenantPolicy (its namespaces swapped
    for this one): the chart's admission policy judges the kind ModelDeployment by it."""
    body = yaml.safe_load(POLICY.read_text())
    body["metadata"]["name"] = hub_namespace
    body["spec"]["namespaces"] = [hub_namespace]
    for placement in body["spec"]["placements"]:
        placement["namespaces"] = [hub_namespace]
    put_policy(body)
    yield hub_namespace
    delete_policy(hub_namespace)


@pytest.mark.parametrize("path", APPLIED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_kind_applies_are_accepted(crds: None, kind_tenant: str, path: Path) -> None:
    assert path.name in DEMO.read_text() or path.parent.name in DEMO.read_text()
    manifest = path.read_text()
    if path.name == "modeldeployment.yaml":  # placed where the test's namespace may place
        manifest = manifest.replace("namespace: modeldr-demo", f"namespace: {kind_tenant}")
    if path == POLICY:  # the sandbox's own example policy holds that name
        manifest = manifest.replace("\n  name: modeldr-demo\n", f"\n  name: {kind_tenant}-dry\n")
    result = dry_run(kind_tenant, manifest)
    assert result.returncode == 0, result.stderr
    assert "serverside-applied (server dry run)" in result.stdout


def test_the_chart_as_kind_demo_installs_it_is_accepted(crds: None, hub_namespace: str) -> None:
    helm_line = next(
        line
        for line in DEMO.read_text().replace("\\\n", " ").splitlines()
        if "upgrade --install modeldr charts/modeldr" in line
    )
    sets = re.findall(r"--set (\S+)", helm_line)
    assert {"replicaCount=1", "image.tag=dev", "image.pullPolicy=Never"} <= set(sets)
    args = ["template", "modeldr", str(ROOT / "charts/modeldr"), "-n", hub_namespace]
    for value in sets:
        args += ["--set", value]
    rendered = subprocess.run(
        [require_tool("helm"), *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    # The tenancy roles and admission policies are cluster-wide and fixed-name: the sandbox's
    # own release holds them (installed for real by `make operator-up`, exercised by
    # test_tenancy.py); a second copy here would only conflict with it.
    docs = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "tenancy"
    ]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/modeldr/modeldr:dev"
    result = dry_run(hub_namespace, "---\n".join(yaml.safe_dump(d) for d in docs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("serverside-applied (server dry run)") == len(docs), result.stdout


def test_the_member_secret_as_kind_demo_builds_it_is_accepted(
    sandbox: Sandbox, hub_namespace: str, tmp_path: Path
) -> None:
    """The script's pipeline, with the sandbox's member identity kubeconfig standing in for
    the one `modeldr member-kubeconfig` prints on kind: what the operator's member registry
    selects (label, key)."""
    script = DEMO.read_text()
    assert f"{MEMBER_CLUSTER_LABEL}=$member" in script
    assert f"{CLUSTER_FAULTS_LABEL}=true" in script  # the member's consent to ClusterOutage
    assert f"--from-file={KUBECONFIG_KEY}=" in script
    assert 'modeldr member-kubeconfig --context "$member"' in script  # never an admin's
    member = tmp_path / "primary.internal.kubeconfig"
    member.write_text(member_kubeconfig("primary"))
    base = [
        require_tool("kubectl"),
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
    ]
    secret = subprocess.run(
        [
            *base,
            "-n",
            hub_namespace,
            "create",
            "secret",
            "generic",
            "modeldr-member-primary",
            f"--from-file={KUBECONFIG_KEY}={member}",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    labelled = subprocess.run(
        [
            *base,
            "label",
            "--local",
            "-f",
            "-",
            f"{MEMBER_CLUSTER_LABEL}=primary",
            f"{CLUSTER_FAULTS_LABEL}=true",
            "-o",
            "yaml",
        ],
        input=secret,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    doc = yaml.safe_load(labelled)
    assert doc["metadata"]["labels"] == {
        MEMBER_CLUSTER_LABEL: "primary",
        CLUSTER_FAULTS_LABEL: "true",
    }
    assert set(doc["data"]) == {KUBECONFIG_KEY}
    result = dry_run(hub_namespace, labelled)
    assert result.returncode == 0, result.stderr
    assert kube.core("hub").list_namespaced_secret(hub_namespace).items == []  # nothing stored
