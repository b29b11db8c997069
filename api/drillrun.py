"""The DrillRun's spec (crds/modeldr.io_drillruns.yaml): the plan it belongs to, the plan's
spec copied at creation, abort and dry run; the CRD's transition rules on an update; and a
ValidationError worded in the apiserver's notation.

Strict like the plan's spec (modeldr.api.base.SpecModel).
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    ValidationError,
)

from modeldr.api.base import SpecModel, camel
from modeldr.api.drillplan import PLAN_NAME, DrillPlanSpec, Msg


class PlanRef(SpecModel):
    name: str = Field(max_length=52, pattern=PLAN_NAME)


class DrillRunSpec(SpecModel):
    plan_ref: PlanRef
    # The plan's spec, copied when the run is created (or, for a run created by hand with
    # planRef only, by the operator before it touches anything), so the run executes what it
    # says even if the plan changes meanwhile.
    plan: DrillPlanSpec | None = None
    # The plan's metadata.generation the snapshot was taken from: one run per generation.
    plan_generation: int | None = Field(default=None, ge=1)
    # Set by hand (kubectl patch) to stop the run: every fault is undone and the
    # run ends Aborted.
    abort: bool = False
    # Resolve every step's targets, who would act and what preflight finds, record it in
    # status.dryRun, touch nothing, and end Planned (or Error when the real run could not
    # start). A plan's spec.dryRun makes every run of it dry.
    dry_run: bool = False
    # The due time (RFC 3339) of the plan's schedule this run was started for; absent for a
    # run started by an apply or by hand.
    scheduled_time: str | None = Field(default=None, max_length=64)

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
