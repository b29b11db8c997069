"""The DrillPlan and DrillRun CRDs (crds/, which the hub chart installs), declared beside the
fault drivers: their schema comes from the models of modeldr.api (modeldr.kube.crds does the
work), the prose of `fault.type` from the drivers' registry, so a new fault type is described
where it is made. scripts/gen_drill_crds.py writes the files; `--check` keeps them honest."""

from __future__ import annotations

from typing import Final

from modeldr.api.drillplan import PLAN_NAME, DrillPlanSpec, Msg
from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.drillstatus import DrillPlanStatus, DrillRunStatus
from modeldr.api.schema import Rule
from modeldr.drills.faults.registry import fault_type_prose
from modeldr.kube.constants import (
    DRILL_PLAN_LABEL,
    DRILLPLAN_KIND,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
)
from modeldr.kube.crds import AGE, MODELBACKUP, TENANTPOLICY, Column, Crd

FAULT_TYPE_PROSE: Final = fault_type_prose()

DRILL_HEADER: Final = """\
# {kind}: {what}
# Field reference and validation rules: docs/crds.md; the contract: DRILLS.md.
#
# GENERATED from the models of modeldr.api and the fault drivers' descriptions
# (modeldr/drills/crds.py): do not edit by hand, change them and run
# `.venv/bin/python scripts/gen_drill_crds.py` (`--check` in the tests).
# Like the ModelDeployment CRD, this file is the single source of truth: charts/modeldr/crds is
# a symlink to this directory. Cross-field rules are CEL x-kubernetes-validations whose
# messages name the field; every list is bounded so their cost is too.
"""

DRILLPLAN: Final = Crd(
    path=f"crds/{GROUP}_{DRILLPLANS}.yaml",
    header=DRILL_HEADER.format(
        kind=DRILLPLAN_KIND, what="what a drill of a ModelDeployment breaks and what must hold."
    ),
    kind=DRILLPLAN_KIND,
    plural=DRILLPLANS,
    short_names=("dp",),
    columns=(
        Column("Target", "string", ".spec.target.modelDeployment", "ModelDeployment drilled"),
        Column("Last Run", "string", ".status.lastRun.name", "Most recent DrillRun"),
        Column("Verdict", "string", ".status.lastRun.phase", "Phase of the most recent run"),
        AGE,
        Column("Pass Rate", "number", ".status.passRate.ratio", "Latest game day", priority=1),
        Column("Schedule", "string", ".spec.schedule", priority=1),
        Column("Suspend", "boolean", ".spec.suspend", priority=1),
    ),
    spec=DrillPlanSpec,
    status=DrillPlanStatus,
    describe=(("spec.steps[].fault.type", FAULT_TYPE_PROSE),),
    description="DrillPlan: what to break in a ModelDeployment, for how long, and what must "
    "hold. Applying a plan without a schedule starts one DrillRun per spec generation.",
    rules=(Rule(f"self.metadata.name.matches('{PLAN_NAME}')", Msg.PLAN_NAME),),
)

DRILLRUN: Final = Crd(
    path=f"crds/{GROUP}_{DRILLRUNS}.yaml",
    header=DRILL_HEADER.format(
        kind=DRILLRUN_KIND, what="one execution of a DrillPlan and its whole record."
    ),
    kind=DRILLRUN_KIND,
    plural=DRILLRUNS,
    short_names=("drun",),
    columns=(
        Column("Plan", "string", ".spec.planRef.name", "DrillPlan executed"),
        Column("Phase", "string", ".status.phase", "Pending, Running or the verdict"),
        Column("Step", "string", ".status.currentStep", "Step in progress"),
        Column("RTO", "number", ".status.rtoSeconds", "Worst client-observed RTO, seconds"),
        AGE,
        Column("Reason", "string", ".status.reason", priority=1),
        Column("Active", "string", ".status.activeCluster", priority=1),
    ),
    spec=DrillRunSpec,
    status=DrillRunStatus,
    describe=(("spec.plan.steps[].fault.type", FAULT_TYPE_PROSE),),
    description=f"DrillRun: one execution of a DrillPlan, like a Job under a CronJob; labelled "
    f"{DRILL_PLAN_LABEL}=<plan> and owned by the plan. Its status is the whole record of the run.",
)

DRILL_CRDS: Final = (DRILLPLAN, DRILLRUN)
# What scripts/gen_drill_crds.py writes into crds/ (the hub chart's): the drills' and the
# admin's TenantPolicy.
HUB_CRDS: Final = (*DRILL_CRDS, TENANTPOLICY, MODELBACKUP)
