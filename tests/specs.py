"""A minimal valid ModelDeployment spec for tests of pure logic and providers."""

from __future__ import annotations

from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec


def minimal_spec_dict(name: str = "bert", **overrides: Any) -> dict[str, Any]:
    """Only the required fields: replicas 1, hot standby, namespace `ml` in both members;
    top-level keys overridable."""
    spec: dict[str, Any] = {
        "model": {
            "name": name,
            "task": "sequence-classification",
            "source": "file:///tmp/m",
            "expectedDigest": "sha256:" + "0" * 64,
        },
        "runtime": {"image": "modeldr/serving:dev"},
        "replicas": 1,
        "clusters": {
            "primary": {"cluster": "primary", "namespace": "ml"},
            "standby": {"cluster": "standby", "namespace": "ml", "mode": "hot"},
        },
    }
    spec.update(overrides)
    return spec


def minimal_spec(name: str = "bert", **overrides: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.parse(minimal_spec_dict(name, **overrides))
