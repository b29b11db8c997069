"""The ModelDeployment CRD on the hub's real apiserver: what `kubectl apply` accepts and refuses.

The CRDs are applied server-side (idempotent) from crds/, the single source of truth the chart
ships too. Every bad spec below must be refused by the apiserver itself (schema or CEL rule)
with a message that tells the user what to change.
"""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from modeldr.kube.constants import GROUP, MODELDEPLOYMENTS, PAUSED_ANNOTATION, VERSION, crd_name
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from sandbox.tenants import delete_policy, policy_body, put_policy
from tests.specs import minimal_spec_dict
from tests.tooling import require_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
SANDBOX_EXAMPLE = ROOT / "examples" / "sandbox" / "modeldeployment.yaml"
GPU_EXAMPLE = ROOT / "examples" / "gpu-cluster" / "modeldeployment.yaml"
ACTIVE_ACTIVE_EXAMPLE = ROOT / "examples" / "sandbox" / "modeldeployment-active-active.yaml"
AUTOSCALING_EXAMPLE = ROOT / "examples" / "sandbox" / "modeldeployment-autoscaling.yaml"
CRD_NAME = crd_name(MODELDEPLOYMENTS)
PLURAL = MODELDEPLOYMENTS

Spec = dict[str, Any]
ACTIVE_ACTIVE = {"provider": "haproxy", "mode": "activeActive", "haproxy": {"frontendPort": 19301}}


def kubectl_binary() -> str:
    return require_tool("kubectl")


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [
        kubectl_binary(),
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
        "--request-timeout=20s",
        *args,
    ]
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def apply_crds() -> None:
    """Server-side apply of crds/ (idempotent) and wait until the API serves them."""
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=modeldr-crds",
        "-f",
        str(CRDS),
    )
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    apply_crds()
    # Discovery may lag the Established condition by a moment.
    kube.wait_for(
        lambda: kubectl("get", PLURAL, "-A", check=False).returncode == 0,
        timeout=30,
        what="the modeldeployments API to be served",
    )


