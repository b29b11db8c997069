"""The example drill plans parse as plans (the same rules the CRD enforces), and each targets
a ModelDeployment example of its folder that opted in to drills."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldr.drills.spec import DrillPlanSpec
from modeldr.operator.constants import DRILLS_ENABLED, DRILLS_LABEL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("folder", ["sandbox", "gpu-cluster"])
def test_example_plan_targets_an_opted_in_example(folder: str) -> None:
    plan = yaml.safe_load((EXAMPLES / folder / "drillplan.yaml").read_text())
    spec = DrillPlanSpec.parse(plan["spec"])
    md = yaml.safe_load((EXAMPLES / folder / "modeldeployment.yaml").read_text())
    assert spec.target.model_deployment == md["metadata"]["name"]
    assert md["metadata"]["labels"][DRILLS_LABEL] == DRILLS_ENABLED
    assert spec.steps, "a plan without steps tests nothing"


def test_the_sandbox_plan_uses_the_sandbox_golden_set() -> None:
    plan = yaml.safe_load((EXAMPLES / "sandbox/drillplan.yaml").read_text())
    golden = yaml.safe_load((EXAMPLES / "sandbox/golden-set.yaml").read_text())
    ref = DrillPlanSpec.parse(plan["spec"]).model_checks
    assert ref is not None
    assert ref.golden_set.config_map_ref.name == golden["metadata"]["name"]
    assert ref.golden_set.config_map_ref.key in golden["data"]
