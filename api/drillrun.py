"""The DrillRun's spec (crds/modeldr.io_drillruns.yaml is generated from it and `drillstatus`):
the plan it belongs to, the plan's spec copied at creation, abort and dry run; the CRD's
transition rules on an update (CEL on the models, `run_update_errors` off-cluster); and a
ValidationError worded in the apiserver's notation.

Strict like the plan's spec (modeldr.api.base.SpecModel).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from modeldr.api.base import SpecModel, camel
from modeldr.api.drillplan import PLAN_NAME, DrillPlanSpec, Msg
from modeldr.api.schema import Int64, Rule, validations


class PlanRef(SpecModel):
    """The DrillPlan, in the run's namespace."""

    model_config = ConfigDict(
        json_schema_extra=validations(Rule("self == oldSelf", Msg.PLAN_REF_IMMUTABLE))
    )

    name: str = Field(max_length=52, pattern=PLAN_NAME, description="The DrillPlan's name.")


class DrillRunSpec(SpecModel):
    """Which plan it runs, and the snapshot of that plan's spec it executes."""

    # The transition rules (oldSelf: on an update); run_update_errors below applies them.
    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "!has(oldSelf.plan) || (has(self.plan) && self.plan == oldSelf.plan)",
                Msg.PLAN_SNAPSHOT_IMMUTABLE,
                field_path=".plan",
            ),
            Rule(
                "!has(oldSelf.planGeneration)"
                " || (has(self.planGeneration) && self.planGeneration == oldSelf.planGeneration)",
                Msg.PLAN_GENERATION_IMMUTABLE,
                field_path=".planGeneration",
            ),
            Rule("!oldSelf.abort || self.abort", Msg.ABORT_IRREVERSIBLE, field_path=".abort"),
        )
    )

    plan_ref: PlanRef
    plan: DrillPlanSpec | None = Field(
        default=None,
        description="The plan's spec, copied when the run is created (for a run created by "
        "hand with planRef only, by the operator before it touches anything), so the run "
        "executes what it says even if the plan changes.",
    )
    # One run per plan generation.
    plan_generation: Int64 | None = Field(
        default=None,
        ge=1,
        description="The plan's metadata.generation the snapshot was taken from.",
    )
    # Set by hand (kubectl patch).
    abort: bool = Field(
        default=False,
        description="Set to true to stop the run: every fault is undone and the run ends "
        "Aborted. Final.",
    )
    # A plan's spec.dryRun makes every run of it dry.
    dry_run: bool = Field(
        default=False,
        description="true: resolve every step's targets, who would act and what the preflight "
        "finds (status.dryRun), touch nothing, and end Planned (Error when the real run could "
        "not start).",
    )
    scheduled_time: str | None = Field(
        default=None,
        max_length=64,
        description="The due time (RFC 3339) of the plan's schedule this run was started for; "
        "absent for a run started by an apply or by hand.",
    )

    @classmethod
    def parse(cls, spec: Any) -> DrillRunSpec:
        return cls.model_validate(dict(spec))


def run_update_errors(old: DrillRunSpec, new: DrillRunSpec) -> list[str]:
    """The CRD's transition rules on a DrillRun spec update (the apiserver checks them with
    oldSelf): what a run executes and which plan it belongs to never change, an abort is
    final."""
    errors = []
    if new.plan_ref != old.plan_ref:
        errors.append(f"spec.planRef: {Msg.PLAN_REF_IMMUTABLE}")
    if old.plan is not None and new.plan != old.plan:
        errors.append(f"spec.plan: {Msg.PLAN_SNAPSHOT_IMMUTABLE}")
    if old.plan_generation is not None and new.plan_generation != old.plan_generation:
        errors.append(f"spec.planGeneration: {Msg.PLAN_GENERATION_IMMUTABLE}")
    if old.abort and not new.abort:
        errors.append(f"spec.abort: {Msg.ABORT_IRREVERSIBLE}")
    return errors


def spec_errors(exc: ValidationError, prefix: str = "spec") -> list[str]:
    """A ValidationError as `path: message` lines in the apiserver's notation
    (`spec.steps[1].fault: ...`), for a CLI dry-run that reads like `kubectl apply`."""
    lines = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            # pydantic names a field that was absent (a rule with validate_default) by its
            # Python name: spell it as the document does.
            path += f"[{part}]" if isinstance(part, int) else f".{camel(str(part))}"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return lines