@pytest.fixture
def hub_namespace(crds: None, operator: None) -> Iterator[str]:
    """A namespace whose TenantPolicy allows what the examples and these specs place (the
    chart's admission policy refuses the rest at apply; the operator compiles its grants)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = kube.core("hub")
    core.create_namespace({"metadata": {"name": name}})
    put_policy(
        policy_body(
            name,
            clusters=("primary", "standby", "gpu-eu-west-1", "gpu-eu-central-1"),
            member_namespaces=("models", "ml", "reviews-serving", "modeldr-demo"),
            model_sources=("file:///", "pvc://", "s3://models/"),
            images=("modeldr/", "registry.example.com/", "ghcr.io/"),
        )
    )
    yield name
    core.delete_namespace(name)
    delete_policy(name)


def load(path: Path) -> Spec:
    document: Spec = yaml.safe_load(path.read_text())
    return document


def dry_run_apply(namespace: str, manifest: Spec) -> subprocess.CompletedProcess[str]:
    return kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps(manifest),
        check=False,
    )


def test_crd_apply_is_idempotent(crds: None) -> None:
    ext = client.ApiextensionsV1Api(kube.api_client("hub"))
    before = ext.read_custom_resource_definition(CRD_NAME)
    apply_crds()
    after = ext.read_custom_resource_definition(CRD_NAME)
    assert after.metadata.generation == before.metadata.generation
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.spec.versions[0].subresources.status is not None


@pytest.mark.parametrize(
    "example",
    [SANDBOX_EXAMPLE, GPU_EXAMPLE, ACTIVE_ACTIVE_EXAMPLE, AUTOSCALING_EXAMPLE],
    ids=["sandbox", "gpu-cluster", "active-active", "autoscaling"],
)
def test_examples_are_accepted(hub_namespace: str, example: Path) -> None:
    result = kubectl("apply", "--dry-run=server", "-n", hub_namespace, "-f", str(example))
    assert "created (server dry run)" in result.stdout


def test_minimal_spec_is_accepted_and_defaulted(hub_namespace: str) -> None:
    api = client.CustomObjectsApi(kube.api_client("hub"))
    minimal = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "minimal"},
        "spec": minimal_spec_dict(
            clusters={
                "primary": {"cluster": "primary", "namespace": "models"},
                "standby": {"cluster": "standby", "namespace": "models", "mode": "cold"},
            }
        ),
    }
    created = api.create_namespaced_custom_object(GROUP, VERSION, hub_namespace, PLURAL, minimal)
    spec = created["spec"]
    assert spec["runtime"]["port"] == 8080
    assert spec["runtime"]["batching"] == {
        "maxBatchSize": 32,
        "maxBatchDelayMs": 5,
        "maxQueue": 256,
    }
    assert spec["resources"] == {"gpusPerReplica": 1}
    assert spec["failover"] == {
        "automatic": True,
        "healthIntervalSeconds": 5,
        "failureThreshold": 3,
        "switchWaitSeconds": 300,
        "failback": {"mode": "manual", "holdDownSeconds": 300},
    }
    assert spec["traffic"] == {"provider": "endpointslice"}
    assert "replicas" not in spec["clusters"]["standby"]


# Each case: an edit of the sandbox example and a fragment of the apiserver's answer.
Edit = Callable[[Spec], None]


def _set(path: str, value: Any) -> Edit:
    def edit(doc: Spec) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(doc: Spec) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        del node[leaf]

    return edit


def _all(*edits: Edit) -> Edit:
    def edit(doc: Spec) -> None:
        for e in edits:
            e(doc)

    return edit


BAD_SPECS: list[tuple[str, Edit, str]] = [
    ("missing-model", _delete("spec.model"), "spec.model: Required value"),
    (
        "rollout-without-evaluation",
        _delete("spec.evaluation"),
        "rollout verifies a new model version on the golden set of spec.evaluation",
    ),
    (
        "bad-on-failure",
        _set("spec.evaluation.onFailure", "panic"),
        'spec.evaluation.onFailure: Unsupported value: "panic"',
    ),
    ("missing-digest", _delete("spec.model.expectedDigest"), "expectedDigest: Required value"),
    ("missing-standby", _delete("spec.clusters.standby"), "spec.clusters.standby: Required value"),
    (
        "bad-task",
        _set("spec.model.task", "translation"),
        'spec.model.task: Unsupported value: "translation"',
    ),
    (
        "bad-standby-mode",
        _set("spec.clusters.standby.mode", "lukewarm"),
        'Unsupported value: "lukewarm"',
    ),
    (
        "bad-provider",
        _set("spec.traffic.provider", "dns"),
        'spec.traffic.provider: Unsupported value: "dns"',
    ),
    (
        "zero-replicas",
        _set("spec.replicas", 0),
        "spec.replicas in body should be greater than or equal to 1",
    ),
    (
        "too-many-replicas",
        _set("spec.replicas", 1000),
        "spec.replicas in body should be less than or equal to 256",
    ),
    (
        "privileged-port",
        _set("spec.runtime.port", 80),
        "spec.runtime.port in body should be greater than or equal to 1024",
    ),
    (
        "batch-size-out-of-range",
        _set("spec.runtime.batching.maxBatchSize", 0),
        "maxBatchSize in body should be greater than or equal to 1",
    ),
    (
        "short-digest",
        _set("spec.model.expectedDigest", "sha256:abc"),
        "spec.model.expectedDigest in body should match",
    ),
    (
        "md5-digest",
        _set("spec.model.expectedDigest", "md5:" + "a" * 32),
        "spec.model.expectedDigest in body should match",
    ),
    (
        "unsupported-source",
        _set("spec.model.source", "ftp://models/tiny"),
        "spec.model.source in body should match",
    ),
    (
        "same-primary-and-standby",
        _set("spec.clusters.standby.cluster", "primary"),
        "clusters.primary.cluster and clusters.standby.cluster must differ",
    ),
    (
        "cold-standby-with-replicas",
        _all(_set("spec.clusters.standby.mode", "cold"), _set("spec.clusters.standby.replicas", 1)),
        "a cold standby runs no replicas",
    ),
    (
        "hot-standby-smaller",
        _set("spec.clusters.standby.replicas", 1),
        "a hot standby mirrors the primary",
    ),
    (
        "warm-standby-as-big",
        _all(_set("spec.clusters.standby.mode", "warm"), _set("spec.clusters.standby.replicas", 2)),
        "a warm standby keeps fewer replicas than the primary but at least one",
    ),
    (
        "warm-standby-without-replicas",
        _set("spec.clusters.standby.mode", "warm"),
        "spec.clusters.standby.replicas: Invalid value: a warm standby keeps fewer replicas",
    ),
    (
        "webhook-without-url",
        _set("spec.traffic.provider", "webhook"),
        "traffic.provider webhook needs traffic.webhook.url",
    ),
    (
        "webhook-empty",
        _all(_set("spec.traffic.provider", "webhook"), _set("spec.traffic.webhook", {})),
        "spec.traffic.webhook.url: Required value",
    ),
    (
        "webhook-not-http",
        _all(
            _set("spec.traffic.provider", "webhook"),
            _set("spec.traffic.webhook", {"url": "ftp://traffic.example.com/switch"}),
        ),
        "spec.traffic.webhook.url in body should match",
    ),
    (
        "webhook-settings-without-provider",
        _set("spec.traffic.webhook", {"url": "https://traffic.example.com/switch"}),
        "traffic.webhook is set but traffic.provider is not webhook",
    ),
    (
        "gatewayapi-without-route",
        _set("spec.traffic.provider", "gatewayapi"),
        "traffic.provider gatewayapi needs traffic.gatewayAPI.httpRoute",
    ),
    (
        "automatic-failback-short-hold-down",
        _set("spec.failover.failback", {"mode": "automatic", "holdDownSeconds": 10}),
        "automatic failback needs failback.holdDownSeconds >= 30",
    ),
    (
        "automatic-failback-shorter-than-detection",
        _all(
            _set("spec.failover.healthIntervalSeconds", 10),
            _set("spec.failover.failureThreshold", 5),
            _set("spec.failover.failback", {"mode": "automatic", "holdDownSeconds": 60}),
        ),
        "two failure-detection windows",
    ),
    (
        "gpu-product-without-gpus",
        _set("spec.resources.gpusPerReplica", 0),
        "resources.gpuProduct needs resources.gpusPerReplica >= 1",
    ),
    (
        "bad-cpu-quantity",
        _set("spec.resources.cpu", "lots"),
        "resources.cpu must be a positive Kubernetes quantity",
    ),
    (
        "env-overrides-digest",
        _set(
            "spec.runtime.env",
            [{"name": "MODELDR_SERVE_EXPECTED_DIGEST", "value": "sha256:" + "0" * 64}],
        ),
        "MODELDR_SERVE_EXPECTED_DIGEST is set by the operator",
    ),
    (
        "duplicate-env",
        _set("spec.runtime.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "Duplicate value",
    ),
    # Per-cluster overrides: the same rules as spec.runtime.env and spec.resources.gpuProduct,
    # each refusal naming the cluster's field.
    (
        "override-env-bad-name",
        _set("spec.clusters.standby.runtime", {"env": [{"name": "1-DTYPE", "value": "x"}]}),
        "spec.clusters.standby.runtime.env[0].name in body should match",
    ),
    (
        "override-env-derived-variable",
        _set(
            "spec.clusters.standby.runtime",
            {"env": [{"name": "MODELDR_SERVE_MODEL_DIR", "value": "/elsewhere"}]},
        ),
        "spec.clusters.standby.runtime.env[0]: Invalid value: "
        "MODELDR_SERVE_MODEL_DIR is set by the operator",
    ),
    (
        "override-env-duplicate",
        _set(
            "spec.clusters.primary.runtime",
            {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
        ),
        "spec.clusters.primary.runtime.env[1]: Duplicate value",
    ),
    (
        "override-env-without-name",
        _set("spec.clusters.standby.runtime", {"env": [{"value": "1"}]}),
        "spec.clusters.standby.runtime.env[0].name: Required value",
    ),
    (
        "override-env-too-many",
        _set(
            "spec.clusters.standby.runtime",
            {"env": [{"name": f"V{i}", "value": "1"} for i in range(65)]},
        ),
        "spec.clusters.standby.runtime.env: Too many: 65: must have at most 64 items",
    ),
    (
        "override-gpu-product-bad",
        _set("spec.clusters.standby.resources", {"gpuProduct": "NVIDIA A100"}),
        "spec.clusters.standby.resources.gpuProduct in body should match",
    ),
    (
        "override-gpu-product-without-gpus",
        _all(
            _set("spec.resources", {"gpusPerReplica": 0}),
            _set("spec.clusters.standby.resources", {"gpuProduct": "NVIDIA-A100-SXM4-40GB"}),
        ),
        "spec.clusters.standby.resources.gpuProduct: Invalid value: "
        "clusters.standby.resources.gpuProduct needs resources.gpusPerReplica >= 1",
    ),
    (
        "override-primary-gpu-product-without-gpus",
        _all(
            _set("spec.resources", {"gpusPerReplica": 0}),
            _set("spec.clusters.primary.resources", {"gpuProduct": "NVIDIA-H100-80GB-HBM3"}),
        ),
        "clusters.primary.resources.gpuProduct needs resources.gpusPerReplica >= 1",
    ),
    (
        "override-unknown-resource",
        _set("spec.clusters.standby.resources", {"gpusPerReplica": 2}),
        'unknown field "spec.clusters.standby.resources.gpusPerReplica"',
    ),
    (
        "name-not-dns-1035",
        _set("metadata.name", "1-tiny-bert"),
        "metadata.name must be a DNS-1035 label",
    ),
    (
        "probe-url-not-http",
        _set("spec.failover.probe", {"urls": {"standby": "ftp://lb.example.com/bert"}}),
        "spec.failover.probe.urls.standby in body should match",
    ),
    (
        "probe-min-success-zero",
        _set("spec.failover.probe", {"minSuccessPercent": 0}),
        "spec.failover.probe.minSuccessPercent: Invalid value",
    ),
    (
        "probe-unknown-request",
        _set("spec.failover.probe", {"request": "ping"}),
        'spec.failover.probe.request: Unsupported value: "ping"',
    ),
    (
        "active-active-warm-standby",
        _all(
            _set("spec.traffic", ACTIVE_ACTIVE),
            _set("spec.clusters.standby.mode", "warm"),
            _set("spec.clusters.standby.replicas", 1),
        ),
        "the standby must be hot",
    ),
    (
        "active-active-endpointslice",
        _set("spec.traffic", {"provider": "endpointslice", "mode": "activeActive"}),
        "traffic.mode activeActive needs a provider that applies per-cluster",
    ),
    (
        "haproxy-without-frontend",
        _set("spec.traffic", {"provider": "haproxy"}),
        "traffic.provider haproxy needs traffic.haproxy.frontendPort",
    ),
    (
        "active-active-no-weight",
        _set("spec.traffic", ACTIVE_ACTIVE | {"weights": {"primary": 0, "standby": 0}}),
        "traffic.weights must give one cluster a weight above 0",
    ),
    (
        "balance-without-haproxy",
        _set("spec.traffic", {"provider": "endpointslice", "balance": "leastconn"}),
        "traffic.balance is applied by the haproxy provider only",
    ),
    (
        "autoscaling-standby-smaller",
        _set(
            "spec.autoscaling",
            {
                "targetInflightPerPod": 1,
                "primary": {"maxReplicas": 4},
                "standby": {"maxReplicas": 2},
            },
        ),
        "the standby must be able to carry the primary's load",
    ),
    (
        "autoscaling-min-above-max",
        _set(
            "spec.autoscaling",
            {"targetInflightPerPod": 1, "primary": {"minReplicas": 3, "maxReplicas": 2}},
        ),
        "autoscaling minReplicas must not exceed maxReplicas",
    ),
    (
        "autoscaling-cold-standby",
        _all(
            _set("spec.autoscaling", {"targetInflightPerPod": 1, "primary": {"maxReplicas": 2}}),
            _set("spec.clusters.standby.mode", "cold"),
        ),
        "the standby must be hot or warm",
    ),
    (
        "autoscaling-zero-target",
        _set("spec.autoscaling", {"targetInflightPerPod": 0, "primary": {"maxReplicas": 2}}),
        "spec.autoscaling.targetInflightPerPod",
    ),
    # A typo is an error, not a silently pruned field (kubectl's strict field validation).
    ("unknown-field", _set("spec.replica", 2), 'unknown field "spec.replica"'),
]


def test_per_cluster_overrides_are_accepted_and_kept(hub_namespace: str) -> None:
    # docs/crds.md's example: a standby on another GPU type, in bfloat16, one more thread.
    manifest = copy.deepcopy(load(SANDBOX_EXAMPLE))
    overrides = {
        "runtime": {
            "env": [
                {"name": "MODELDR_SERVE_DTYPE", "value": "bfloat16"},
                {"name": "MODELDR_SERVE_CPU_THREADS", "value": "2"},
            ]
        },
        "resources": {"gpuProduct": "NVIDIA-A100-SXM4-40GB"},
    }
    manifest["spec"]["clusters"]["standby"].update(copy.deepcopy(overrides))
    manifest["spec"]["clusters"]["primary"]["runtime"] = {"env": []}
    result = kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        hub_namespace,
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(manifest),
    )
    clusters = json.loads(result.stdout)["spec"]["clusters"]
    assert {k: clusters["standby"][k] for k in ("runtime", "resources")} == overrides
    assert clusters["primary"]["runtime"] == {"env": []}
    # The same name at the top level and in the override is not a duplicate: it replaces.
    assert any(v["name"] == "MODELDR_SERVE_CPU_THREADS" for v in manifest["spec"]["runtime"]["env"])
    # A per-cluster product with no top-level one (the other cluster takes any GPU).
    del manifest["spec"]["resources"]["gpuProduct"]
    assert "created (server dry run)" in dry_run_apply(hub_namespace, manifest).stdout


@pytest.mark.parametrize(
    ("edit", "fragment"), [(e, f) for _, e, f in BAD_SPECS], ids=[n for n, _, _ in BAD_SPECS]
)
def test_bad_spec_is_refused(hub_namespace: str, edit: Edit, fragment: str) -> None:
    manifest = copy.deepcopy(load(SANDBOX_EXAMPLE))
    edit(manifest)
    result = dry_run_apply(hub_namespace, manifest)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert fragment in result.stderr, result.stderr


def test_a_client_probe_is_accepted_and_defaulted(hub_namespace: str) -> None:
    manifest = copy.deepcopy(load(SANDBOX_EXAMPLE))
    manifest["spec"]["failover"]["probe"] = {"urls": {"standby": "https://lb.example.com/bert"}}
    result = kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        hub_namespace,
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(manifest),
    )
    # On by default, the servers' own readiness, every entry address (no sampleSize).
    assert json.loads(result.stdout)["spec"]["failover"]["probe"] == {
        "enabled": True,
        "request": "readiness",
        "text": "modeldr health probe",
        "timeoutMilliseconds": 2000,
        "minSuccessPercent": 50,
        "urls": {"standby": "https://lb.example.com/bert"},
    }


def test_printer_columns_and_status_subresource(hub_namespace: str) -> None:
    api = client.CustomObjectsApi(kube.api_client("hub"))
    # Paused: an operator running on the sandbox must leave this status to the test (and not
    # deploy the example to the member clusters).
    manifest = copy.deepcopy(load(SANDBOX_EXAMPLE))
    manifest["metadata"].setdefault("annotations", {})[PAUSED_ANNOTATION] = "true"
    kubectl("apply", "-n", hub_namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    name = manifest["metadata"]["name"]
    before = api.get_namespaced_custom_object(GROUP, VERSION, hub_namespace, PLURAL, name)

    # A write to /status changes status only: the spec part of the same patch is ignored.
    status = {
        "observedGeneration": before["metadata"]["generation"],
        "phase": "Ready",
        "activeCluster": "primary",
        "primary": {"cluster": "primary", "readyReplicas": 2, "replicas": 2, "freeGPUs": 14},
        "standby": {"cluster": "standby", "readyReplicas": 1, "replicas": 2, "freeGPUs": 15},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "message": "primary serves",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "lastFailover": {
            "from": "standby",
            "to": "primary",
            "detectionSeconds": 3.2,
            "switchSeconds": 0.4,
            "totalSeconds": 3.6,
        },
        "rollout": {"phase": "Promoted", "to": {"expectedDigest": "sha256:" + "0" * 64}},
    }
    after = api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        hub_namespace,
        PLURAL,
        name,
        {"spec": {"replicas": 7}, "status": status},
    )
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["status"]["activeCluster"] == "primary"
    assert after["status"]["lastFailover"]["totalSeconds"] == 3.6

    # The main resource ignores status.
    again = api.patch_namespaced_custom_object(
        GROUP, VERSION, hub_namespace, PLURAL, name, {"status": {"phase": "Failed"}}
    )
    assert again["status"]["phase"] == "Ready"

    # Status has a schema too: a phase the operator should never write is refused.
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, hub_namespace, PLURAL, name, {"status": {"phase": "Bogus"}}
        )
    assert refused.value.status == 422
    assert 'Unsupported value: "Bogus"' in json.loads(refused.value.body)["message"]

    # kubectl shows the printer columns.
    table = kubectl("get", PLURAL, "-n", hub_namespace).stdout.splitlines()
    header = table[0].split()
    assert header == [
        "NAME",
        "ACTIVE",
        "PRIMARY",
        "READY",
        "STANDBY",
        "READY",
        "PHASE",
        "SERVING",
        "ROLLOUT",
        "AGE",
    ]
    row = table[1].split()
    assert row[:7] == [name, "primary", "2", "1", "Ready", "Serving", "Promoted"]
    wide = kubectl("get", "md", "-n", hub_namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["MODE", "TRAFFIC", "DIGEST"]
    digest = load(SANDBOX_EXAMPLE)["spec"]["model"]["expectedDigest"]
    assert wide[1].split()[-3:] == ["hot", "endpointslice", digest]

    # And so does the API's Table output, which every client gets.
    hub = kube.api_client("hub")
    response: Any = hub.rest_client.request(
        "GET",
        f"{hub.configuration.host}/apis/{GROUP}/{VERSION}/namespaces/{hub_namespace}/{PLURAL}",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        _request_timeout=20,
    )
    assert response.status == 200
    response.read()
    table_json = json.loads(response.data)
    names = [c["name"] for c in table_json["columnDefinitions"]]
    assert names[:8] == [
        "Name",
        "Active",
        "Primary Ready",
        "Standby Ready",
        "Phase",
        "Serving",
        "Rollout",
        "Age",
    ]
    assert table_json["rows"][0]["cells"][1:7] == [
        "primary",
        2,
        1,
        "Ready",
        "Serving",
        "Promoted",
    ]
