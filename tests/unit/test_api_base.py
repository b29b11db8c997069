"""The one base of the CRD models (modeldr.api.base): one alias rule, strict specs, lenient
statuses, messages cut to the CRDs' bound."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldr.api.base import MESSAGE_MAX_LENGTH, ApiModel, SpecModel, camel, truncate
from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import DrillRunStatus, StepStatus
from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.api.networkfault import NetworkFaultSpec


def test_one_alias_rule_with_the_contracts_acronyms() -> None:
    assert camel("wait_for_target_seconds") == "waitForTargetSeconds"
    assert camel("max_rto_seconds") == "maxRTOSeconds"
    assert camel("gateway_api") == "gatewayAPI"


@pytest.mark.parametrize(
    "model", [DrillPlanSpec, DrillRunStatus, ModelDeploymentSpec, NetworkFaultSpec]
)
def test_every_crd_model_stands_on_the_one_base(model: type[ApiModel]) -> None:
    assert issubclass(model, ApiModel)
    assert model.model_config.get("alias_generator") is camel


def test_specs_are_strict_and_refuse_unknown_fields() -> None:
    class Probe(SpecModel):
        rate_per_second: int

    assert Probe.model_validate({"ratePerSecond": 5}).rate_per_second == 5
    with pytest.raises(ValidationError):
        Probe.model_validate({"ratePerSecond": "5"})
    with pytest.raises(ValidationError):
        Probe.model_validate({"ratePerSecond": 5, "ratePerSecnod": 6})


def test_a_status_message_is_cut_to_the_crds_bound() -> None:
    long = "x" * (MESSAGE_MAX_LENGTH + 100)
    assert truncate(long) == "x" * MESSAGE_MAX_LENGTH
    assert truncate("short") == "short"
    step = StepStatus.model_validate({"name": "kill", "message": long})
    assert step.message == "x" * MESSAGE_MAX_LENGTH
    # Lenient: a newer engine's field is ignored, not an error.
    assert StepStatus.model_validate({"name": "kill", "fromTheFuture": 1}).name == "kill"
    assert step.dump()["message"] == "x" * MESSAGE_MAX_LENGTH
