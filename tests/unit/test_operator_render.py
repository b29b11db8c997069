"""Rendering a ModelDeployment into member objects (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube import constants
from modeldr.kube.errors import RenderError
from modeldr.operator import render

ROOT = Path(__file__).resolve().parents[2]


def example() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples/sandbox/modeldeployment.yaml").read_text()))


def spec(**overrides: Any) -> ModelDeploymentSpec:
    raw = example()["spec"]
    raw.update(overrides)
    return ModelDeploymentSpec.parse(raw)


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_deployment_has_gpu_limits_tolerations_and_product_selector() -> None:
    d = render.deployment("tiny-bert", "demo", spec(), "primary", 2)
    pod = d["spec"]["template"]["spec"]
    assert d["metadata"]["namespace"] == "modeldr-demo"
    assert d["spec"]["replicas"] == 2
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_cpu_only_model_has_no_gpu_resources_and_serves_on_cpu() -> None:
    raw = example()["spec"]
    raw["resources"] = {"gpusPerReplica": 0, "cpu": "2", "memory": "4Gi"}
    d = render.deployment("m", "demo", ModelDeploymentSpec.parse(raw), "primary", 1)
    pod = d["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod and "nodeSelector" not in pod
    assert env_of(d)["MODELDR_SERVE_DEVICE"] == "cpu"


def test_probes_digest_and_scrape_annotations() -> None:
    d = render.deployment("tiny-bert", "demo", spec(), "standby", 2)
    container = d["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = env_of(d)
    assert env["MODELDR_SERVE_EXPECTED_DIGEST"] == spec().model.expected_digest
    # The example's s3:// source: fetched into the pod's own scratch volume.
    assert env["MODELDR_SERVE_MODEL_DIR"] == render.FETCH_MOUNT
    assert env["MODELDR_SERVE_MODEL_SOURCE"] == "s3://models/tiny-bert"
    assert env["MODELDR_SERVE_HOST"] == "$(POD_IP)"
    annotations = d["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations[constants.DIGEST_ANNOTATION] == spec().model.expected_digest


def test_grace_period_matches_the_server_drain() -> None:
    # The example sets MODELDR_SERVE_DRAIN_DELAY_S=1.
    d = render.deployment("tiny-bert", "demo", spec(), "primary", 2)
    grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == 1 + render.INFLIGHT_BUDGET_S
    assert env_of(d)["MODELDR_SERVE_GRACE_PERIOD_S"] == str(grace)
    assert env_of(d)["MODELDR_SERVE_DRAIN_DELAY_S"] == "1"


def test_pod_template_annotations_from_the_modeldeployment() -> None:
    annotations = {constants.POD_ANNOTATIONS_ANNOTATION: '{"sandbox.modeldr.io/run": "process"}'}
    d = render.deployment("tiny-bert", "demo", spec(), "primary", 2, annotations)
    assert d["spec"]["template"]["metadata"]["annotations"]["sandbox.modeldr.io/run"] == "process"
    with pytest.raises(RenderError, match="JSON object of strings"):
        render.pod_template_annotations(spec(), {constants.POD_ANNOTATIONS_ANNOTATION: "[1]"})
    with pytest.raises(RenderError, match="not JSON"):
        render.pod_template_annotations(spec(), {constants.POD_ANNOTATIONS_ANNOTATION: "{"})


def test_model_sources() -> None:
    raw = example()["spec"]
    raw["model"]["source"] = "pvc://models/bert/v3"
    volume, mount, directory = render.model_volume(ModelDeploymentSpec.parse(raw))
    assert volume["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert mount["readOnly"] is True and directory == "/models/bert/v3"
    raw["model"]["source"] = "gs://bucket/bert"
    with pytest.raises(RenderError, match="gs:// is not supported"):
        render.model_volume(ModelDeploymentSpec.parse(raw))


def test_s3_source_fetches_into_a_scratch_volume_with_the_store_secrets() -> None:
    raw = example()["spec"]
    raw["model"]["source"] = "s3://models/bert/v3"
    raw["model"]["store"] = {"secretName": "eu-store", "fallbackSecretName": "backup-store"}
    d = render.deployment("tiny-bert", "demo", ModelDeploymentSpec.parse(raw), "primary", 1)
    pod = d["spec"]["template"]["spec"]
    assert {"name": "model", "emptyDir": {}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    # The fetched copy's volume sits inside /tmp's: the parent first.
    assert [m["mountPath"] for m in mounts] == ["/tmp", render.FETCH_MOUNT]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MODELDR_SERVE_MODEL_SOURCE"]["value"] == "s3://models/bert/v3"
    assert env["MODELDR_SERVE_MODEL_DIR"]["value"] == render.FETCH_MOUNT
    assert env["MODELDR_STORE_ENDPOINT"]["valueFrom"] == {
        "secretKeyRef": {"name": "eu-store", "key": "endpoint"}
    }
    assert env["MODELDR_FALLBACK_STORE_SECRET_ACCESS_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "backup-store", "key": "secretAccessKey"}
    }
    # No credential value is ever written into the pod template.
    assert all("value" not in e for n, e in env.items() if n.startswith("MODELDR_STORE_"))
    # Without a fallback only the own store's four values; the default Secret name.
    raw["model"]["store"] = {}
    d = render.deployment("tiny-bert", "demo", ModelDeploymentSpec.parse(raw), "primary", 1)
    names = [e["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert sum(n.startswith("MODELDR_STORE_") for n in names) == 4
    assert not any(n.startswith("MODELDR_FALLBACK_STORE_") for n in names)
    store_env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert store_env["MODELDR_STORE_REGION"]["valueFrom"]["secretKeyRef"]["name"] == (
        "modeldr-model-store"
    )


def test_owner_labels_and_stable_selector() -> None:
    objects = render.member_objects("tiny-bert", "demo", spec(), "standby", 0)
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "PodDisruptionBudget"]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels[constants.MANAGED_BY] == "modeldr"
        assert labels[constants.NAME_LABEL] == "tiny-bert"
        assert labels[constants.NAMESPACE_LABEL] == "demo"
        assert labels[constants.ROLE_LABEL] == "standby"
    selector = objects[0]["spec"]["selector"]["matchLabels"]
    assert constants.ROLE_LABEL not in selector  # immutable: must not change on failover
    assert objects[2]["spec"]["selector"]["matchLabels"] == selector


def test_user_env_cannot_override_derived_variables_but_can_set_others() -> None:
    raw = example()["spec"]
    raw["runtime"]["env"] = [
        {"name": "MODELDR_SERVE_DTYPE", "value": "bfloat16"},
        {"name": "MODELDR_SERVE_MAX_TEXTS_PER_REQUEST", "value": "8"},
    ]
    env = env_of(render.deployment("m", "demo", ModelDeploymentSpec.parse(raw), "primary", 1))
    assert env["MODELDR_SERVE_DTYPE"] == "bfloat16"
    assert env["MODELDR_SERVE_MAX_TEXTS_PER_REQUEST"] == "8"


@pytest.mark.parametrize(
    ("desired", "actual", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": [1, {"c": "x"}]}}, {"a": {"b": [1, {"c": "x", "d": 0}]}}, True),
        ({"a": [1, 2]}, {"a": [1]}, False),
        ({"a": False}, {}, True),  # omitempty
        ({"a": True}, {}, False),
        ({"replicas": 2}, {"replicas": 0}, False),
        ({"cpu": "500m"}, {"cpu": "500m"}, True),
    ],
)
def test_is_subset(desired: Any, actual: Any, expected: bool) -> None:
    assert render.is_subset(desired, actual) is expected


def with_overrides(
    primary: dict[str, Any] | None = None, standby: dict[str, Any] | None = None
) -> ModelDeploymentSpec:
    """The example with clusters.primary / clusters.standby extended by the given fields."""
    raw = example()["spec"]
    raw["clusters"]["primary"].update(primary or {})
    raw["clusters"]["standby"].update(standby or {})
    return ModelDeploymentSpec.parse(raw)


def user_env_names(deployment: dict[str, Any]) -> list[str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [e["name"] for e in container["env"]]


def test_without_overrides_both_roles_get_the_same_env_and_gpu_product() -> None:
    s = spec()
    assert s.env_for("primary") == s.env_for("standby") == s.runtime.env
    assert s.gpu_product_for("primary") == s.gpu_product_for("standby") == "NVIDIA-H100-80GB-HBM3"
    primary = render.deployment("tiny-bert", "demo", s, "primary", 2)
    standby = render.deployment("tiny-bert", "demo", s, "standby", 2)
    assert primary["spec"]["template"]["spec"] == standby["spec"]["template"]["spec"]


def test_override_env_replaces_by_name_in_place_and_appends_new_names_in_order() -> None:
    # The example's env: MODELDR_SERVE_CPU_THREADS=1, MODELDR_SERVE_DRAIN_DELAY_S=1.
    s = with_overrides(
        standby={
            "runtime": {
                "env": [
                    {"name": "MODELDR_SERVE_DTYPE", "value": "bfloat16"},
                    {"name": "MODELDR_SERVE_CPU_THREADS", "value": "2"},
                    {"name": "B_FLAG", "value": ""},
                ]
            }
        }
    )
    assert [(v.name, v.value) for v in s.env_for("standby")] == [
        ("MODELDR_SERVE_CPU_THREADS", "2"),  # the override wins, where the top-level one was
        ("MODELDR_SERVE_DRAIN_DELAY_S", "1"),
        ("MODELDR_SERVE_DTYPE", "bfloat16"),  # names only in the override follow, in order
        ("B_FLAG", ""),
    ]
    assert s.env_for("primary") == s.runtime.env  # the other cluster is untouched
    standby = render.deployment("tiny-bert", "demo", s, "standby", 2)
    env = env_of(standby)
    assert env["MODELDR_SERVE_CPU_THREADS"] == "2" and env["MODELDR_SERVE_DTYPE"] == "bfloat16"
    names = user_env_names(standby)
    assert len(names) == len(set(names))  # one entry per name: no shadowed duplicate
    assert names[-4:] == [
        "MODELDR_SERVE_CPU_THREADS",
        "MODELDR_SERVE_DRAIN_DELAY_S",
        "MODELDR_SERVE_DTYPE",
        "B_FLAG",
    ]
    primary = env_of(render.deployment("tiny-bert", "demo", s, "primary", 2))
    assert primary["MODELDR_SERVE_CPU_THREADS"] == "1" and "MODELDR_SERVE_DTYPE" not in primary


def test_override_env_sets_defaults_but_never_derived_variables() -> None:
    s = with_overrides(
        standby={
            "runtime": {
                "env": [
                    {"name": "MODELDR_SERVE_DEVICE", "value": "cpu"},
                    {"name": "MODELDR_SERVE_MAX_TEXTS_PER_REQUEST", "value": "4"},
                    # Refused by the CRD; should one reach the renderer it changes nothing.
                    {"name": "MODELDR_SERVE_EXPECTED_DIGEST", "value": "sha256:" + "0" * 64},
                ]
            }
        }
    )
    env = env_of(render.deployment("tiny-bert", "demo", s, "standby", 2))
    assert env["MODELDR_SERVE_DEVICE"] == "cpu"
    assert env["MODELDR_SERVE_MAX_TEXTS_PER_REQUEST"] == "4"
    assert env["MODELDR_SERVE_EXPECTED_DIGEST"] == s.model.expected_digest
    primary = env_of(render.deployment("tiny-bert", "demo", s, "primary", 2))
    assert "MODELDR_SERVE_DEVICE" not in primary
    assert primary["MODELDR_SERVE_MAX_TEXTS_PER_REQUEST"] == "64"  # min(64, maxQueue)


def test_override_drain_delay_sets_that_clusters_grace_period() -> None:
    s = with_overrides(
        standby={"runtime": {"env": [{"name": "MODELDR_SERVE_DRAIN_DELAY_S", "value": "7"}]}}
    )
    standby = render.deployment("tiny-bert", "demo", s, "standby", 2)
    assert standby["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 27
    assert env_of(standby)["MODELDR_SERVE_GRACE_PERIOD_S"] == "27"
    assert env_of(standby)["MODELDR_SERVE_DRAIN_DELAY_S"] == "7"
    primary = render.deployment("tiny-bert", "demo", s, "primary", 2)
    assert primary["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 21
    bad = with_overrides(
        standby={"runtime": {"env": [{"name": "MODELDR_SERVE_DRAIN_DELAY_S", "value": "soon"}]}}
    )
    with pytest.raises(RenderError, match=r"spec\.clusters\.standby\.runtime\.env"):
        render.deployment("tiny-bert", "demo", bad, "standby", 2)
    render.deployment("tiny-bert", "demo", bad, "primary", 2)  # the primary's env is fine


def test_override_gpu_product_selects_that_clusters_nodes() -> None:
    s = with_overrides(standby={"resources": {"gpuProduct": "NVIDIA-A100-SXM4-40GB"}})
    assert s.gpu_product_for("standby") == "NVIDIA-A100-SXM4-40GB"
    assert s.gpu_product_for("primary") == "NVIDIA-H100-80GB-HBM3"
    standby = render.deployment("tiny-bert", "demo", s, "standby", 2)["spec"]["template"]["spec"]
    primary = render.deployment("tiny-bert", "demo", s, "primary", 2)["spec"]["template"]["spec"]
    assert standby["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
    assert primary["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    # GPU limit and toleration come from spec.resources, the same in both.
    assert standby["containers"][0]["resources"] == primary["containers"][0]["resources"]
    assert standby["tolerations"] == primary["tolerations"]


def test_override_gpu_product_without_a_top_level_one() -> None:
    raw = example()["spec"]
    del raw["resources"]["gpuProduct"]
    raw["clusters"]["primary"]["resources"] = {"gpuProduct": "NVIDIA-H100-80GB-HBM3"}
    raw["clusters"]["standby"]["resources"] = {}
    s = ModelDeploymentSpec.parse(raw)
    assert s.gpu_product_for("primary") == "NVIDIA-H100-80GB-HBM3"
    assert s.gpu_product_for("standby") is None
    primary = render.deployment("tiny-bert", "demo", s, "primary", 2)["spec"]["template"]["spec"]
    standby = render.deployment("tiny-bert", "demo", s, "standby", 2)["spec"]["template"]["spec"]
    assert primary["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "nodeSelector" not in standby  # any GPU product


def test_member_objects_of_a_role_use_its_overrides() -> None:
    s = with_overrides(
        standby={
            "runtime": {"env": [{"name": "MODELDR_SERVE_DTYPE", "value": "float16"}]},
            "resources": {"gpuProduct": "NVIDIA-L4"},
        }
    )
    deployment = render.member_objects("tiny-bert", "demo", s, "standby", 2)[0]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-L4"
    }
    assert env_of(deployment)["MODELDR_SERVE_DTYPE"] == "float16"


def test_member_service_is_a_local_node_port_when_the_slice_lists_node_ports() -> None:
    node_ports = spec(
        traffic={
            "provider": "endpointslice",
            "endpointSlice": {"addresses": "nodePorts", "nodePort": 30080},
        }
    )
    service = render.service("tiny-bert", "demo", node_ports, "primary")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["spec"]["ports"][0]["nodePort"] == 30080
    plain = render.service("tiny-bert", "demo", spec(), "primary")
    assert "type" not in plain["spec"] and "nodePort" not in plain["spec"]["ports"][0]
