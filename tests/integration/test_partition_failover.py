"""The partition drill (examples/sandbox/drillplan-partition.yaml's step) through the node
agents on the sandbox, with the client probe (`failover.probe`, on by default) switched off
and on:

- off (`enabled: false`), the operator keeps the traffic on the partitioned primary (the API
  says all is well): the drill ends Failed, ExpectationFailed, a finding, not an engine
  error;
- on, the primary fails its checks as clients see it and the standby takes over within the
  step's RTO: Passed.

The module's ModelDeployment is its own (test_drills' shared fixture in this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.modeldeployments import client_probe, status
from tests.integration.test_drills import (  # the drill helpers and the shared fixtures
    apply_plan,
    drill_ns,
    explain,
    finished,
    plan,
    serving_before_and_after,
)

pytestmark = pytest.mark.integration
__all__ = ["drill_ns", "serving_before_and_after"]  # fixtures used by name

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/sandbox/drillplan-partition.yaml"


def partition_step(seconds: int) -> dict[str, Any]:
    """The example's partition step, shortened."""
    example = yaml.safe_load(EXAMPLE.read_text())
    step = dict(example["spec"]["steps"][0])
    assert step["fault"] == {"type": "NetworkPartition", "cluster": "primary", "mode": "all"}
    assert step["expect"]["activeCluster"] == "standby"
    step["durationSeconds"] = seconds
    return step


def test_a_partition_is_not_detected_with_the_client_probe_off(drill_ns: str) -> None:
    assert (status(drill_ns).get("activeCluster")) == "primary"
    with client_probe(drill_ns, {"enabled": False}):
        name = apply_plan(drill_ns, plan("partition-unseen", [partition_step(8)]))
        s = finished(drill_ns, name, timeout=120)
    assert s["phase"] == "Failed" and s["reason"] == "ExpectationFailed", explain(s)
    step = s["steps"][0]
    assert step["phase"] == "Failed" and step["activeCluster"] == "primary", step
    assert "standby" in step["message"] and step["errorRatio"] > 0.5, step
    assert [f["state"] for f in s["faults"]] == ["Undone"], s["faults"]


def test_with_the_client_probe_a_partition_fails_over_to_the_standby(drill_ns: str) -> None:
    with client_probe(drill_ns, {"timeoutMilliseconds": 500}):
        name = apply_plan(drill_ns, plan("partition-seen", [partition_step(15)]))
        s = finished(drill_ns, name, timeout=120)
        assert s["phase"] == "Passed", explain(s)
        step = s["steps"][0]
        assert step["activeCluster"] == "standby", step
        print(f"\npartition drill with the client probe: RTO {step['rtoSeconds']:.2f} s")
        failover = status(drill_ns).get("lastFailover") or {}
        assert failover.get("automatic") is True and failover.get("to") == "standby", failover
