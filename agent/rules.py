"""The nftables rule builder: pure text from the orders an agent holds, no I/O.

Every agent writes into ONE table (`inet modeldr_agent`), in base chains of its own (named
after its cluster and node, so that several agents sharing a kernel, as the sandbox's do,
never touch each other's rules). One script replaces the agent's chains whole: nft applies a
file as one transaction, so the kernel holds the old rules or the new ones, never a mix.

Where a packet is judged, once each:
- `output`: the host sends to a target (on a real node: host processes; on loopback, every
  client of the sandbox's pods);
- `input`: the host receives from a target (the pod's answers to host processes);
- `forward`: routed pod traffic (a real node's veths: other nodes and clients off the node).
Traffic between the node's own address and the targets is exempt: a kubelet's probes come
from there, so a partition leaves the pods Ready while clients cannot reach them, which is
what a real partition between clients and pods looks like (issue 11: failover.probe).

A packet between two targets on the same loopback passes output and input, so a PacketLoss
between two target pods of one sandbox node is applied twice (a partition is unaffected).

The kernel ends every fault at its expiry by itself: an order's addresses are elements of
named sets (`<base>_<8 hex of the key>_4` / `_6`, `flags timeout`) whose elements carry the
time left until the order's `expiresAt`, and the rules match those sets. When an element's
timeout runs out the kernel drops it and the rules match nothing, even with the agent dead
(SIGKILLed, its node cut from the apiserver). A renewal re-applies the transaction, which
flushes each set and adds its elements again with the new time left.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

TABLE: Final = "modeldr_agent"
FAMILY: Final = "inet"
# Before the usual filter chains (priority 0), so a drill's drop is not skipped by an accept
# in another table; a drop anywhere still drops.
PRIORITY: Final = -10
HOOKS: Final = ("forward", "output", "input")
COMMENT_PREFIX: Final = "modeldr:"
#: The kernel's limit on chain names is generous, older nft tools' less so: stay short.
MAX_CHAIN_BASE: Final = 24


@dataclass(frozen=True)
class Rule:
    """One order's effect on this node, as the builder needs it."""

    key: str  # Order.key: namespace/name/uid, written into each rule's comment
    effect: str  # NetworkPartition | PacketLoss (Latency is tc's: tcrules.py)
    ips: tuple[str, ...]
    ports: tuple[int, ...] = ()
    loss_percent: int | None = None
    # The order's expiresAt: the kernel drops the addresses then (set element timeouts).
    expires_at: datetime = field(kw_only=True)


def chain_base(cluster: str, node: str) -> str:
    """The agent's chain-name stem: `<cluster>_<node>` in [a-z0-9_], hashed when long."""
    raw = f"{cluster}_{node}".lower()
    safe = re.sub(r"[^a-z0-9]", "_", raw)
    if len(safe) <= MAX_CHAIN_BASE:
        return safe
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{safe[: MAX_CHAIN_BASE - 9]}_{digest}"


def chains(base: str) -> dict[str, str]:
    """hook -> chain name."""
    return {hook: f"{base}_{hook}" for hook in HOOKS}


