"""The infrastructure provider for kind clusters: real `NodeFailure` and `ClusterOutage` faults
made with the node containers themselves (docs/infrastructure-webhook.md, "The kind provider").

The HTTP protocol, the state file, idempotency, renewal, rollback and the expiry loop are the
sandbox provider's (`sandbox.webhook_server.Webhook`); only the actions differ:

* a member cluster `primary` is the kind cluster `<prefix>primary` (prefix `modeldr-`), its
  nodes the containers labelled `io.x-k8s.kind.cluster=<prefix>primary` (Kubernetes node
  name = container name). The hub is never a member: its nodes are never touched.
* `NodeFailure`: the node loses power: `docker kill` (SIGKILL, no graceful stop) of the named
  node's container, in effect once the container is no longer running. Undo: `docker start`
  with its old address on the kind network pinned first (Docker would otherwise hand out the
  next free one: the other nodes route its pod range via the old one, and kubeadm wrote it into
  the kubelet's flags), then its networking as it was before the kill: the routes to the other
  nodes' pod ranges (`scripts/kind.sh network`, `scripts/kind-demo.sh`) and the pod
  masquerading rules (`kindtools.offline`), which live in the node's network namespace and
  die with it; the CNI config lives in the container's /etc and survives. Should the address
  still change (taken meanwhile), the undo's answer and log say so and the other nodes' routes
  to its pod range are moved to the new address.
* `ClusterOutage`: the region goes dark: `docker pause` of every running node container of
  the member (apiserver and pods freeze: connections hang and time out). Undo: `docker
  unpause` of every paused one.

    python -m kindtools.infra serve [--host H]... [--port P] [--state FILE]   # foreground
    python -m kindtools.infra start|stop|url|status                          # the daemon
    python -m kindtools.infra token           # the bearer token (for the member Secrets)
    python -m kindtools.infra undo-all        # every fault in the state file (kind.sh down)

Every call but GET /healthz needs `Authorization: Bearer <token>`, the token of
`.kind/infra.token` (made on first use, mode 0600): every pod of every kind cluster reaches the
gateway, so none of them may make a fault without it. Requests are audited in
`.kind/infra-state-audit.jsonl`.

The daemon listens on the kind network's gateway (the host's side of the Docker network, where
the hub's operator pods reach it) and on 127.0.0.1, never on 0.0.0.0; pidfile, log and state
under `.kind/`. `scripts/kind.sh infra start|stop|url` wraps these.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldr.drills.infra import (
    CLUSTER_OUTAGE,
    MODEL_STORE_LOSS,
    MODEL_STORE_OUTAGE,
    NODE_FAILURE,
)
from sandbox import daemons
from sandbox.config import REPO_ROOT
from sandbox.infra_daemon import answers
from sandbox.webhook_server import RequestError, Webhook, serve_webhook, token_from

log = logging.getLogger("sandbox.kind-infra")

DEFAULT_PORT = 19210
DEFAULT_PREFIX = "modeldr-"
DEFAULT_MEMBERS = ("primary", "standby")
HUB = "hub"
#: The project's engine's network (scripts/kind-docker.sh); a user's Docker: kind's `kind`.
DEFAULT_NETWORK = os.environ.get("KIND_EXPERIMENTAL_DOCKER_NETWORK") or "kind"
LABEL_CLUSTER = "io.x-k8s.kind.cluster"
LABEL_ROLE = "io.x-k8s.kind.role"
STATE_DIR = REPO_ROOT / ".kind"
#: The command-line word that marks the serving process (the pidfile is checked against it).
MARKER = "kindtools.infra"
#: How long a killed container may take to stop, a started one to run.
WAIT_S = 30.0
DOCKER_TIMEOUT_S = 60.0

ROUTE = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}) via (\d{1,3}(?:\.\d{1,3}){3})\b")
SNAPSHOT_SPLIT = "--- modeldr nat ---"
#: One `docker exec` before the kill: the routes and the POSTROUTING nat rules of the node's
#: network namespace (iptables may be missing: then there are none to keep).
SNAPSHOT_SCRIPT = (
    f"ip -4 route show; echo '{SNAPSHOT_SPLIT}'; "
    "command -v iptables >/dev/null && iptables -t nat -S POSTROUTING 2>/dev/null; true"
)


class DockerError(Exception):
    """A docker command failed (its stderr is the message)."""


#: Runs `docker ARGS` (stdin optional) and returns its stdout; DockerError when it fails.
Docker = Callable[[Sequence[str]], str]


def run_docker(args: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerError(f"docker {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise DockerError(f"docker {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


# -- pure parts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    name: str
    role: str
    #: Docker's State.Status: running, paused, exited, created, restarting, dead.
    status: str
    #: The kind cluster (its label).
    cluster: str = ""


def parse_ps(text: str) -> list[Container]:
    """The lines of `docker ps` with `ps_args`' format: name, role, state, kind cluster."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, role, status, cluster = [*line.split("\t"), "", "", ""][:4]
        out.append(Container(name.strip(), role.strip(), status.strip(), cluster.strip()))
    return sorted(out, key=lambda c: c.name)


