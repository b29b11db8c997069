"""The CRDs generated from the models of modeldr.api: the machinery (`Crd`: schema from the
models, names, printer columns, the status subresource, rendering, `--check`) and the node
agent's NetworkFault (the agent chart's crds/); the DrillPlan and DrillRun CRDs (crds/, which
the hub chart installs) are declared beside their fault drivers, in modeldr.drills.crds.

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

from modeldr.api import modelbackup as MB
from modeldr.api import networkfault as NF
from modeldr.api import tenantpolicy as TP
from modeldr.api.schema import Rule, Schema, schema_of
from modeldr.kube.constants import (
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
    """One CRD of one served and stored version; namespaced unless `scope` says otherwise,
    with a status subresource when it has a status model."""

    path: str  # where it is committed, relative to the repository
    header: str  # the comment the file starts with
    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]
    spec: type[BaseModel]
    status: type[BaseModel] | None
    description: str | None = None
    rules: tuple[Rule, ...] = ()  # on the whole object (metadata)
    app: str = "modeldr"  # its app.kubernetes.io/name label
    kopf: bool = True  # kopf handles it: status.kopf is kopf's
    group: str = GROUP
    version: str = VERSION
    scope: str = "Namespaced"
    # Descriptions the models cannot give themselves (what a component below them knows,
    # e.g. the fault drivers' prose): a dotted path from the object's root ("[]": the items
    # of an array) -> its description.
    describe: tuple[tuple[str, str], ...] = ()

    def schema(self) -> Schema:
        """The openAPIV3Schema."""
        node = self._schema()
        for path, text in self.describe:
            _at(node, path)["description"] = text
        return node

    def _schema(self) -> Schema:
        node: Schema = {"type": "object"}
        if self.description:
            node["description"] = self.description
        node["required"] = ["spec"]
        node["properties"] = {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schema_of(self.spec),
        }
        if self.status is not None:
            status = schema_of(self.status, defaults=False)
            if self.kopf:
                status["properties"]["kopf"] = KOPF_STATUS
            node["properties"]["status"] = status
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
                "scope": self.scope,
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
                        **({"subresources": {"status": {}}} if self.status else {}),
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

# The admin's TenantPolicy (TENANCY.md), cluster-scoped, in the hub chart's crds/.
TENANTPOLICY: Final = Crd(
    path=f"crds/{GROUP}_{TP.PLURAL}.yaml",
    header="""\
# TenantPolicy: what the hub namespaces it covers may do (TENANCY.md, docs/tenancy.md).
#
# GENERATED from modeldr.api.tenantpolicy (modeldr/kube/crds.py): do not edit by hand, change
# the models and run `.venv/bin/python scripts/gen_drill_crds.py` (`--check` in the tests).
# Cluster-scoped and admin-owned: the chart's tenant roles (modeldr-view, modeldr-edit) grant
# no write on it. No status: the operator reads policies, never writes them.
""",
    kind=TP.KIND,
    plural=TP.PLURAL,
    short_names=(TP.SHORT_NAME,),
    columns=(
        Column("Namespaces", "string", ".spec.namespaces", "Hub namespaces covered"),
        Column("Faults", "string", ".spec.drills.faults", "Fault types allowed"),
        Column("Frozen", "boolean", ".spec.drills.frozen", "Drills frozen"),
        AGE,
    ),
    spec=TP.TenantPolicySpec,
    status=None,
    description="TenantPolicy: what the hub namespaces it covers may do: where their "
    "ModelDeployments place pods, which model sources and images they use, what their drills "
    "may break. A namespace no policy covers may do nothing.",
    kopf=False,
    scope="Cluster",
)


MODELBACKUP: Final = Crd(
    path=f"crds/{GROUP}_{MB.PLURAL}.yaml",
    header="""\
# ModelBackup: a ModelDeployment's artifact backed up on schedules (full, incremental,
# differential) and mirrored to the standby region's store (docs/backups.md).
#
# GENERATED from modeldr.api.modelbackup (modeldr/kube/crds.py): do not edit by hand, change
# the models and run `.venv/bin/python scripts/gen_drill_crds.py` (`--check` in the tests).
""",
    kind=MB.KIND,
    plural=MB.PLURAL,
    short_names=(MB.SHORT_NAME,),
    columns=(
        Column("Model", "string", ".spec.modelDeployment", "ModelDeployment backed up"),
        Column("Phase", "string", ".status.phase"),
        Column("Last Backup", "date", ".status.lastBackup", "Newest backup"),
        Column("Standby Copy", "date", ".status.standbyCopy.mirroredAt", "Standby copy made"),
        Column("Backups", "integer", ".status.backups", "Backups kept"),
        AGE,
        Column("Next", "string", ".status.nextRun", priority=1),
        Column("Message", "string", ".status.message", priority=1),
    ),
    spec=MB.ModelBackupSpec,
    status=MB.ModelBackupStatus,
    description="ModelBackup: a ModelDeployment's model artifact backed up on schedules to a "
    "backup store (full, incremental, differential; content-addressed, digest-verified "
    "manifests; retention by count) and mirrored to the standby region's store.",
)


def _at(node: Schema, path: str) -> Schema:
    """The schema node at a dotted path ("spec.steps[].fault.type"); KeyError if absent."""
    for part in path.split("."):
        array = part.endswith("[]")
        node = node["properties"][part.removesuffix("[]")]
        if array:
            node = node["items"]
    return node


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
