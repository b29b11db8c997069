"""What an agent should hold and report, from the orders it sees: pure, no I/O.

An order is held on this node while it has targets here, is not being deleted and has not
expired; an expired one is dropped by the agent itself, whatever the operator does (the
operator renews `expiresAt` while its step runs; a dead or partitioned operator stops
renewing, so the fault ends within one expiry period). A Latency order where the kernel has
no netem is never held: it is reported Unsupported, with the reason, and nothing is applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from modeldr.agent.order import NodeReport, NodeState, Order
from modeldr.agent.rules import Rule

# Packet marks of Latency orders (tc's fw filter picks them): a fixed high prefix, so they
# are recognisable and unlikely to collide with a CNI's marks.
MARK_PREFIX = 0x4D440000


@dataclass(frozen=True)
class Desired:
    rules: tuple[Rule, ...] = ()
    # order key -> (state, message) for orders this node answers but does not hold
    unsupported: dict[str, str] = field(default_factory=dict)
    expired: tuple[str, ...] = ()


def mark_of(key: str) -> int:
    return MARK_PREFIX | int(hashlib.sha256(key.encode()).hexdigest()[:4], 16)


def rule_of(order: Order, node: str) -> Rule:
    spec = order.spec
    ips = tuple(sorted({t.ip for t in spec.targets_on(node)}))
    return Rule(
        key=order.key,
        effect=spec.effect,
        ips=ips,
        ports=tuple(spec.ports),
        loss_percent=spec.loss_percent,
        mark=mark_of(order.key) if spec.effect == "Latency" else None,
    )


def desired(orders: Iterable[Order], node: str, now: datetime, latency: str | None) -> Desired:
    """`latency`: None when this node can delay packets, else why it cannot."""
    rules: list[Rule] = []
    unsupported: dict[str, str] = {}
    expired: list[str] = []
    for order in orders:
        if order.deleting or not order.spec.targets_on(node):
            continue
        if order.expired(now):
            expired.append(order.key)
            continue
        if order.spec.effect == "Latency" and latency is not None:
            unsupported[order.key] = latency
            continue
        rules.append(rule_of(order, node))
    return Desired(tuple(sorted(rules, key=lambda r: r.key)), unsupported, tuple(sorted(expired)))


def next_expiry(orders: Iterable[Order], held: Desired) -> datetime | None:
    """The earliest expiresAt of the orders held: when the agent must look again."""
    keys = {r.key for r in held.rules}
    expiries = [o.spec.expires_at for o in orders if o.key in keys]
    return min(expiries) if expiries else None


def wait_seconds(expiry: datetime | None, now: datetime, tick_s: float) -> float:
    """Until the agent's next look: one tick, or less when a held order expires sooner."""
    if expiry is None:
        return tick_s
    return max(0.0, min(tick_s, (expiry - now).total_seconds()))


def stale(kernel_keys: Iterable[str], held: Iterable[str]) -> set[str]:
    """Orders whose rules the kernel has in this agent's chains but no live order backs
    (the agent died and its order was deleted or expired meanwhile): removed at start."""
    return set(kernel_keys) - set(held)


def report_needed(current: NodeReport | None, state: NodeState, message: str,
                  targets: list[str]) -> bool:  # fmt: skip
    """Write the node's report only when what it says changed (not on every tick)."""
    return (
        current is None
        or current.state != state
        or current.message != message
        or current.targets != targets
    )