def ps_args(kind_cluster: str | None, all_: bool = True) -> list[str]:
    """The `docker ps` listing the containers of `kind_cluster` (None: of every kind cluster)."""
    label = f"{LABEL_CLUSTER}={kind_cluster}" if kind_cluster else LABEL_CLUSTER
    fmt = "\t".join(
        (
            "{{.Names}}",
            f'{{{{.Label "{LABEL_ROLE}"}}}}',
            "{{.State}}",
            f'{{{{.Label "{LABEL_CLUSTER}"}}}}',
        )
    )
    return ["ps", *(["-a"] if all_ else []), "--filter", f"label={label}", "--format", fmt]


def parse_routes(text: str) -> list[tuple[str, str]]:
    """(destination, gateway) of each `ip -4 route` line `CIDR via ADDRESS ...`; the default
    route, the link's own subnet and the pods' /32 device routes are not routes via a node."""
    found = []
    for line in text.splitlines():
        match = ROUTE.match(line.strip())
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def parse_nat_rules(text: str) -> list[str]:
    """The POSTROUTING MASQUERADE rules a node's setup added (kube-proxy's KUBE-* chains come
    back by themselves when the kubelet starts kube-proxy again)."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.startswith("-A POSTROUTING ") and "-j MASQUERADE" in line and "KUBE" not in line
    ]


def parse_snapshot(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    routes, _, nat = text.partition(SNAPSHOT_SPLIT)
    return parse_routes(routes), parse_nat_rules(nat)


@dataclass
class RoutePlan:
    """What a restarted node and its peers need: the node's routes to the others' pod ranges,
    and (when its address changed) the peers' routes to its pod range moved to the new one."""

    node_routes: list[tuple[str, str]]
    peer_fixes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def plan_routes(
    recorded: Sequence[tuple[str, str]],
    peers: Mapping[str, Sequence[tuple[str, str]]],
    old_ip: str | None,
    new_ip: str,
) -> RoutePlan:
    """The node's routes: those it had before the kill (recorded), and any a peer holds to a
    third node (a pod range whose gateway is neither this node's old nor its new address: a
    route the node lacks if it was added while it was down or the recording was lost). A pod
    range it had a route for keeps the recorded gateway. The peers' fixes: each peer's route
    via the old address, moved to the new one."""
    own = {ip for ip in (old_ip, new_ip) if ip}
    routes: dict[str, str] = {cidr: via for cidr, via in recorded if via not in own}
    for peer in sorted(peers):
        for cidr, via in peers[peer]:
            if via not in own:
                routes.setdefault(cidr, via)
    fixes: dict[str, list[tuple[str, str]]] = {}
    if old_ip and old_ip != new_ip:
        for peer in sorted(peers):
            moved = [(cidr, new_ip) for cidr, via in peers[peer] if via == old_ip]
            if moved:
                fixes[peer] = moved
    # A route to the node's own pod range makes no sense there (a peer may hold it via old_ip).
    return RoutePlan(sorted(routes.items()), fixes)


