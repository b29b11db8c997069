"""What the haproxy provider writes: a config fragment per ModelDeployment and the runtime API
commands that move its servers (pure functions, no I/O; operator/traffic/haproxy.py does it).

The admin runs HAProxy in master-worker mode with the operator's fragment directory as one of
its `-f` arguments (docs/traffic.md). Each ModelDeployment gets one frontend (its
`traffic.haproxy.frontendPort` on the admin's bind address) and one backend: `balance` from the
spec, HAProxy's own HTTP health check on the server's readiness route, and a fixed number of
server slots per cluster named `<cluster>.<n>`. A slot holds one entry address of that cluster;
unused slots are in maintenance. Addresses, weights and drain move through the runtime API (no
reload: no connection is cut); only a change of the fragment's structure (a new
ModelDeployment, another port, balance or slot count) writes the file and reloads. The file is
rewritten after every runtime change too, so that a reload (this ModelDeployment's or
another's) starts from the servers as they are.

Every response carries `Modeldr-Cluster: <cluster>` (the answering server's slot name without
its number): the drill probe attributes each request to the cluster that served it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from modeldr.kube.haproxy import HAProxySettings
from modeldr.operator.traffic.base import ClusterTarget, Owner, TrafficError, TrafficTarget

MIN_SLOTS = 8
# HAProxy server weights run 0..256; a cluster's weight (0..100) is spread over its servers.
MAX_SERVER_WEIGHT = 256
READINESS_PATH = "/v2/health/ready"
# An unused slot needs some address; loopback port 1, never dialed (maintenance: no checks).
PARKED = ("127.0.0.1", 1)
STRUCTURE_MARK = "# structure "


def proxy_name(owner: Owner) -> str:
    """Frontend and backend name: namespace and name are DNS labels, '.' cannot occur."""
    return f"md.{owner.namespace}.{owner.name}"


def fragment_path(settings: HAProxySettings, owner: Owner) -> Path:
    return settings.config_dir / f"md.{owner.namespace}.{owner.name}.cfg"


def slot_count(target: TrafficTarget) -> int:
    """Slots per cluster: at least MIN_SLOTS, doubled until every cluster's addresses fit."""
    most = max((len(c.addresses) for c in target.clusters), default=0)
    slots = MIN_SLOTS
    while slots < most:
        slots *= 2
    return slots


def server_weight(cluster: ClusterTarget) -> int:
    """A cluster's weight (0..100) spread over its servers as HAProxy weights (0..256): the
    cluster's share of the requests is its weight over the sum, whatever its server count."""
    if cluster.weight <= 0 or not cluster.addresses:
        return 0
    each = round(cluster.weight * MAX_SERVER_WEIGHT / 100 / len(cluster.addresses))
    return max(1, min(MAX_SERVER_WEIGHT, each))


@dataclass(frozen=True)
class Slot:
    server: str  # "<cluster>.<n>"
    address: str
    port: int
    weight: int
    state: str  # runtime API state: ready, drain or maint


def checked_address(address: str) -> str:
    """An entry address as HAProxy gets it: only an IP address (it lands in a config line and
    a `;`-separated runtime command, so anything else could smuggle in more of either)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise TrafficError(f"entry address {address[:80]!r} is not an IP address") from None


def slots(target: TrafficTarget, count: int) -> list[Slot]:
    """Every server slot of the backend: each cluster's addresses in order, then parked ones.
    A cluster without weight drains (requests under way finish, new ones go elsewhere)."""
    result = []
    for cluster in target.clusters:
        weight = server_weight(cluster)
        state = "ready" if weight > 0 else "drain"
        for i in range(count):
            name = f"{cluster.cluster}.{i + 1}"
            if i < len(cluster.addresses):
                address = checked_address(cluster.addresses[i])
                result.append(Slot(name, address, target.port, weight, state))
            else:
                result.append(Slot(name, PARKED[0], PARKED[1], 0, "maint"))
    return result


def structure(
    owner: Owner, settings: HAProxySettings, balance: str, port: int, servers: list[str]
) -> str:
    """What only a reload can change; its digest marks the file."""
    text = "\n".join([proxy_name(owner), settings.bind_address, str(port), balance, *servers])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render(
    owner: Owner, settings: HAProxySettings, balance: str, frontend_port: int, all_slots: list[Slot]
) -> str:
    """The fragment: one frontend and one backend, every slot with its current state."""
    name = proxy_name(owner)
    mark = structure(owner, settings, balance, frontend_port, [s.server for s in all_slots])
    lines = [
        f"{STRUCTURE_MARK}{mark}",
        f"# Written by modeldr for ModelDeployment {owner.namespace}/{owner.name}; do not edit:",
        "# the operator rewrites it, and moves its servers through the runtime API.",
        f"frontend {name}",
        f"    bind {settings.bind_address}:{frontend_port}",
        "    mode http",
        f"    default_backend {name}",
        f"backend {name}",
        "    mode http",
        f"    balance {balance}",
        f"    option httpchk GET {READINESS_PATH}",
        "    http-check expect status 200",
        "    default-server inter 1s fall 2 rise 2 check",
        "    http-response set-header Modeldr-Cluster %[srv_name,field(1,.)]",
    ]
    for slot in all_slots:
        extra = {"ready": "", "drain": " drain", "maint": " disabled"}[slot.state]
        host = f"[{slot.address}]" if ":" in slot.address else slot.address
        lines.append(f"    server {slot.server} {host}:{slot.port} weight {slot.weight}{extra}")
    return "\n".join(lines) + "\n"


def file_structure(text: str) -> str | None:
    """The structure digest a fragment was written with (None: not one of ours)."""
    first = text.split("\n", 1)[0]
    return first[len(STRUCTURE_MARK) :] if first.startswith(STRUCTURE_MARK) else None


def commands(backend: str, all_slots: list[Slot]) -> list[str]:
    """Runtime API commands that bring a running backend's slots to `all_slots`; weight
    before state, so that a slot coming out of maintenance never serves at an old weight."""
    result = []
    for slot in all_slots:
        server = f"{backend}/{slot.server}"
        result.append(f"set server {server} addr {slot.address} port {slot.port}")
        result.append(f"set server {server} weight {slot.weight}")
        result.append(f"set server {server} state {slot.state}")
    return result


def bound_port(text: str) -> int | None:
    """The frontend port a fragment binds (to find another ModelDeployment's)."""
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "bind" and ":" in words[1]:
            port = words[1].rsplit(":", 1)[1]
            return int(port) if port.isdigit() else None
    return None
