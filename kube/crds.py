"""The CRDs generated from the models of modeldr.api: DrillPlan and DrillRun (crds/, which the
hub chart installs) and the node agent's NetworkFault (the agent chart's crds/).

The models are the only source: each CRD's schema, descriptions, defaults and CEL rules come
from its spec and status models (modeldr.api.schema); this module adds what is about the
resource rather than its fields: names, printer columns, the status subresource, the rules on
metadata. scripts/gen_drill_crds.py and scripts/gen_agent_crd.py write the files (`--check`:
exit 1 when a committed file differs); tests/unit/test_drills_spec.py and test_agent.py check
them. The ModelDeployment CRD is written by hand.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from modeldr.api import networkfault as NF
from modeldr.api.drillplan import PLAN_NAME, DrillPlanSpec, Msg
from modeldr.api.drillrun import DrillRunSpec
from modeldr.api.drillstatus import DrillPlanStatus, DrillRunStatus
from modeldr.api.schema import Rule, Schema, schema_of
from modeldr.kube.constants import (
    DRILL_PLAN_LABEL,
    DRILLPLAN_KIND,
    DRILLPLANS,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    VERSION,
)

# kopf's progress storage (status.kopf.progress): the only schemaless subtree, as in the
# ModelDeployment CRD, so nothing kopf writes is silently pruned.
KOPF_STATUS: Final[Schema] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


@dataclass(frozen=True)
class Column:
    """An additionalPrinterColumn; priority 1: shown by `kubectl get -o wide` only."""

    name: str
    type: str
    json_path: str
    description: str | None = None
    priority: int | None = None

    def schema(self) -> Schema:
        node: Schema = {"name": self.name, "type": self.type}
        if self.description:
            node["description"] = self.description
        node["jsonPath"] = self.json_path
        if self.priority is not None:
            node["priority"] = self.priority
        return node


AGE: Final = Column("Age", "date", ".metadata.creationTimestamp")


@dataclass(frozen=True)
class Crd:
    """One namespaced CRD of one served and stored version, with a status subresource."""

    path: str  # where it is committed, relative to the repository
    header: str  # the comment the file starts with
    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str | None = None
    rules: tuple[Rule, ...] = ()  # on the whole object (metadata)
    app: str = "modeldr"  # its app.kubernetes.io/name label
    kopf: bool = True  # kopf handles it: status.kopf is kopf's
    group: str = GROUP
    version: str = VERSION

    def schema(self) -> Schema:
        """The openAPIV3Schema."""
        status = schema_of(self.status, defaults=False)
        if self.kopf:
            status["properties"]["kopf"] = KOPF_STATUS
        node: Schema = {"type": "object"}
        if self.description:
            node["description"] = self.description
        node["required"] = ["spec"]
        node["properties"] = {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schema_of(self.spec),
            "status": status,
        }
        if self.rules:
            node["x-kubernetes-validations"] = [r.schema() for r in self.rules]
        return node

    def document(self) -> Schema:
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": f"{self.plural}.{self.group}",
                "labels": {
                    "app.kubernetes.io/name": self.app,
                    "app.kubernetes.io/part-of": "modeldr",
                },
            },
            "spec": {
                "group": self.group,
                "scope": "Namespaced",
                "names": {
                    "kind": self.kind,
                    "listKind": f"{self.kind}List",
                    "plural": self.plural,
                    "singular": self.kind.lower(),
                    "shortNames": list(self.short_names),
                    "categories": ["modeldr"],
                },
                "versions": [
                    {
                        "name": self.version,
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "additionalPrinterColumns": [c.schema() for c in self.columns],
                        "schema": {"openAPIV3Schema": self.schema()},
                    }
                ],
            },
        }

    def render(self) -> str:
        return self.header + yaml.dump(
            self.document(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
        )


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as the hand-written CRD."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # a schema used twice is written twice, never as a YAML anchor


DRILL_HEADER: Final = """\
# {kind}: {what}
# Field reference and validation rules: docs/crds.md; the contract: DRILLS.md.
#
# GENERATED from the models of modeldr.api (modeldr/kube/crds.py): do not edit by hand, change
# the models and run `.venv/bin/python scripts/gen_drill_crds.py` (`--check` in the tests).
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
        Column("Schedule", "string", ".spec.schedule", priority=1),
        Column("Suspend", "boolean", ".spec.suspend", priority=1),
    ),
    spec=DrillPlanSpec,
    status=DrillPlanStatus,
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
    description=f"DrillRun: one execution of a DrillPlan, like a Job under a CronJob; labelled "
    f"{DRILL_PLAN_LABEL}=<plan> and owned by the plan. Its status is the whole record of the run.",
)

DRILL_CRDS: Final = (DRILLPLAN, DRILLRUN)

# A member cluster's CRD, so in the agent chart only: crds/ is the hub chart's CRD directory
# (charts/modeldr/crds links to it, and helm installs every file below it).
NETWORKFAULT: Final = Crd(
    path=f"charts/modeldr-agent/crds/{NF.GROUP}_{NF.PLURAL}.yaml",
    header="""\
# NetworkFault: an order to the modeldr node agents of a member cluster (docs/agent.md).
#
# GENERATED from modeldr.api.networkfault (modeldr/kube/crds.py): do not edit by hand, change
# the models and run `.venv/bin/python scripts/gen_agent_crd.py` (`--check` in the tests).
# The operator writes spec; each node's agent writes its own entry of status.nodes.
""",
    kind=NF.KIND,
    plural=NF.PLURAL,
    short_names=(NF.SHORT_NAME,),
    columns=(
        Column("Effect", "string", ".spec.effect"),
        Column("Expires", "date", ".spec.expiresAt"),
        AGE,
    ),
    spec=NF.NetworkFaultSpec,
    status=NF.NetworkFaultStatus,
    app="modeldr-agent",
    kopf=False,  # the agent's own loop, not kopf
    group=NF.GROUP,
    version=NF.VERSION,
)

AGENT_CRDS: Final = (NETWORKFAULT,)


def render(crds: Iterable[Crd]) -> dict[str, str]:
    """The files to write: path (relative to the repository) -> text."""
    return {crd.path: crd.render() for crd in crds}


def write_or_check(
    root: Path, crds: Iterable[Crd], script: str, argv: list[str] | None = None
) -> int:
    """A generator's command line: write the files that changed, or with --check exit 1
    naming each file that is out of date."""
    parser = argparse.ArgumentParser(description=f"Write the CRDs that {script} generates.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render(crds).items():
        path = root / name
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {name}")
    for name in stale:
        print(f"{name} is out of date: run {script}")
    return 1 if stale else 0
