"""The Helm chart, rendered by the real helm binary (no cluster needed).

helm comes from `scripts/tools.sh` (MODELDR_HELM, installed by `make tools`). If it is missing
these tests fail and say how to get it: they never skip.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldr.kube.constants import (
    DRILLPLAN_KIND,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    MODELDEPLOYMENTS,
    VERSION,
    crd_name,
)
from tests.tooling import require_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modeldr"
CRDS = ROOT / "crds"
RELEASE = "rel"
NAMESPACE = "modeldr-system"
FULLNAME = "rel-modeldr"

Manifest = dict[str, Any]


def helm_binary() -> str:
    return require_tool("helm")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def render(*sets: str, include_crds: bool = False) -> list[Manifest]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if include_crds:
        args.append("--include-crds")
    for value in sets:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def tenancy(doc: Manifest) -> bool:
    """One of the tenancy templates (the tenants' roles, the admission policies)."""
    return bool(doc["metadata"]["labels"].get("app.kubernetes.io/component") == "tenancy")


def find(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of `kind` (and `name`); without a name, the operator's own (not the
    tenancy templates', tested on their own)."""
    matches = [
        d
        for d in docs
        if d["kind"] == kind
        and (d["metadata"]["name"] == name if name is not None else not tenancy(d))
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def rules_of(role: Manifest) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """(apiGroup, resource, verbs, resourceNames) for every group x resource of every rule."""
    out = []
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.append(
                    (
                        group,
                        resource,
                        tuple(sorted(rule["verbs"])),
                        tuple(sorted(rule.get("resourceNames", []))),
                    )
                )
    return sorted(out)


# ---------------------------------------------------------------------------------- lint


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_is_clean(strict: bool) -> None:
    args = ["lint", str(CHART)] + (["--strict"] if strict else [])
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_helm_lint_strict_with_monitoring_enabled() -> None:
    result = helm(
        "lint",
        str(CHART),
        "--strict",
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "rbac.trafficProviders.gatewayAPI=true",
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------ rendering


def test_defaults_render_the_operator_without_monitoring() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            *["Role", "RoleBinding"] * 3,  # leader election, member Secrets, journal key
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            # Tenancy: modeldr-view/-edit/-admin and two admission policies with bindings.
            *["ClusterRole"] * 3,
            *["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 2,
        ]
    )
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding") and not tenancy(doc):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_tenant_roles_grant_no_status_and_only_admin_writes_policies() -> None:
    docs = render()
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole" and tenancy(d)}
    assert sorted(roles) == ["modeldr-admin", "modeldr-edit", "modeldr-view"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    for name, into in (("view", "view"), ("edit", "edit"), ("admin", "admin")):
        assert roles[f"modeldr-{name}"]["metadata"]["labels"][f"{aggregate}{into}"] == "true"
    for role in roles.values():
        for _, resource, _, _ in rules_of(role):
            assert not resource.endswith("/status"), (role["metadata"]["name"], resource)
    writes = {"create", "update", "patch", "delete"}
    view = rules_of(roles["modeldr-view"])
    assert all(not set(verbs) & writes for _, _, verbs, _ in view)
    policies = {
        name: [verbs for _, resource, verbs, _ in rules_of(role) if resource == "tenantpolicies"]
        for name, role in roles.items()
    }
    assert policies["modeldr-view"] == policies["modeldr-edit"] == []
    assert writes <= set(policies["modeldr-admin"][0])
    edit = {
        resource for _, resource, verbs, _ in rules_of(roles["modeldr-edit"]) if "create" in verbs
    }
    assert edit == {"modeldeployments", "drillplans", "drillruns", "modelbackups", "configmaps"}


def test_admission_policies_exempt_only_the_operators_own_account() -> None:
    docs = render()
    policies = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    assert sorted(p["metadata"]["name"] for p in policies) == [
        "modeldr-drill-requester",
        "modeldr-tenant-placement",
    ]
    operator = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
    for policy in policies:
        assert policy["spec"]["failurePolicy"] == "Fail"
        conditions = {c["name"]: c["expression"] for c in policy["spec"]["matchConditions"]}
        assert conditions["not-the-operator"] == f'request.userInfo.username != "{operator}"'
    binding = find(docs, "ValidatingAdmissionPolicyBinding", "modeldr-tenant-placement")
    assert binding["spec"]["paramRef"] == {
        "name": "modeldr-tenancy",
        "namespace": NAMESPACE,
        "parameterNotFoundAction": "Deny",
    }
    off = render("tenancy.roles=false", "tenancy.admissionPolicies=false")
    assert not [d for d in off if tenancy(d)]


def test_servicemonitor_and_prometheusrule_render_when_enabled() -> None:
    docs = render(
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "serviceMonitor.labels.release=kube-prometheus",
    )
    monitor = find(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = find(docs, "Service", f"{FULLNAME}-metrics")
    # The ServiceMonitor selects the metrics Service, which selects the operator pods.
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["name"] == "metrics"

    rule = find(docs, "PrometheusRule")
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(alerts) == {
        "ModelDROperatorDown",
        "ModelDRFailover",
        "ModelDRModelNotVerified",
        "ModelDRNotServing",
        "ModelDRStandbyNotReady",
        "ModelDRStandbyCouldNotAbsorbFailover",
        "ModelDRDrillFoundStandbyCapacityInsufficient",
        "ModelDRScheduledDrillFailed",
        "ModelDRScheduledDrillMissed",
        "ModelDRBackupFailed",
        "ModelDRBackupTooOld",
        "ModelDRStandbyCopyStale",
    }
    assert f'job="{FULLNAME}-metrics"' in alerts["ModelDROperatorDown"]["expr"]
    # Prometheus templating survives Helm's: $labels stays for Prometheus to expand.
    assert "{{ $labels.to_cluster }}" in alerts["ModelDRFailover"]["annotations"]["summary"]
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_servicemonitor_needs_metrics() -> None:
    result = helm(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "metrics.enabled=false",
        check=False,
    )
    assert result.returncode != 0
    assert "serviceMonitor.enabled needs metrics.enabled=true" in result.stderr


def test_deployment_is_hardened_and_probed() -> None:
    deployment = find(render(), "Deployment", FULLNAME)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["command"] == ["modeldr", "operator"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == 8080
    for probe in ("livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/healthz"
        assert ports[http["port"]] == 8080
    # A read-only root needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELDR_MEMBER_SECRETS_NAMESPACE"] == NAMESPACE
    assert env["MODELDR_LEADER_ELECTION_LEASE"] == f"{FULLNAME}-leader"
    assert env["MODELDR_TRAFFIC_PROVIDERS"] == "endpointslice,webhook"


def operator_env(*sets: str) -> dict[str, str | None]:
    deployment = find(render(*sets), "Deployment", FULLNAME)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_unsafe_member_credentials_stay_refused_unless_the_admin_allows_them() -> None:
    assert "MODELDR_MEMBER_ALLOW_UNSAFE_CREDENTIALS" not in operator_env()
    allowed = operator_env("memberClusters.allowUnsafeCredentials=true")
    assert allowed["MODELDR_MEMBER_ALLOW_UNSAFE_CREDENTIALS"] == "true"


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "a" * 64
    deployment = find(render(f"image.digest={digest}", "image.tag=9.9.9"), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"ghcr.io/modeldr/modeldr@{digest}"
    )


# ----------------------------------------------------------------------------------- RBAC

# The whole hub ClusterRole with default values: any new permission must be added here on
# purpose (and argued in templates/clusterrole.yaml).
DEFAULT_CLUSTER_RULES = sorted(
    [
        ("modeldr.io", "modeldeployments", ("get", "list", "patch", "watch"), ()),
        ("modeldr.io", "modeldeployments/status", ("patch",), ()),
        ("modeldr.io", "modeldeployments/finalizers", ("update",), ()),
        # ModelBackups: watched and patched (kopf); their status through the subresource.
        ("modeldr.io", "modelbackups", ("get", "list", "patch", "watch"), ()),
        ("modeldr.io", "modelbackups/status", ("patch",), ()),
        # Drills: plans are watched and patched (kopf), runs created, watched, patched and
        # deleted beyond historyLimit; both statuses through the subresource only.
        ("modeldr.io", "drillplans", ("get", "list", "patch", "watch"), ()),
        ("modeldr.io", "drillplans/status", ("patch",), ()),
        ("modeldr.io", "drillplans/finalizers", ("update",), ()),
        (
            "modeldr.io",
            "drillruns",
            ("create", "delete", "get", "list", "patch", "watch"),
            (),
        ),
        ("modeldr.io", "drillruns/status", ("patch",), ()),
        ("modeldr.io", "drillruns/finalizers", ("update",), ()),
        # Golden sets of model checks, by name only: never list/watch (every ConfigMap).
        ("", "configmaps", ("get",), ()),
        # Run reports (<run>-report, owned by the DrillRun): written when a run ends.
        ("", "configmaps", ("create", "patch"), ()),
        ("", "events", ("create",), ()),
        # Tenancy: the admin's policies, read; the freeze label of its own namespace only.
        ("modeldr.io", "tenantpolicies", ("get", "list"), ()),
        ("", "namespaces", ("get",), (NAMESPACE,)),
        # Server-side apply only: a PATCH, authorized as a create when the object is new.
        ("", "services", ("create", "get", "patch"), ()),
        # list: the drill probe resolves the hub Service like a client.
        ("discovery.k8s.io", "endpointslices", ("create", "get", "list", "patch"), ()),
    ]
)


def test_cluster_role_is_exactly_the_least_privilege_set() -> None:
    docs = render()
    cluster_role = find(docs, "ClusterRole")
    assert rules_of(cluster_role) == DEFAULT_CLUSTER_RULES
    for rule in cluster_role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    binding = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]


def test_cluster_scoped_names_include_namespace_and_release() -> None:
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert find(render(), kind)["metadata"]["name"] == f"{NAMESPACE}-{FULLNAME}"


def test_the_journal_key_is_the_only_secret_the_operator_may_make() -> None:
    role = find(render(), "Role", f"{FULLNAME}-journal-key")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(role) == [
        ("", "secrets", ("create",), ()),
        ("", "secrets", ("get",), ("modeldr-journal-key",)),
    ]


def test_secrets_are_read_only_and_namespaced() -> None:
    docs = render()
    secrets_role = find(docs, "Role", f"{FULLNAME}-member-secrets")
    assert secrets_role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(secrets_role) == [("", "secrets", ("list",), ())]

    named = find(
        render("memberClusters.secretNames={member-primary,member-standby}"),
        "Role",
        f"{FULLNAME}-member-secrets",
    )
    assert rules_of(named) == [("", "secrets", ("get",), ("member-primary", "member-standby"))]

    elsewhere = render("memberClusters.secretNamespace=fleet")
    role = find(elsewhere, "Role", f"{FULLNAME}-member-secrets")
    binding = find(elsewhere, "RoleBinding", f"{FULLNAME}-member-secrets")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "fleet"
    assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_leader_election_lease_rules() -> None:
    role = find(render(), "Role", f"{FULLNAME}-leader-election")
    assert rules_of(role) == sorted(
        [
            ("coordination.k8s.io", "leases", ("create",), ()),
            ("coordination.k8s.io", "leases", ("get", "patch", "update"), (f"{FULLNAME}-leader",)),
        ]
    )
    single = render("leaderElection.enabled=false", "replicaCount=1")
    assert [d["metadata"]["name"] for d in single if d["kind"] == "Role"] == [
        f"{FULLNAME}-journal-key",
        f"{FULLNAME}-member-secrets",
    ]
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget"]


def test_traffic_provider_toggles_change_only_their_rules() -> None:
    with_gateway = rules_of(find(render("rbac.trafficProviders.gatewayAPI=true"), "ClusterRole"))
    assert with_gateway == sorted(
        [
            *DEFAULT_CLUSTER_RULES,
            ("gateway.networking.k8s.io", "httproutes", ("get", "patch"), ()),
        ]
    )
    without_slices = rules_of(
        find(render("rbac.trafficProviders.endpointSlice=false"), "ClusterRole")
    )
    assert {r[1] for r in without_slices} == {
        "modeldeployments",
        "modelbackups",
        "modelbackups/status",
        "modeldeployments/status",
        "modeldeployments/finalizers",
        "drillplans",
        "drillplans/status",
        "drillplans/finalizers",
        "drillruns",
        "drillruns/status",
        "drillruns/finalizers",
        "configmaps",
        "events",
        "tenantpolicies",
        "namespaces",
    }


def test_rbac_create_false_renders_no_rbac() -> None:
    kinds = {d["kind"] for d in render("rbac.create=false")}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# --------------------------------------------------------------------------- values schema


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("replicaCount=-1", "/replicaCount"),
        ("replicasCount=2", "additional properties 'replicasCount' not allowed"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("image.digest=sha256:abc", "/image/digest"),
        ("securityContext.runAsUser=0", "/securityContext/runAsUser"),
        ("metrics.port=80", "/metrics/port"),
        ("operator.logLevel=verbose", "/operator/logLevel"),
        ("serviceMonitor.interval=often", "/serviceMonitor/interval"),
        ("rbac.trafficProviders.istio=true", "additional properties 'istio' not allowed"),
        # Two replicas without leader election would both reconcile.
        ("leaderElection.enabled=false", "/replicaCount"),
    ],
)
def test_values_schema_rejects(value: str, fragment: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--set", value, check=False)
    assert result.returncode != 0, f"--set {value} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert fragment in result.stderr, result.stderr


# ------------------------------------------------------------------------------------ CRDs


# Every CRD the chart ships (the DrillPlan and DrillRun ones are generated from their models
# by modeldr/kube/crds.py; tests/unit/test_drills_spec.py checks the committed files).
CRD_NAMES = sorted(
    crd_name(plural)
    for plural in (MODELDEPLOYMENTS, DRILLPLANS, DRILLRUNS, "tenantpolicies", "modelbackups")
)


def crd_files() -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(CRDS.glob("*.yaml"))}
    assert files, "crds/ holds no CRD"
    return files


def test_chart_crds_dir_is_the_top_level_crds_dir() -> None:
    link = CHART / "crds"
    assert link.is_symlink(), "charts/modeldr/crds must be a symlink to ../../crds"
    assert link.readlink() == Path("../../crds")
    assert link.resolve() == CRDS.resolve()


def test_helm_sees_the_same_crds() -> None:
    rendered = [d for d in render(include_crds=True) if d["kind"] == "CustomResourceDefinition"]
    expected = [yaml.safe_load(body) for body in crd_files().values()]

    def key(crd: Manifest) -> str:
        return str(crd["metadata"]["name"])

    assert sorted(rendered, key=key) == sorted(expected, key=key)
    assert sorted(key(c) for c in rendered) == CRD_NAMES

    shown = helm("show", "crds", str(CHART)).stdout
    for body in crd_files().values():
        assert body.decode().strip() in shown


def test_packaged_chart_carries_the_crd_bytes(tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("modeldr-*.tgz")
    with tarfile.open(package) as tar:
        packaged = {
            Path(m.name).name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith("modeldr/crds/")
        }
        assert not [m.name for m in tar.getmembers() if m.issym() or m.islnk()]
    assert packaged == crd_files()
    # And helm reads them back from the package.
    rendered = helm("template", RELEASE, str(package), "--include-crds").stdout
    crds = [
        d
        for d in yaml.safe_load_all(io.StringIO(rendered))
        if d and d["kind"].endswith("Definition")
    ]
    assert sorted(c["metadata"]["name"] for c in crds) == CRD_NAMES


def free_form(node: Any, path: str) -> list[str]:
    """Paths of the schemaless subtrees (x-kubernetes-preserve-unknown-fields)."""
    found = []
    if isinstance(node, dict):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            found.append(path)
        for key, child in node.get("properties", {}).items():
            found += free_form(child, f"{path}.{key}")
        if "items" in node:
            found += free_form(node["items"], f"{path}[]")
    return found


def test_crd_shape() -> None:
    crd = yaml.safe_load(crd_files()[f"{GROUP}_{MODELDEPLOYMENTS}.yaml"])
    assert crd["spec"]["group"] == "modeldr.io"
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Active"] == ".status.activeCluster"
    assert columns["Primary Ready"] == ".status.primary.readyReplicas"
    assert columns["Standby Ready"] == ".status.standby.readyReplicas"
    assert columns["Phase"] == ".status.phase"
    # What clients get: the Ready condition's reason (Serving, ServersNotAnswering, ...).
    assert columns["Serving"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Age"] == ".metadata.creationTimestamp"

    # Free-form subtrees are the exception: only status.kopf (kopf's progress storage).
    assert free_form(version["schema"]["openAPIV3Schema"], "") == [".status.kopf"]


@pytest.mark.parametrize(
    ("plural", "kind", "short_names", "columns"),
    [
        (
            DRILLPLANS,
            DRILLPLAN_KIND,
            ["dp"],
            {
                "Target": ".spec.target.modelDeployment",
                "Last Run": ".status.lastRun.name",
                "Verdict": ".status.lastRun.phase",
                "Age": ".metadata.creationTimestamp",
            },
        ),
        (
            DRILLRUNS,
            DRILLRUN_KIND,
            ["drun"],
            {
                "Plan": ".spec.planRef.name",
                "Phase": ".status.phase",
                "Step": ".status.currentStep",
                "RTO": ".status.rtoSeconds",
                "Age": ".metadata.creationTimestamp",
            },
        ),
    ],
    ids=[DRILLPLANS, DRILLRUNS],
)
def test_drill_crd_shape(
    plural: str, kind: str, short_names: list[str], columns: dict[str, str]
) -> None:
    crd = yaml.safe_load(crd_files()[f"{GROUP}_{plural}.yaml"])
    assert crd["metadata"]["name"] == crd_name(plural)
    assert crd["spec"]["group"] == GROUP and crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"]) == (kind, plural)
    assert names["shortNames"] == short_names
    assert names["categories"] == ["modeldr"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    # The default columns, in this order (`kubectl get` shows them); -o wide adds more.
    shown = [c for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert {c["name"]: c["jsonPath"] for c in shown} == columns
    assert [c["name"] for c in shown] == list(columns)
    assert free_form(version["schema"]["openAPIV3Schema"], "") == [".status.kopf"]


def test_zero_replicas_installs_rbac_for_an_operator_run_elsewhere() -> None:
    docs = render("replicaCount=0")
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 0
    assert not any(d["kind"] == "PodDisruptionBudget" for d in docs)