def set_name(base: str, key: str, family: str) -> str:
    """The named set holding one order's addresses of one family (`ip` -> _4, `ip6` -> _6)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{base}_{digest}_{'4' if family == 'ip' else '6'}"


def _set_pattern(base: str) -> re.Pattern[str]:
    # Whole-name match: an agent whose base is a prefix of another's never claims its sets.
    return re.compile(rf"{re.escape(base)}_[0-9a-f]{{8}}_[46]")


def timeout_ms(expires_at: datetime, now: datetime) -> int:
    """The time left until expiry, rounded up to the millisecond (at least 1)."""
    return max(1, math.ceil((expires_at - now).total_seconds() * 1000))


def comment(key: str) -> str:
    return f"{COMMENT_PREFIX}{key}"[:127]


def _set(items: Sequence[str | int]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


def _families(ips: Sequence[str]) -> dict[str, list[str]]:
    """nft's address keyword (ip / ip6) -> the order's addresses of that family, sorted."""
    out: dict[str, list[str]] = {}
    for ip in sorted(ips, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a))):
        family = "ip" if ipaddress.ip_address(ip).version == 4 else "ip6"
        out.setdefault(family, []).append(ip)
    return out


def _verdict(rule: Rule) -> str:
    if rule.effect == "NetworkPartition":
        return "drop"
    if rule.effect == "PacketLoss":
        assert rule.loss_percent is not None
        return f"numgen random mod 100 < {rule.loss_percent} drop"
    # Latency is made with tc netem (tcrules.py), never here: marking packets would rewrite
    # marks a CNI relies on.
    raise ValueError(f"unknown effect {rule.effect!r}")


def rule_lines(rule: Rule, base: str, node_ip: str) -> list[str]:
    """The `add rule` lines of one order, in a fixed order (golden-tested)."""
    names = chains(base)
    verdict = _verdict(rule)
    note = f'comment "{comment(rule.key)}"'
    node_family = "ip" if ipaddress.ip_address(node_ip).version == 4 else "ip6"

    def port(direction: str) -> str:
        if not rule.ports:
            return ""
        return f" meta l4proto {{ tcp, udp }} th {direction} {_set(rule.ports)}"

    lines: list[str] = []
    for family in _families(rule.ips):
        named = f"@{set_name(base, rule.key, family)}"
        to = f"{family} daddr {named}"
        back = f"{family} saddr {named}"
        # The node's own address talks to its pods unhindered (the kubelet's probes).
        mine = family == node_family
        exempt_src = f" {family} saddr != {node_ip}" if mine else ""
        exempt_dst = f" {family} daddr != {node_ip}" if mine else ""
        dport, sport = port("dport"), port("sport")
        for chain, match in (
            ("output", f"{to}{exempt_src}{dport}"),
            ("input", f"{back}{exempt_dst}{sport}"),
            ("forward", f"{to}{dport}"),
            ("forward", f"{back}{sport}"),
        ):
            lines.append(f"add rule {FAMILY} {TABLE} {names[chain]} {match} {verdict} {note}")
    return lines


def _declare(name: str) -> str:
    kind = "ipv4_addr" if name.endswith("_4") else "ipv6_addr"
    return f"add set {FAMILY} {TABLE} {name} {{ type {kind}; flags timeout; }}"


def _delete_sets(names: Iterable[str]) -> list[str]:
    # Declared first, so that a delete cannot fail on a set that is already gone.
    lines: list[str] = []
    for name in sorted(names):
        lines += [_declare(name), f"delete set {FAMILY} {TABLE} {name}"]
    return lines


def set_lines(rule: Rule, base: str, now: datetime) -> list[str]:
    """The sets of one order, emptied and filled again with the time left until expiry."""
    left = timeout_ms(rule.expires_at, now)
    lines: list[str] = []
    for family, ips in _families(rule.ips).items():
        name = set_name(base, rule.key, family)
        elements = ", ".join(f"{ip} timeout {left}ms" for ip in ips)
        lines += [
            _declare(name),
            f"flush set {FAMILY} {TABLE} {name}",
            f"add element {FAMILY} {TABLE} {name} {{ {elements} }}",
        ]
    return lines


def script(
    base: str,
    node_ip: str,
    rules: Sequence[Rule],
    now: datetime,
    present_sets: Iterable[str] = (),
) -> str:
    """The nft script that makes this agent's chains and sets hold exactly `rules` (none:
    the chains are deleted). `present_sets`: this agent's sets the kernel holds now
    (`owned_sets`); those no rule needs are deleted, after the chains that named them were
    flushed in the same transaction. Other agents' chains and sets are left alone."""
    names = chains(base)
    lines = [f"add table {FAMILY} {TABLE}"]
    for hook, name in names.items():
        lines.append(
            f"add chain {FAMILY} {TABLE} {name} "
            f"{{ type filter hook {hook} priority {PRIORITY}; policy accept; }}"
        )
    wanted = {set_name(base, r.key, f) for r in rules for f in _families(r.ips)}
    gone = set(present_sets) - wanted
    if not rules:
        # Created above so that the deletes cannot fail on a chain that was never there.
        lines += [f"delete chain {FAMILY} {TABLE} {name}" for name in names.values()]
        lines += _delete_sets(gone)
        return "\n".join(lines) + "\n"
    lines += [f"flush chain {FAMILY} {TABLE} {name}" for name in names.values()]
    lines += _delete_sets(gone)
    for rule in sorted(rules, key=lambda r: r.key):
        lines += set_lines(rule, base, now)
        lines += rule_lines(rule, base, node_ip)
    return "\n".join(lines) + "\n"


def delete_table_script() -> str:
    """What `sandbox down` (and an uninstall) runs: the whole table, every agent's chains."""
    return f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"


def owned_sets(listing: Mapping[str, Any], base: str) -> set[str]:
    """The names of this agent's sets in `nft -j list table`."""
    pattern = _set_pattern(base)
    names: set[str] = set()
    items = listing.get("nftables") if isinstance(listing, dict) else None
    for item in items if isinstance(items, list) else []:
        found = item.get("set") if isinstance(item, dict) else None
        name = found.get("name") if isinstance(found, dict) else None
        if isinstance(name, str) and pattern.fullmatch(name):
            names.add(name)
    return names


def owned_keys(listing: Mapping[str, Any], base: str) -> set[str]:
    """The order keys named in the comments of this agent's rules, from `nft -j list table`."""
    mine = set(chains(base).values())
    keys: set[str] = set()
    items = listing.get("nftables") if isinstance(listing, dict) else None
    for item in items if isinstance(items, list) else []:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict) or rule.get("chain") not in mine:
            continue
        text = rule.get("comment")
        if isinstance(text, str) and text.startswith(COMMENT_PREFIX):
            keys.add(text[len(COMMENT_PREFIX) :])
    return keys
