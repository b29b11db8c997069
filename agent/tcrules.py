"""The tc command builder for Latency: pure argv lists from an order and the kernel's
listings, no I/O (agent/tc.py runs them). Standard library only.

Where the delay is made: on the egress of the device the node routes each target through
(`ip -j route get <ip>`: a pod's host-side veth on a real node, `lo` in the sandbox), so
what reaches the pod is delayed (one way: the round trip gains the delay once). Per device:

    tc qdisc add dev D root handle 1a1a: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1
    tc qdisc add dev D parent 1a1a:4 handle <tag>: netem limit 10000 delay 200ms [50ms]
    tc filter add dev D parent 1a1a: protocol ip prio 1 u32 match ip dst <ip>/32 flowid 1a1a:4
    tc filter add dev D parent 1a1a: protocol ipv6 prio 2 u32 match ip6 dst <ip>/128 flowid 1a1a:4

The priomap is pfifo_fast's (bands 0-2 only), so ordinary traffic keeps its usual priority
and never meets band 4; only the u32 filters send the targets there. `1a1a:` is modeldr's
root handle; the netem leaf's handle is the agent's own tag (from its chain base), because
agents that share a kernel (the sandbox's) would otherwise not know whose a root is.

Never someone else's qdisc: a device whose root is not a kernel default (handle 0: and
noqueue, pfifo_fast, fq_codel or mq) nor this agent's is refused, with nothing changed.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

HANDLE: Final = "1a1a:"
BANDS: Final = 4
BAND_CLASS: Final = "1a1a:4"  # band 4 of 4 (classes are 1-based: 1a1a:1 .. 1a1a:4)
# pfifo_fast's priomap: every TOS priority to bands 0-2 (classes :1-:3), none to band 4.
PRIOMAP: Final = ("1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1")
# netem holds delayed packets in its own queue (1000 by default): 200 ms at 10k packets/s
# would overflow it and turn a delay into a loss.
NETEM_LIMIT: Final = 10_000
DEFAULT_KINDS: Final = frozenset({"noqueue", "pfifo_fast", "fq_codel", "mq"})
DEFAULT_HANDLE: Final = "0:"  # what the kernel's own root qdiscs show; an admin's get 8001:..
_RESERVED_MAJORS: Final = frozenset({0x0000, 0x1A1A, 0xFFFF})  # none, ours, ingress

Owner = Literal["default", "mine", "other-agent", "half-made", "foreign", "absent"]


@dataclass(frozen=True)
class Delay:
    """The one Latency order an agent holds on its node, as the builder needs it."""

    key: str  # Order.key
    ips: tuple[str, ...]
    delay_ms: int
    jitter_ms: int | None = None


@dataclass(frozen=True)
class Root:
    device: str
    kind: str
    handle: str
    leaf: str | None  # the handle of the qdisc on 1a1a:4, when the root is modeldr's


@dataclass(frozen=True)
class Plan:
    # device -> its commands, devices and commands in a fixed order (golden-tested)
    commands: dict[str, list[list[str]]]


@dataclass(frozen=True)
class Refusal:
    why: str


def netem_tag(base: str) -> str:
    """The netem leaf's handle for the agent with this chain base: `xxxx:`, never 0, ours
    (1a1a) or ffff (ingress)."""
    digest = hashlib.sha256(base.encode()).digest()
    major = int.from_bytes(digest[:2], "big")
    while major in _RESERVED_MAJORS:
        major = (major + 1) & 0xFFFF
    return f"{major:x}:"


def route_device(listing: Any, ip: str) -> str:
    """The device of `ip -j route get <ip>`'s answer; ValueError with why when none."""
    entry = listing[0] if isinstance(listing, list) and listing else None
    if not isinstance(entry, dict):
        raise ValueError(f"no route to {ip}: ip route get answered {listing!r:.200}")
    kind = entry.get("type")
    if kind in ("unreachable", "blackhole", "prohibit", "throw"):
        raise ValueError(f"the route to {ip} is {kind}")
    device = entry.get("dev")
    if not isinstance(device, str) or not device:
        raise ValueError(f"the route to {ip} names no device: {entry!r:.200}")
    return device