def restore_script(routes: Sequence[tuple[str, str]], nat_rules: Sequence[str]) -> str:
    """The shell run in the restarted node: routes replaced, nat rules added once."""
    parts = [f"ip route replace {cidr} via {via}" for cidr, via in routes]
    for rule in nat_rules:
        spec = rule.removeprefix("-A ")
        parts.append(f"{{ iptables -t nat -C {spec} 2>/dev/null || iptables -t nat -A {spec}; }}")
    return " && ".join(parts) or "true"


def network_address(inspect: dict[str, Any], network: str) -> str | None:
    """The container's IPv4 address on `network` (None while stopped or not attached)."""
    nets = inspect.get("NetworkSettings", {}).get("Networks") or {}
    address = (nets.get(network) or {}).get("IPAddress")
    return str(address) if address else None


def gateway_of(ipam_configs: Sequence[dict[str, Any]]) -> str:
    """The IPv4 gateway of a Docker network from its IPAM configs: the configured one, else
    the subnet's first address (the one Docker gives the bridge when none is configured)."""
    for config in ipam_configs:
        subnet = config.get("Subnet") or ""
        if ":" in subnet or not subnet:
            continue
        if config.get("Gateway"):
            return str(config["Gateway"])
        return str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
    raise ValueError(f"no IPv4 subnet in {ipam_configs!r}")


# -- the actions -------------------------------------------------------------------------------


