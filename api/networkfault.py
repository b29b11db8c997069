"""The node agent's order: a namespaced `NetworkFault` (modeldr.io/v1alpha1) in a member
cluster. The operator writes the spec (targets, effect, expiry); each agent writes its own
node's entry of `status.nodes`. The CRD (crds/modeldr.io_networkfaults.yaml, and the agent
chart's copy) is generated from these models by scripts/gen_agent_crd.py.

Pure: models, names and the expiry rule; no I/O.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from modeldr.api.base import ApiModel

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

#: Labels the operator puts on its orders (who made it; the agent does not read them).
DRILL_RUN_LABEL: Final = "modeldr.io/drill-run"
FAULT_ID_LABEL: Final = "modeldr.io/fault-id"


class Target(ApiModel):
    """One pod the order is about: its IP and the node it runs on."""

    ip: str = Field(max_length=45)
    node: str = Field(min_length=1, max_length=NODE_NAME_MAX)
    pod: str | None = Field(default=None, max_length=253)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))  # raises on anything but one address


class NetworkFaultSpec(ApiModel):
    effect: Effect
    targets: list[Target] = Field(min_length=1, max_length=MAX_TARGETS)
    # Empty: every port and protocol (a partition cuts the pod off whole).
    ports: list[int] = Field(default_factory=list, max_length=MAX_PORTS)
    loss_percent: int | None = Field(default=None, ge=1, le=100)
    latency_milliseconds: int | None = Field(default=None, ge=1, le=MAX_LATENCY_MS)
    jitter_milliseconds: int | None = Field(default=None, ge=0, le=MAX_LATENCY_MS)
    # The nodes whose agents must answer (the targets' nodes).
    nodes: list[str] = Field(min_length=1, max_length=MAX_NODES)
    # After this instant every agent undoes the order by itself; the operator renews it.
    expires_at: datetime

    @field_validator("ports")
    @classmethod
    def _ports(cls, ports: list[int]) -> list[int]:
        if any(not 1 <= p <= 65535 for p in ports):
            raise ValueError("ports must be between 1 and 65535")
        return sorted(set(ports))

    @model_validator(mode="after")
    def _parameters(self) -> NetworkFaultSpec:
        if (self.effect == "PacketLoss") != (self.loss_percent is not None):
            raise ValueError("lossPercent is required for PacketLoss and only for it")
        if (self.effect == "Latency") != (self.latency_milliseconds is not None):
            raise ValueError("latencyMilliseconds is required for Latency and only for it")
        if self.jitter_milliseconds is not None and self.effect != "Latency":
            raise ValueError("jitterMilliseconds is only for Latency")
        if self.expires_at.tzinfo is None:
            raise ValueError("expiresAt needs a time zone")
        missing = {t.node for t in self.targets} - set(self.nodes)
        if missing:
            raise ValueError(f"targets on nodes not listed in nodes: {', '.join(sorted(missing))}")
        return self

    def targets_on(self, node: str) -> list[Target]:
        return [t for t in self.targets if t.node == node]


class NodeReport(ApiModel):
    """What one node's agent did with the order."""

    state: NodeState
    message: str = Field(default="", max_length=MESSAGE_MAX)
    targets: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)  # IPs applied
    applied_at: datetime | None = None
    removed_at: datetime | None = None
    updated_at: datetime | None = None
    agent: str = Field(default="", max_length=NODE_NAME_MAX)  # the reporting agent's pod


class NetworkFaultStatus(ApiModel):
    # Keyed by node name, so that each agent merge-patches only its own entry.
    nodes: dict[str, NodeReport] = Field(default_factory=dict)


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
