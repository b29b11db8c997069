"""Rendering a ModelDeployment into member objects (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldr.operator import constants, render
from modeldr.operator.errors import RenderError
from modeldr.operator.spec import ModelDeploymentSpec

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
    assert env["MODELDR_SERVE_MODEL_DIR"] == "/tmp/modeldr/models/tiny-bert"
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
    raw["model"]["source"] = "s3://bucket/bert"
    with pytest.raises(RenderError, match="s3:// is not supported"):
        render.model_volume(ModelDeploymentSpec.parse(raw))


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
