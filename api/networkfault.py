"""The node agent's order: a namespaced `NetworkFault` (modeldr.io/v1alpha1) in a member
cluster. The operator writes the spec (targets, effect, expiry); each agent writes its own
node's entry of `status.nodes`. The CRD (charts/modeldr-agent/crds/modeldr.io_networkfaults.yaml)
is generated from these models (modeldr/kube/crds.py, scripts/gen_agent_crd.py): each field's
description is the CRD's, and the spec's CEL rules sit beside the validator that applies them.

Pure: models, names and the expiry rule; no I/O.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from modeldr.api.base import ApiModel
from modeldr.api.schema import OpenAPI, Rule, validations

GROUP: Final = "modeldr.io"
VERSION: Final = "v1alpha1"
KIND: Final = "NetworkFault"
PLURAL: Final = "networkfaults"
SINGULAR: Final = "networkfault"
SHORT_NAME: Final = "nf"

Effect = Literal["NetworkPartition", "PacketLoss", "Latency"]
EFFECTS: Final[tuple[Effect, ...]] = ("NetworkPartition", "PacketLoss", "Latency")
NodeState = Literal["Applied", "Unsupported", "Error", "Removed"]
NODE_STATES: Final[tuple[NodeState, ...]] = ("Applied", "Unsupported", "Error", "Removed")

MAX_TARGETS: Final = 256
MAX_PORTS: Final = 16
MAX_NODES: Final = 256
MAX_LATENCY_MS: Final = 60_000
NODE_NAME_MAX: Final = 253
MESSAGE_MAX: Final = 1024
REASON_MAX: Final = 256
#: The label every pod of a ModelDeployment carries (kube.constants.NAME_LABEL): the agent
#: makes faults only for pods that carry it.
MODEL_POD_LABEL: Final = "modeldr.io/name"
#: An agent holds an order only while its expiresAt is at most this far ahead of the agent's
#: clock: an order cannot outlive a dead operator by more than this, whatever it says. The
#: operator's orders are at most its inject allowance plus faultExpirySeconds ahead (38 s).
MAX_EXPIRY_AHEAD_S: Final = 300

#: Labels the operator puts on its orders (who made it; the agent does not read them).
DRILL_RUN_LABEL: Final = "modeldr.io/drill-run"
FAULT_ID_LABEL: Final = "modeldr.io/fault-id"


# The CEL rules of the spec, word for word the validator's messages.
LOSS_PERCENT_RULE: Final = "lossPercent is required for PacketLoss and only for it"
LATENCY_RULE: Final = "latencyMilliseconds is required for Latency and only for it"
JITTER_RULE: Final = "jitterMilliseconds is only for Latency"
NODES_RULE: Final = "every target's node must be listed in nodes"
# One address as nft and the apiserver's CEL `ip()` read it: a zone (`fe80::1%eth0`) or a
# second spelling of the same address would reach the kernel as something else, or fail the
# agent's one transaction for every order of the node.
IP_RULE: Final = (
    "ip must be one IP address in canonical form, without a zone and not IPv4-mapped "
    "(e.g. 10.1.2.3, fd00::5)"
)

NodeName = Annotated[str, StringConstraints(min_length=1, max_length=NODE_NAME_MAX)]
# _ports checks the range off-cluster, with its own message.
Port = Annotated[int, OpenAPI(minimum=1, maximum=65535)]


class Target(ApiModel):
    """One pod the order is about: its IP and the node it runs on."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("isIP(self.ip) && ip.isCanonical(self.ip)", IP_RULE, field_path=".ip")
        )
    )

    ip: str = Field(min_length=2, max_length=45, description="The pod's IP.")
    node: NodeName = Field(description="The node it runs on.")
    pod: str | None = Field(
        default=None, max_length=253, description="The pod's name, for people reading the order."
    )

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return canonical_ip(value)


