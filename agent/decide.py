"""What an agent should hold and report, from the orders it sees: pure, no I/O.

An order is held on this node while it has targets here, is not being deleted and has not
expired; an expired one is dropped by the agent itself, whatever the operator does (the
operator renews `expiresAt` while its step runs; a dead or partitioned operator stops
renewing, so the fault ends within one expiry period). A Latency order where the kernel has
no netem is never held: it is reported Unsupported, with the reason, and nothing is applied.
Where it has netem, an agent holds one Latency order at a time (tc, not nftables: `delay`);
a second one on the same node is refused while the first holds, with its name. An order that
expires more than MAX_EXPIRY_AHEAD_S ahead of the agent's clock is refused (`refused`,
reported Error): no order outlives its operator by more than that.

When the kernel refuses the one transaction of all rules, `isolate` finds the orders whose
rules the kernel refuses on their own, so that one bad order never keeps the others out.

An order is applied only when every target on this node is a pod running here, in the
order's namespace, carrying a ModelDeployment's label and not on the host's network
(`refused_targets`): an order naming the node's own address, a host-network pod (the
control plane, the agent itself), a pod of another namespace (DNS in kube-system, another
team's) or an address no pod here has is refused whole, with the reason per target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from modeldr.agent.rules import Rule
from modeldr.agent.tcrules import Delay
from modeldr.api.networkfault import (
    MAX_EXPIRY_AHEAD_S,
    MODEL_POD_LABEL,
    NodeReport,
    NodeState,
    Order,
)

MAX_AHEAD: Final = timedelta(seconds=MAX_EXPIRY_AHEAD_S)


@dataclass(frozen=True)
class Desired:
    rules: tuple[Rule, ...] = ()
    # order key -> (state, message) for orders this node answers but does not hold
    unsupported: dict[str, str] = field(default_factory=dict)
    expired: tuple[str, ...] = ()
    delay: Delay | None = None  # the Latency order held (tc netem), where netem exists
    # order key -> why it is refused (reported Error; nothing applied)
    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodFacts:
    """What the agent reads of a pod on its node to judge a target."""

    namespace: str
    name: str
    ips: tuple[str, ...]
    host_network: bool
    labels: Mapping[str, str] = field(default_factory=dict)


def refused_targets(
    order: Order, node: str, node_ip: str, pods: Sequence[PodFacts]
) -> dict[str, str]:
    """Target address on this node -> why the agent refuses it (empty: all are fine)."""
    by_ip: dict[str, list[PodFacts]] = {}
    for pod in pods:
        for ip in pod.ips:
            by_ip.setdefault(ip, []).append(pod)
    refused: dict[str, str] = {}
    for target in order.spec.targets_on(node):
        found = by_ip.get(target.ip, [])
        host = [p for p in found if p.host_network]
        if target.ip == node_ip or host:
            refused[target.ip] = f"the address of node {node} itself (host network), not a pod's"
        elif not found:
            refused[target.ip] = f"no pod running on node {node} has this address"
        else:
            pod = found[0]
            where = f"pod {pod.namespace}/{pod.name}"
            if pod.namespace != order.namespace:
                refused[target.ip] = f"{where} is not in the order's namespace {order.namespace}"
            elif MODEL_POD_LABEL not in pod.labels:
                refused[target.ip] = f"{where} is not a ModelDeployment's (no {MODEL_POD_LABEL})"
            elif target.pod and target.pod != pod.name:
                refused[target.ip] = f"the address is {where}'s, not pod {target.pod}'s"
    return refused


def refusal_message(refused: Mapping[str, str]) -> str:
    listed = "; ".join(f"{ip}: {why}" for ip, why in sorted(refused.items()))
    return f"targets refused, nothing applied for this order: {listed}"


def rule_of(order: Order, node: str) -> Rule:
    spec = order.spec
    ips = tuple(sorted({t.ip for t in spec.targets_on(node)}))
    return Rule(
        key=order.key,
        effect=spec.effect,
        ips=ips,
        ports=tuple(spec.ports),
        loss_percent=spec.loss_percent,
        expires_at=spec.expires_at,
    )


def delay_of(order: Order, node: str) -> Delay:
    spec = order.spec
    assert spec.latency_milliseconds is not None
    ips = tuple(sorted({t.ip for t in spec.targets_on(node)}))
    return Delay(order.key, ips, spec.latency_milliseconds, spec.jitter_milliseconds or None)


def desired(
    orders: Iterable[Order],
    node: str,
    now: datetime,
    latency: str | None,
    holding: str | None = None,
    refused_by_check: Mapping[str, str] | None = None,
) -> Desired:
    """`latency`: None when this node can delay packets, else why it cannot. `holding`: the
    key of the Latency order the agent holds now, which keeps its place while it lives
    (else the first by key is taken), so a second order never displaces the first.
    `refused_by_check`: order key -> why its targets are refused (never held)."""
    rules: list[Rule] = []
    unsupported: dict[str, str] = {}
    refused: dict[str, str] = {}
    expired: list[str] = []
    delays: list[Order] = []
    for order in orders:
        if order.deleting or not order.spec.targets_on(node):
            continue
        if order.expired(now):
            expired.append(order.key)
            continue
        if order.spec.expires_at - now > MAX_AHEAD:
            refused[order.key] = too_far_ahead(order, now)
            continue
        if refused_by_check and order.key in refused_by_check:
            refused[order.key] = refused_by_check[order.key]
            continue
        if order.spec.effect == "Latency" and latency is not None:
            unsupported[order.key] = latency
            continue
        if order.spec.effect == "Latency" and order.spec.ports:
            # The u32 filters match addresses only: a delay for some ports would be made
            # for all of them, a wider fault than asked.
            unsupported[order.key] = (
                "Latency is made for all of a target's traffic; an order with ports is not "
                "supported by this agent; nothing was applied"
            )
            continue
        if order.spec.effect == "Latency":
            delays.append(order)
            continue
        rules.append(rule_of(order, node))
    delay: Delay | None = None
    if delays:
        delays.sort(key=lambda o: (o.key != holding, o.key))
        delay = delay_of(delays[0], node)
        for other in delays[1:]:
            unsupported[other.key] = (
                f"the agent of node {node} makes one Latency order at a time and "
                f"{delay.key} holds it; nothing was applied for this one"
            )
    return Desired(
        tuple(sorted(rules, key=lambda r: r.key)),
        unsupported,
        tuple(sorted(expired)),
        delay,
        refused,
    )


def too_far_ahead(order: Order, now: datetime) -> str:
    ahead = (order.spec.expires_at - now).total_seconds()
    return (
        f"expiresAt is {ahead:.0f} s ahead of this agent's clock; an agent holds an order at "
        f"most {MAX_EXPIRY_AHEAD_S} s ahead (the operator renews it while its step runs); "
        "nothing was applied"
    )


def isolate(
    rules: Sequence[Rule], refusal: Callable[[tuple[Rule, ...]], str | None]
) -> tuple[tuple[Rule, ...], dict[str, str]]:
    """After the kernel refused the transaction of all `rules`: the rules it takes, and per
    order key why it refuses that order's rules on their own. `refusal(rules)` checks a
    transaction without applying it: None when the kernel would take it, else why not."""
    good: list[Rule] = []
    bad: dict[str, str] = {}
    for rule in rules:
        why = refusal((rule,))
        if why is None:
            good.append(rule)
        else:
            bad[rule.key] = why
    return tuple(good), bad


def next_expiry(orders: Iterable[Order], held: Desired) -> datetime | None:
    """The earliest expiresAt of the orders held: when the agent must look again."""
    keys = {r.key for r in held.rules} | ({held.delay.key} if held.delay else set())
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


def report_needed(
    current: NodeReport | None, state: NodeState, message: str, targets: list[str]
) -> bool:
    """Write the node's report only when what it says changed (not on every tick)."""
    return (
        current is None
        or current.state != state
        or current.message != message
        or current.targets != targets
    )