def roots(listing: Any) -> dict[str, Root]:
    """Each device's root qdisc from `tc -j qdisc show`, with the leaf on 1a1a:4 if any."""
    items = [q for q in listing if isinstance(q, dict)] if isinstance(listing, list) else []
    leaves = {
        q.get("dev"): str(q.get("handle", ""))
        for q in items
        if q.get("parent") == BAND_CLASS and isinstance(q.get("dev"), str)
    }
    out: dict[str, Root] = {}
    for q in items:
        device = q.get("dev")
        if q.get("root") is True and isinstance(device, str):
            handle = str(q.get("handle", ""))
            leaf = leaves.get(device) if handle == HANDLE else None
            out[device] = Root(device, str(q.get("kind", "")), handle, leaf)
    return out


def owner(root: Root | None, tag: str) -> Owner:
    if root is None:
        return "absent"
    if root.handle == HANDLE:
        if root.leaf is None:
            return "half-made"  # an agent died between the root and its netem
        return "mine" if root.leaf == tag else "other-agent"
    if root.kind in DEFAULT_KINDS and root.handle == DEFAULT_HANDLE:
        return "default"
    return "foreign"


def _by_family(ips: Sequence[str]) -> list[str]:
    def order(ip: str) -> tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]:
        address = ipaddress.ip_address(ip)
        return address.version, address

    return sorted(set(ips), key=order)


def delete_command(device: str) -> list[str]:
    """Removes modeldr's root (and with it the netem leaf and the filters); the kernel puts
    its default back. Only ever run where owner() said mine (or half-made at start)."""
    return ["tc", "qdisc", "del", "dev", device, "root", "handle", HANDLE]


def device_commands(device: str, delay: Delay, ips: Sequence[str], tag: str) -> list[list[str]]:
    """The commands that make `delay` for `ips` on `device` (whose root is a default one)."""
    dev = ["dev", device]
    netem = ["netem", "limit", str(NETEM_LIMIT), "delay", f"{delay.delay_ms}ms"]
    if delay.jitter_ms:
        netem.append(f"{delay.jitter_ms}ms")
    commands = [
        [
            "tc",
            "qdisc",
            "add",
            *dev,
            "root",
            "handle",
            HANDLE,
            "prio",
            "bands",
            str(BANDS),
            "priomap",
            *PRIOMAP,
        ],
        ["tc", "qdisc", "add", *dev, "parent", BAND_CLASS, "handle", tag, *netem],
    ]
    for ip in _by_family(ips):
        if ipaddress.ip_address(ip).version == 4:
            match = ["protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", f"{ip}/32"]
        else:
            match = ["protocol", "ipv6", "prio", "2", "u32", "match", "ip6", "dst", f"{ip}/128"]
        commands.append(
            ["tc", "filter", "add", *dev, "parent", HANDLE, *match, "flowid", BAND_CLASS]
        )
    return commands


def plan(delay: Delay, routes: Mapping[str, str], listing: Any, tag: str) -> Plan | Refusal:
    """What to run for `delay`, given each target's device (`routes`: ip -> device) and
    `tc -j qdisc show`; a Refusal (nothing to run) when any device is not free for it."""
    by_device: dict[str, list[str]] = {}
    for ip in _by_family(delay.ips):
        by_device.setdefault(routes[ip], []).append(ip)
    found = roots(listing)
    refused: list[str] = []
    commands: dict[str, list[list[str]]] = {}
    for device in sorted(by_device):
        root = found.get(device)
        who = owner(root, tag)
        if who in ("default", "mine"):
            # A root of this agent's own is a leftover: replaced (its order is not held).
            first = [delete_command(device)] if who == "mine" else []
            commands[device] = first + device_commands(device, delay, by_device[device], tag)
        elif who == "absent":
            refused.append(f"device {device} is not in tc's listing")
        elif who == "other-agent":
            refused.append(
                f"device {device} already carries another modeldr agent's delay (netem "
                f"{root.leaf if root else '?'} under {HANDLE}; one Latency per device)"
            )
        elif who == "half-made":
            refused.append(f"device {device} has a modeldr root qdisc {HANDLE} without netem")
        else:
            assert root is not None
            refused.append(
                f"device {device} has a root qdisc of someone else ({root.kind} {root.handle}); "
                "the agent never replaces it"
            )
    if refused:
        return Refusal("; ".join(refused) + "; nothing was changed")
    return Plan(commands)


def stale(listing: Any, tag: str, backed: set[str], half_made: bool) -> list[str]:
    """The devices whose modeldr root to delete: this agent's where no held order backs the
    device, and (at start only, `half_made`) roots left without netem by an agent that died
    mid-way. Another agent's, a default or a foreign qdisc: never."""
    out = []
    for device, root in sorted(roots(listing).items()):
        who = owner(root, tag)
        if (who == "mine" and device not in backed) or (half_made and who == "half-made"):
            out.append(device)
    return out