def canonical_ip(value: str) -> str:
    """`value` when it is one address in canonical form (IP_RULE), else ValueError."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{IP_RULE}; got {value!r}") from None
    mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
    if "%" in value or mapped or str(address) != value:
        raise ValueError(f"{IP_RULE}; got {value!r}")
    return value


class NetworkFaultSpec(ApiModel):
    """The order, written by the operator."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "(self.effect == 'PacketLoss') == has(self.lossPercent)",
                LOSS_PERCENT_RULE,
                field_path=".lossPercent",
            ),
            Rule(
                "(self.effect == 'Latency') == has(self.latencyMilliseconds)",
                LATENCY_RULE,
                field_path=".latencyMilliseconds",
            ),
            Rule(
                "!has(self.jitterMilliseconds) || self.effect == 'Latency'",
                JITTER_RULE,
                field_path=".jitterMilliseconds",
            ),
            Rule("self.targets.all(t, t.node in self.nodes)", NODES_RULE, field_path=".nodes"),
        )
    )

    effect: Effect = Field(
        description="NetworkPartition: all traffic to and from the targets dropped (the node's "
        "own address exempt); PacketLoss: lossPercent of it dropped; Latency: delayed (tc "
        "netem, where the kernel has it)."
    )
    targets: list[Target] = Field(
        min_length=1, max_length=MAX_TARGETS, description="The pods the order is about."
    )
    # Empty: every port and protocol (a partition cuts the pod off whole).
    ports: list[Port] = Field(
        default_factory=list,
        max_length=MAX_PORTS,
        description="Only these ports (TCP and UDP, either direction); empty: all traffic.",
    )
    loss_percent: int | None = Field(
        default=None, ge=1, le=100, description="PacketLoss: percent of packets dropped."
    )
    latency_milliseconds: int | None = Field(
        default=None, ge=1, le=MAX_LATENCY_MS, description="Latency: delay added to each packet."
    )
    jitter_milliseconds: int | None = Field(
        default=None, ge=0, le=MAX_LATENCY_MS, description="Latency: jitter around the delay."
    )
    nodes: list[NodeName] = Field(
        min_length=1,
        max_length=MAX_NODES,
        description="The nodes whose agents must report (the targets' nodes).",
    )
    expires_at: datetime = Field(
        description="After this instant every agent undoes the order by itself; the operator "
        f"renews it while the drill step runs. An agent refuses an order that expires more "
        f"than {MAX_EXPIRY_AHEAD_S} s ahead of its clock."
    )

    @field_validator("ports")
    @classmethod
    def _ports(cls, ports: list[int]) -> list[int]:
        if any(not 1 <= p <= 65535 for p in ports):
            raise ValueError("ports must be between 1 and 65535")
        return sorted(set(ports))

    @model_validator(mode="after")
    def _parameters(self) -> NetworkFaultSpec:
        if (self.effect == "PacketLoss") != (self.loss_percent is not None):
            raise ValueError(LOSS_PERCENT_RULE)
        if (self.effect == "Latency") != (self.latency_milliseconds is not None):
            raise ValueError(LATENCY_RULE)
        if self.jitter_milliseconds is not None and self.effect != "Latency":
            raise ValueError(JITTER_RULE)
        if self.expires_at.tzinfo is None:
            raise ValueError("expiresAt needs a time zone")
        missing = {t.node for t in self.targets} - set(self.nodes)
        if missing:
            raise ValueError(f"targets on nodes not listed in nodes: {', '.join(sorted(missing))}")
        return self

    def targets_on(self, node: str) -> list[Target]:
        return [t for t in self.targets if t.node == node]


Reason = Annotated[str, StringConstraints(max_length=REASON_MAX)]


class NodeReport(ApiModel):
    """What one node's agent did with the order."""

    state: NodeState = Field(
        description="Applied: in force on this node; Unsupported: cannot be made here (message "
        "says why; nothing applied); Error: applying failed; Removed: the agent removed it when "
        "it expired."
    )
    message: str = Field(default="", max_length=MESSAGE_MAX)
    targets: list[Annotated[str, StringConstraints(max_length=45)]] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description="The target addresses in force on this node.",
    )
    refused: dict[str, Reason] = Field(
        default_factory=dict,
        max_length=MAX_TARGETS,
        description="Target address -> why this node's agent refuses it (it applies an order "
        "only when every target on its node is a pod of the order's namespace, on this node, "
        "carrying the label modeldr.io/name, not on the host's network).",
    )
    applied_at: datetime | None = None
    removed_at: datetime | None = Field(
        default=None, description="When the agent removed the expired order's rules."
    )
    updated_at: datetime | None = None
    agent: str = Field(
        default="", max_length=NODE_NAME_MAX, description="The reporting agent's pod."
    )


class NetworkFaultStatus(ApiModel):
    # Keyed by node name, so that each agent merge-patches only its own entry.
    nodes: dict[str, NodeReport] = Field(
        default_factory=dict, max_length=MAX_NODES, description="Per node name: its agent's report."
    )


class Order(ApiModel):
    """A NetworkFault as read from the API: identity, spec, status."""

    namespace: str
    name: str
    uid: str
    deleting: bool = False
    spec: NetworkFaultSpec
    status: NetworkFaultStatus = Field(default_factory=NetworkFaultStatus)

    @property
    def key(self) -> str:
        """Identity across restarts and in rule comments: namespace/name/uid."""
        return f"{self.namespace}/{self.name}/{self.uid}"

    def expired(self, now: datetime) -> bool:
        return now >= self.spec.expires_at


def order_name(fault_id: str) -> str:
    """The NetworkFault a drill's fault is given as (journal ids are DNS-safe)."""
    return f"modeldr-{fault_id}".lower()