@dataclass
class KindActions:
    """Inject and undo with the docker CLI on the node containers of kind clusters."""

    members: tuple[str, ...] = DEFAULT_MEMBERS
    prefix: str = DEFAULT_PREFIX
    network: str = DEFAULT_NETWORK
    docker: Docker = run_docker
    wait_s: float = WAIT_S
    poll_s: float = 0.05

    def __post_init__(self) -> None:
        if HUB in self.members:
            raise ValueError("the hub is not a member cluster: its nodes are never touched")

    @property
    def clusters(self) -> tuple[str, ...]:
        return self.members

    def kind_cluster(self, member: str) -> str:
        return f"{self.prefix}{member}"

    def containers(self, member: str) -> list[Container]:
        return parse_ps(self.docker(ps_args(self.kind_cluster(member))))

    def inspect(self, name: str) -> dict[str, Any]:
        found = json.loads(self.docker(["inspect", "--type", "container", name]))
        return dict(found[0])

    # check

    def check(self, fault_type: str, cluster: str, node: str | None) -> None:
        if fault_type in (MODEL_STORE_OUTAGE, MODEL_STORE_LOSS):
            raise RequestError(
                400,
                f"{fault_type}: the kind clusters have no object stores yet (their models "
                "are on the nodes, file://; docs/backups.md)",
            )
        if cluster not in self.members:  # the Webhook refuses these first; kept for direct use
            raise RequestError(
                400,
                f"unknown cluster {cluster!r}: this provider serves the member clusters "
                f"{', '.join(self.members)}",
            )
        kind_cluster = self.kind_cluster(cluster)
        try:
            containers = self.containers(cluster)
        except DockerError as exc:
            raise RequestError(503, f"cannot list the nodes of {kind_cluster}: {exc}") from None
        if not containers:
            raise RequestError(
                400,
                f"cluster {cluster!r} has no kind nodes: no container is labelled "
                f"{LABEL_CLUSTER}={kind_cluster} (is the kind cluster up? scripts/kind.sh up)",
            )
        if fault_type != NODE_FAILURE:
            return
        names = [c.name for c in containers]
        if node not in names:
            raise RequestError(
                400,
                f"node {node!r} does not exist in cluster {cluster!r} "
                f"(kind cluster {kind_cluster}; nodes: {', '.join(names)})",
            )
        if any(c.status == "paused" for c in containers):
            raise RequestError(
                409, f"cluster {cluster!r} is in an outage: none of its nodes can fail now"
            )

    # inject

    def inject(self, fault: dict[str, Any]) -> None:
        if fault["type"] == CLUSTER_OUTAGE:
            self._pause(fault["cluster"])
        else:
            self._kill(fault)

    def _kill(self, fault: dict[str, Any]) -> None:
        node = str(fault["node"])
        state = self.inspect(node)
        if state["State"].get("Running"):
            # What dies with the node's network namespace, kept in the fault (the Webhook
            # writes it to its state file once the fault is active) to put back at undo.
            address = network_address(state, self.network)
            if address and "address" not in fault:
                fault["address"] = address
            try:
                routes, nat = parse_snapshot(
                    self.docker(["exec", node, "sh", "-c", SNAPSHOT_SCRIPT])
                )
                fault["routes"] = [list(r) for r in routes]
                fault["natRules"] = nat
            except DockerError as exc:  # the kill matters more; undo falls back to the peers
                log.warning("%s: its routes could not be read before the kill: %s", node, exc)
            self.docker(["kill", "--signal", "KILL", node])
        self._wait(node, lambda s: not s["State"].get("Running"), "to stop running")
        log.info("%s: killed (address %s)", node, fault.get("address"))

    def _pause(self, member: str) -> None:
        for c in self.containers(member):
            if c.status == "running":
                self.docker(["pause", c.name])
        left = [c.name for c in self.containers(member) if c.status == "running"]
        if left:
            raise DockerError(f"still running after docker pause: {', '.join(left)}")

    # undo

    def undo(self, fault: dict[str, Any]) -> str | None:
        if fault["type"] == CLUSTER_OUTAGE:
            self._unpause(fault["cluster"])
            return None
        return self._start(fault)

    def _unpause(self, member: str) -> None:
        for c in self.containers(member):
            if c.status == "paused":
                try:
                    self.docker(["unpause", c.name])
                except DockerError:
                    # "is not paused": unpaused meanwhile; anything else shows just below.
                    if self.inspect(c.name)["State"].get("Paused"):
                        raise
        left = [c.name for c in self.containers(member) if c.status == "paused"]
        if left:
            raise DockerError(f"still paused after docker unpause: {', '.join(left)}")

    def _start(self, fault: dict[str, Any]) -> str | None:
        node = str(fault["node"])
        old_ip = fault.get("address")
        state = self.inspect(node)
        if not state["State"].get("Running"):
            pinned = bool(old_ip) and self._pin_address(node, state, str(old_ip))
            try:
                self.docker(["start", node])
            except DockerError as exc:
                if not pinned:
                    raise
                # "Address already in use": another container took it while this one was down.
                log.warning("%s: cannot start on %s (%s); on a new address", node, old_ip, exc)
                self._reconnect(node, None)
                self.docker(["start", node])
        state = self._wait(node, lambda s: bool(s["State"].get("Running")), "to run again")
        new_ip = network_address(state, self.network)
        if not new_ip:
            raise DockerError(f"{node} runs but has no address on network {self.network}")
        peers = self._peer_routes(node)
        recorded = [(str(c), str(v)) for c, v in fault.get("routes") or []]
        plan = plan_routes(recorded, peers, old_ip, new_ip)
        script = restore_script(plan.node_routes, fault.get("natRules") or [])
        self.docker(["exec", node, "sh", "-c", script])
        for peer, moved in plan.peer_fixes.items():
            self.docker(["exec", peer, "sh", "-c", restore_script(moved, [])])
        log.info(
            "%s: started on %s; %d routes and %d nat rules restored",
            node,
            new_ip,
            len(plan.node_routes),
            len(fault.get("natRules") or []),
        )
        if old_ip and new_ip != old_ip:
            note = (
                f"node {node} came back with address {new_ip}, not {old_ip}; the routes of "
                f"{', '.join(plan.peer_fixes) or 'no other node'} to its pods were moved to it"
            )
            log.warning("%s", note)
            return note
        if not old_ip:
            return f"node {node}: its address before the kill is unknown; now {new_ip}"
        return None

    def _pin_address(self, node: str, state: dict[str, Any], address: str) -> bool:
        """Reconnect the stopped container to the network with `address` fixed, so that
        `docker start` gives it back (Docker's allocator would hand out the next free one).
        False if that cannot be done (reconnected without: undo reports the change)."""
        nets = state.get("NetworkSettings", {}).get("Networks") or {}
        endpoint = nets.get(self.network) or {}
        if (endpoint.get("IPAMConfig") or {}).get("IPv4Address") == address:
            return True
        try:
            self._reconnect(node, address)
        except DockerError as exc:
            log.warning("%s: address %s cannot be kept (%s)", node, address, exc)
            self._reconnect(node, None)
            return False
        return True

    def _reconnect(self, node: str, address: str | None) -> None:
        with contextlib.suppress(DockerError):  # not connected: nothing to disconnect
            self.docker(["network", "disconnect", "--force", self.network, node])
        pin = ["--ip", address] if address else []
        self.docker(["network", "connect", *pin, self.network, node])

    def _peer_routes(self, node: str) -> dict[str, list[tuple[str, str]]]:
        """The routes of every other running node of our kind clusters (hub included: it is
        read, never changed unless its route to this node's pods must move)."""
        peers: dict[str, list[tuple[str, str]]] = {}
        for c in parse_ps(self.docker(ps_args(None, all_=False))):
            if c.name == node or c.status != "running" or not c.cluster.startswith(self.prefix):
                continue
            try:
                peers[c.name] = parse_routes(self.docker(["exec", c.name, "ip", "-4", "route"]))
            except DockerError as exc:
                log.warning("routes of %s unreadable: %s", c.name, exc)
        return peers

    def _wait(self, node: str, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_s
        while True:
            state = self.inspect(node)
            if done(state):
                return state
            if time.monotonic() > deadline:
                raise DockerError(f"{node} did not {what} within {self.wait_s:.0f}s")
            time.sleep(self.poll_s)

    def release_all(self) -> list[str]:
        """Every paused node of the members unpaused (the last resort of `kind.sh down`)."""
        done = []
        for member in self.members:
            try:
                paused = [c.name for c in self.containers(member) if c.status == "paused"]
            except DockerError as exc:
                log.warning("cannot list the nodes of %s: %s", self.kind_cluster(member), exc)
                continue
            for name in paused:
                with contextlib.suppress(DockerError):
                    self.docker(["unpause", name])
                    done.append(name)
        return done


# -- running it --------------------------------------------------------------------------------


def network_gateway(network: str, docker: Docker = run_docker) -> str:
    text = docker(["network", "inspect", network, "--format", "{{json .IPAM.Config}}"])
    configs = json.loads(text)
    return gateway_of(configs or [])


def check_hosts(hosts: Sequence[str]) -> None:
    """Only specific addresses: the network rule forbids listening on every interface."""
    for host in hosts:
        if ipaddress.ip_address(host).is_unspecified:
            raise SystemExit(f"refusing to listen on {host}: name the gateway and/or 127.0.0.1")


@dataclass(frozen=True)
class Files:
    state: Path
    pid: Path
    log: Path
    token: Path

    @classmethod
    def under(cls, directory: Path) -> Files:
        return cls(
            directory / "infra-state.json",
            directory / "infra.pid",
            directory / "infra.log",
            directory / "infra.token",
        )


def running_pid(files: Files) -> int | None:
    return daemons.pid_in(files.pid, lambda line: MARKER in line and " serve" in line)


def start_daemon(files: Files, serve_args: list[str], port: int, timeout: float = 20.0) -> int:
    """Start `serve` detached (own session, log appended); the running one is reused."""
    pid = running_pid(files)
    if pid:
        return pid
    proc = daemons.spawn([sys.executable, "-m", MARKER, "serve", *serve_args], files.pid, files.log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(port):
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = "\n".join(files.log.read_text(errors="replace").splitlines()[-15:])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    files.pid.unlink(missing_ok=True)
    raise SystemExit(f"the kind infrastructure provider did not start; {files.log}:\n{tail}")


def stop_daemon(files: Files, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `grace`; the faults it holds stay in its state file."""
    return daemons.terminate(running_pid(files), files.pid, grace)


def undo_all(webhook: Webhook) -> list[str]:
    """Undo every fault of the state file (the provider must not be running)."""
    undone = []
    for fault in webhook.snapshot():
        try:
            webhook.undo({"id": fault["id"]})
            undone.append(fault["id"])
        except RequestError as exc:
            log.error("undo %s failed: %s", fault["id"], exc.message)
    return undone


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except DockerError as exc:  # e.g. no engine, no such network: said in one line
        print(f"kind infrastructure provider: {exc}", file=sys.stderr)
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kindtools.infra", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=STATE_DIR, help="pidfile, log and state")
    parser.add_argument("--state", type=Path, help="the state file (default DIR/infra-state.json)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="kind cluster = PREFIX+member")
    parser.add_argument("--members", default=",".join(DEFAULT_MEMBERS))
    parser.add_argument("--network", default=DEFAULT_NETWORK, help="the kind nodes' network")
    parser.add_argument(
        "--host",
        action="append",
        help="listen here (repeatable; default: the network's gateway and 127.0.0.1)",
    )
    parser.add_argument("--token-file", type=Path, help="default DIR/infra.token")
    parser.add_argument(
        "command", choices=["serve", "start", "stop", "url", "token", "status", "undo-all"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout
    )
    files = Files.under(args.dir)
    state = args.state or files.state
    token_file = args.token_file or files.token
    members = tuple(m for m in args.members.split(",") if m)

    def actions() -> KindActions:
        return KindActions(members=members, prefix=args.prefix, network=args.network)

    def hosts() -> list[str]:
        return args.host or [network_gateway(args.network), "127.0.0.1"]

    if args.command == "url":
        print(f"http://{hosts()[0]}:{args.port}")
    elif args.command == "token":
        print(token_from(token_file))
    elif args.command == "serve":
        check_hosts(hosts())
        webhook = Webhook(state, actions(), clusters=members)
        serve_webhook(webhook, hosts(), args.port, token_from(token_file))
    elif args.command == "start":
        listen = hosts()
        check_hosts(listen)
        serve = [
            "--state",
            str(state),
            "--port",
            str(args.port),
            "--prefix",
            args.prefix,
            "--members",
            args.members,
            "--network",
            args.network,
            "--token-file",
            str(token_file),
            *(a for h in listen for a in ("--host", h)),
        ]
        token_from(token_file)  # made now, so that `token` and the daemon agree
        started = start_daemon(files, serve, args.port)
        where = f"http://{listen[0]}:{args.port}"
        print(f"kind infrastructure provider (pid {started}) on {where}; log {files.log}")
    elif args.command == "stop":
        print("stopped" if stop_daemon(files) else "not running")
    elif args.command == "status":
        pid = running_pid(files)
        print(json.dumps({"pid": pid, "answers": answers(args.port), "state": str(state)}))
    else:  # undo-all: the provider is stopped first (one change at a time)
        stop_daemon(files)
        kind = actions()
        undone = undo_all(Webhook(state, kind, clusters=members))
        released = kind.release_all()
        print(f"undone: {', '.join(undone) or 'none'}; unpaused: {', '.join(released) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
