"""The fault interface: choose targets, inject, undo — all blocking (the engine runs them in
worker threads) and idempotent, and `undo` works from the journal record alone, so a new
leader can undo what a dead one injected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kubernetes import client

from modeldr.api.drillplan import Expect, Fault
from modeldr.api.drillstatus import FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills.refusal import Refusal
from modeldr.drills.select import Candidate, Mode, SelectionError, select_pods
from modeldr.kube.constants import Role, selector_labels
from modeldr.kube.members import MemberRegistry

# Member API calls of a fault: a dead member must fail the call in seconds, not minutes.
TIMEOUT = (2.0, 10.0)


@dataclass(frozen=True)
class Placement:
    """Where the drill's target runs in the member cluster a fault is aimed at."""

    hub_namespace: str
    name: str  # the ModelDeployment's
    role: Role
    cluster: str
    namespace: str  # the member namespace

    @property
    def label_selector(self) -> str:
        return ",".join(
            f"{k}={v}" for k, v in selector_labels(self.name, self.hub_namespace).items()
        )


@dataclass(frozen=True)
class Choice:
    """What a fault will do: its targets and what undo needs besides the record."""

    targets: tuple[str, ...]
    parameters: dict[str, str] = field(default_factory=dict)
    seed: int | None = None


@dataclass(frozen=True)
class Aim:
    """What a fault is aimed at when its step starts: the placement, the plan's fault, the
    run's seed and the blast radius (the share of the cluster's pods it may take)."""

    where: Placement
    fault: Fault
    seed: int
    max_pods_percent: int


@dataclass(frozen=True)
class Observation:
    """What a fault saw of the system's answer to it by the step's end (e.g. a corrupted
    replica refused to serve); it joins the step's own assessment, the worse phase wins."""

    phase: Phase
    reason: str
    message: str


@runtime_checkable
class Observing(Protocol):
    """A driver whose fault has an expected answer of its own to check before undo."""

    def observe(self, members: MemberRegistry, record: FaultRecord) -> Observation:
        """Read (never change) what the fault's targets show now."""


@runtime_checkable
class Undoing(Protocol):
    """A driver whose undo is itself measured (ModelStoreLoss: the restore): what it said,
    against the step's expectations, once the step's undo ran."""

    def after_undo(self, record: FaultRecord, expect: Expect) -> Observation:
        """Read the record the undo completed (never the clusters)."""


class FaultDriver(Protocol):
    """A fault type's maker; it owns its facts: who makes it, whether the member's Secret must
    name an infrastructure provider (checked before anything is touched), and, for a
    renewable one (drills.renewal.Renewable), how long its inject may take."""

    # Who makes and undoes it: "member-api", "agent", or the infrastructure provider's kind.
    provider: str
    needs_infrastructure: bool

    def describe(self, fault_type: str) -> str:
        """What the fault does and how it is undone, in a clause (the CRD's prose)."""

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        """Choose the targets (reads only); Refusal when none or too many match."""

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        """Make the fault as the record says (targets, parameters); idempotent."""

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        """Put back what the record says was done; idempotent, from the record alone."""


def choose_pods(members: MemberRegistry, aim: Aim) -> tuple[str, ...]:
    """The model's pods a pod-level fault takes: the plan's mode and value over the pods in
    the aimed cluster, drawn with the run's seed, within the blast radius."""
    where, fault = aim.where, aim.fault
    try:
        chosen = select_pods(
            model_pods(members, where),
            Mode(fault.mode),
            fault.value,
            aim.seed,
            max_pods_percent=aim.max_pods_percent,
            what=f"pods of {where.name} in {where.cluster}",
        )
    except SelectionError as exc:
        raise Refusal(exc.reason, exc.message) from None
    return chosen.targets


def member_api(members: MemberRegistry, cluster: str) -> client.ApiClient:
    return members.get(cluster).api


def model_pods(members: MemberRegistry, where: Placement) -> list[Candidate]:
    """The model's pods in the member that are not on their way out."""
    core = client.CoreV1Api(member_api(members, where.cluster))
    pods = core.list_namespaced_pod(
        where.namespace, label_selector=where.label_selector, _request_timeout=TIMEOUT
    )
    return [
        Candidate(pod.metadata.name, pod.spec.node_name)
        for pod in pods.items
        if pod.metadata.deletion_timestamp is None
        and (pod.status.phase or "") not in ("Succeeded", "Failed")
    ]
