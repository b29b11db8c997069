"""The example drill plans parse as plans (the same rules the CRD enforces), and each targets
a ModelDeployment example of its folder that opted in to drills."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.kube.constants import DRILLS_ENABLED, DRILLS_LABEL

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


SANDBOX_PLANS = sorted((EXAMPLES / "sandbox").glob("drillplan*.yaml"))


@pytest.mark.parametrize("path", SANDBOX_PLANS, ids=lambda p: p.name)
def test_every_sandbox_plan_parses_and_targets_the_sandbox_example(path: Path) -> None:
    spec = DrillPlanSpec.parse(yaml.safe_load(path.read_text())["spec"])
    # The active-active and autoscaling plans drill their own examples; every other the main one.
    suffix = next((s for s in ("-active-active", "-autoscaling") if s in path.name), "")
    example = "modeldeployment" + suffix
    md = yaml.safe_load((EXAMPLES / f"sandbox/{example}.yaml").read_text())
    assert spec.target.model_deployment == md["metadata"]["name"]
    assert spec.steps, "a plan without steps tests nothing"


def test_the_active_active_plan_expects_one_cluster_then_both() -> None:
    plan = yaml.safe_load((EXAMPLES / "sandbox/drillplan-active-active.yaml").read_text())
    spec = DrillPlanSpec.parse(plan["spec"])
    assert [s.expect.active_clusters for s in spec.steps] == ["one", "both", "both"]
    assert spec.steps[2].action is not None and spec.steps[2].action.type == "Load"
    md = yaml.safe_load((EXAMPLES / "sandbox/modeldeployment-active-active.yaml").read_text())
    hold_down = md["spec"]["failover"]["failback"]["holdDownSeconds"]
    assert spec.steps[1].duration_seconds > hold_down  # the weight comes back within the step


def test_the_gpu_loss_plan_takes_one_primary_gpu_node_and_expects_no_failover() -> None:
    plan = yaml.safe_load((EXAMPLES / "sandbox/drillplan-gpu-loss.yaml").read_text())
    spec = DrillPlanSpec.parse(plan["spec"])
    faults = [s.fault for s in spec.steps if s.fault is not None]
    assert [(f.type, f.cluster, f.mode) for f in faults] == [("GPULoss", "primary", "one")]
    assert all(s.expect.active_cluster == "unchanged" for s in spec.steps)


def test_the_packet_loss_plan_expects_no_failover_and_a_bounded_error_ratio() -> None:
    plan = yaml.safe_load((EXAMPLES / "sandbox/drillplan-packet-loss.yaml").read_text())
    spec = DrillPlanSpec.parse(plan["spec"])
    [lossy] = [s for s in spec.steps if s.fault is not None]
    assert lossy.fault is not None
    assert (lossy.fault.type, lossy.fault.cluster, lossy.fault.mode) == (
        "PacketLoss",
        "primary",
        "one",
    )
    assert lossy.fault.loss_percent is not None and 0 < lossy.fault.loss_percent < 100
    assert lossy.expect.active_cluster == "unchanged"
    assert lossy.expect.max_error_ratio is not None and lossy.expect.max_error_ratio < 0.5
    assert all(s.expect.active_cluster == "unchanged" for s in spec.steps)
    assert spec.fault_expiry_seconds <= 30


def test_the_autoscaling_plan_expects_the_standby_to_take_the_primarys_replicas() -> None:
    plan = yaml.safe_load((EXAMPLES / "sandbox/drillplan-autoscaling.yaml").read_text())
    spec = DrillPlanSpec.parse(plan["spec"])
    scaled_out, outage, _ = spec.steps
    md = yaml.safe_load((EXAMPLES / "sandbox/modeldeployment-autoscaling.yaml").read_text())
    autoscaling = md["spec"]["autoscaling"]
    assert scaled_out.expect.min_replicas is not None
    assert scaled_out.expect.min_replicas.primary == 2
    assert outage.fault is not None and outage.fault.type == "ClusterOutage"
    assert outage.expect.min_replicas is not None
    assert outage.expect.min_replicas.standby == 2
    assert autoscaling["standby"]["maxReplicas"] >= autoscaling["primary"]["maxReplicas"]
