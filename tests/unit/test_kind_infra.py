"""The kind infrastructure provider's pure parts and its state transitions, with a fake docker
CLI standing in for the engine (the real containers: tests/kind/test_kind_infra_containers.py).
The fake answers the docker commands KindActions issues from a table of containers, so what
is checked is which commands are built and what the provider records and answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kindtools import infra as kind_infra
from kindtools.infra import (
    SNAPSHOT_SCRIPT,
    Container,
    DockerError,
    KindActions,
    gateway_of,
    parse_nat_rules,
    parse_ps,
    parse_routes,
    parse_snapshot,
    plan_routes,
    ps_args,
    restore_script,
)
from modeldr.drills.infra import rfc3339
from sandbox.webhook_server import RequestError, Webhook

NET = "modeldr-kind"


class FakeDocker:
    """Containers by name: cluster, role, status, address, pinned address, routes, nat rules."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[list[str]] = []
        self.next_ip = 100
        self.fail: dict[str, str] = {}  # "verb name" -> error
        self.taken: set[str] = set()  # addresses another container holds now

    def add(self, name: str, cluster: str, ip: str, role: str = "worker", **kw: Any) -> None:
        self.containers[name] = {
            "cluster": cluster,
            "role": role,
            "status": "running",
            "ip": ip,
            "pinned": None,
            "routes": [],
            "nat": [],
            **kw,
        }

    def verbs(self, verb: str) -> list[list[str]]:
        return [c for c in self.calls if c[0] == verb]

    def __call__(self, args: Sequence[str]) -> str:
        args = list(args)
        self.calls.append(args)
        verb = args[0]
        key = f"{verb} {args[-1]}"
        if key in self.fail:
            raise DockerError(self.fail[key])
        if verb == "ps":
            label = args[args.index("--filter") + 1].removeprefix("label=")
            want = label.split("=", 1)[1] if "=" in label else None
            lines = [
                f"{n}\t{c['role']}\t{c['status']}\t{c['cluster']}"
                for n, c in self.containers.items()
                if (want is None or c["cluster"] == want)
                and ("-a" in args or c["status"] in ("running", "paused"))
            ]
            return "\n".join(lines) + "\n"
        if verb == "network":
            c = self.containers[args[-1]]
            if args[1] == "disconnect":
                c["ip"] = None
            else:  # a connect: a static address with --ip, else none
                c["pinned"] = args[args.index("--ip") + 1] if "--ip" in args else None
            return ""
        found = self.containers.get(args[1] if verb == "exec" else args[-1])
        if found is None:
            raise DockerError(f"No such container: {args[-1]}")
        c = found
        if verb == "inspect":
            state = {
                "Running": c["status"] in ("running", "paused"),
                "Paused": c["status"] == "paused",
                "Status": c["status"],
            }
            nets = {NET: {"IPAddress": c["ip"] or "", "IPAMConfig": {"IPv4Address": c["pinned"]}}}
            return json.dumps([{"State": state, "NetworkSettings": {"Networks": nets}}])
        if verb == "kill":
            c["status"], c["ip"], c["routes"], c["nat"] = "exited", None, [], []
        elif verb == "start":
            if c["pinned"] in self.taken:
                raise DockerError("Address already in use")
            c["status"] = "running"
            if c["pinned"]:
                c["ip"] = c["pinned"]
            else:
                c["ip"] = f"172.30.213.{self.next_ip}"
                self.next_ip += 1
        elif verb == "pause":
            c["status"] = "paused"
        elif verb == "unpause":
            if c["status"] != "paused":
                raise DockerError(f"Container {args[-1]} is not paused")
            c["status"] = "running"
        elif verb == "exec":
            script = args[-1]
            if script == SNAPSHOT_SCRIPT:
                routes = "".join(f"{d} via {v} dev eth0\n" for d, v in c["routes"])
                return (
                    f"default via 172.30.213.1 dev eth0\n{routes}--- modeldr nat ---\n"
                    + "".join(f"{r}\n" for r in c["nat"])
                )
            if args[2:4] == ["ip", "-4"]:
                return "".join(f"{d} via {v} dev eth0 \n" for d, v in c["routes"])
            for part in script.split(" && "):
                if part.startswith("ip route replace "):
                    dst, _, via = part.removeprefix("ip route replace ").partition(" via ")
                    c["routes"] = [r for r in c["routes"] if r[0] != dst] + [(dst, via)]
                elif "iptables -t nat -A " in part:
                    c["nat"].append("-A " + part.split("iptables -t nat -A ")[1].rstrip("; }"))
        return ""


@pytest.fixture
def docker() -> FakeDocker:
    d = FakeDocker()
    # primary: control plane .2 (pods 10.241.0.0/24), worker .3 (10.241.1.0/24),
    # worker2 .4 (10.241.2.0/24); the hub .5 (10.240.0.0/24) routes primary's pods via them.
    cidrs = {
        "cp": ("172.30.213.2", "10.241.0.0/24"),
        "w": ("172.30.213.3", "10.241.1.0/24"),
        "w2": ("172.30.213.4", "10.241.2.0/24"),
        "hub": ("172.30.213.5", "10.240.0.0/24"),
    }

    def routes(me: str) -> list[tuple[str, str]]:
        return [(cidr, ip) for n, (ip, cidr) in cidrs.items() if n != me]

    d.add(
        "modeldr-primary-control-plane",
        "modeldr-primary",
        cidrs["cp"][0],
        role="control-plane",
        routes=routes("cp"),
    )
    nat = ["-A POSTROUTING -s 10.241.1.0/24 -d 172.30.213.0/24 -j MASQUERADE"]
    d.add("modeldr-primary-worker", "modeldr-primary", cidrs["w"][0], routes=routes("w"), nat=nat)
    d.add("modeldr-primary-worker2", "modeldr-primary", cidrs["w2"][0], routes=routes("w2"))
    d.add(
        "modeldr-hub-control-plane",
        "modeldr-hub",
        cidrs["hub"][0],
        role="control-plane",
        routes=routes("hub"),
    )
    d.add("modeldr-standby-control-plane", "modeldr-standby", "172.30.213.6")
    return d


def make(tmp_path: Path, docker: FakeDocker) -> Webhook:
    actions = KindActions(network=NET, docker=docker, wait_s=1.0, poll_s=0.0)
    return Webhook(tmp_path / "state.json", actions, clusters=actions.clusters)


def later(seconds: float = 120) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(seconds=seconds))


def node_failure(node: str = "modeldr-primary-worker", **kw: Any) -> dict[str, Any]:
    fault = {"id": "run/step-0", "type": "NodeFailure", "cluster": "primary", "node": node}
    return {**fault, "expiresAt": later(), **kw}


# -- pure parts --------------------------------------------------------------------------------


def test_a_member_maps_to_its_kind_cluster_and_the_docker_ps_that_lists_its_nodes() -> None:
    actions = KindActions(prefix="mdrtest-")
    assert actions.kind_cluster("primary") == "mdrtest-primary"
    args = ps_args("mdrtest-primary")
    assert args[:4] == ["ps", "-a", "--filter", "label=io.x-k8s.kind.cluster=mdrtest-primary"]
    assert args[-1].split("\t") == [
        "{{.Names}}",
        '{{.Label "io.x-k8s.kind.role"}}',
        "{{.State}}",
        '{{.Label "io.x-k8s.kind.cluster"}}',
    ]
    assert ps_args(None, all_=False)[:3] == ["ps", "--filter", "label=io.x-k8s.kind.cluster"]
    assert parse_ps("b\tworker\texited\tk\na\tcontrol-plane\trunning\tk\n\n") == [
        Container("a", "control-plane", "running", "k"),
        Container("b", "worker", "exited", "k"),
    ]


def test_the_hub_can_never_be_a_member() -> None:
    with pytest.raises(ValueError, match="hub"):
        KindActions(members=("primary", "hub"))


def test_routes_and_nat_rules_are_read_from_a_nodes_snapshot() -> None:
    text = (
        "default via 172.30.213.1 dev eth0\n"
        "10.241.1.0/24 via 172.30.213.3 dev eth0 \n"
        "10.241.0.7 dev veth1 scope host\n"
        "172.30.213.0/24 dev eth0 proto kernel scope link src 172.30.213.2\n"
        "--- modeldr nat ---\n"
        "-P POSTROUTING ACCEPT\n"
        "-A POSTROUTING -m comment --comment kube -j KUBE-POSTROUTING\n"
        "-A POSTROUTING -s 10.241.0.0/24 -d 172.30.213.0/24 -j MASQUERADE\n"
    )
    routes, nat = parse_snapshot(text)
    assert routes == [("10.241.1.0/24", "172.30.213.3")]
    assert nat == ["-A POSTROUTING -s 10.241.0.0/24 -d 172.30.213.0/24 -j MASQUERADE"]
    assert parse_routes("") == [] and parse_nat_rules("") == []


def test_the_route_plan_keeps_what_the_node_had_and_adds_what_peers_route_to_third_nodes() -> None:
    recorded = [("10.241.0.0/24", "172.30.213.2")]
    peers = {
        "cp": [("10.241.1.0/24", "172.30.213.3"), ("10.241.2.0/24", "172.30.213.4")],
        "w2": [("10.241.0.0/24", "172.30.213.99"), ("10.241.1.0/24", "172.30.213.3")],
    }
    plan = plan_routes(recorded, peers, "172.30.213.3", "172.30.213.3")
    # Its own pod range (routed via its address by the peers) is not a route of its own; a
    # recorded gateway wins over a peer's.
    assert plan.node_routes == [
        ("10.241.0.0/24", "172.30.213.2"),
        ("10.241.2.0/24", "172.30.213.4"),
    ]
    assert plan.peer_fixes == {}


def test_a_changed_address_moves_the_peers_routes_to_the_new_one() -> None:
    peers = {
        "cp": [("10.241.1.0/24", "172.30.213.3")],
        "hub": [("10.241.1.0/24", "172.30.213.3"), ("10.241.0.0/24", "172.30.213.2")],
    }
    plan = plan_routes([], peers, "172.30.213.3", "172.30.213.9")
    assert plan.node_routes == [("10.241.0.0/24", "172.30.213.2")]
    assert plan.peer_fixes == {
        "cp": [("10.241.1.0/24", "172.30.213.9")],
        "hub": [("10.241.1.0/24", "172.30.213.9")],
    }


def test_the_restore_script_replaces_routes_and_adds_each_nat_rule_once() -> None:
    script = restore_script(
        [("10.241.0.0/24", "172.30.213.2")], ["-A POSTROUTING -s 10.241.1.0/24 -j MASQUERADE"]
    )
    assert script == (
        "ip route replace 10.241.0.0/24 via 172.30.213.2 && "
        "{ iptables -t nat -C POSTROUTING -s 10.241.1.0/24 -j MASQUERADE 2>/dev/null || "
        "iptables -t nat -A POSTROUTING -s 10.241.1.0/24 -j MASQUERADE; }"
    )
    assert restore_script([], []) == "true"


def test_the_gateway_is_the_configured_one_else_the_subnets_first_address() -> None:
    assert gateway_of([{"Subnet": "172.30.213.0/24"}]) == "172.30.213.1"
    assert (
        gateway_of(
            [{"Subnet": "fc00::/64"}, {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.254"}]
        )
        == "172.18.0.254"
    )
    with pytest.raises(ValueError):
        gateway_of([])


def test_it_never_listens_on_every_interface() -> None:
    kind_infra.check_hosts(["172.30.213.1", "127.0.0.1"])
    for host in ("0.0.0.0", "::"):
        with pytest.raises(SystemExit, match="refusing"):
            kind_infra.check_hosts([host])


# -- check -------------------------------------------------------------------------------------


def test_unknown_clusters_and_nodes_are_refused_with_the_contracts_answers(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    for cluster in ("hub", "nope"):
        with pytest.raises(RequestError, match="serves the member clusters primary, standby") as e:
            webhook.inject(node_failure(cluster=cluster))
        assert e.value.status == 400
    with pytest.raises(RequestError, match="does not exist in cluster 'primary'") as e:
        webhook.inject(node_failure("modeldr-hub-control-plane"))
    assert e.value.status == 400 and "modeldr-primary-worker2" in e.value.message
    docker.containers = {n: c for n, c in docker.containers.items() if "standby" not in n}
    with pytest.raises(RequestError, match="no kind nodes") as e:
        webhook.inject(
            {"id": "x", "type": "ClusterOutage", "cluster": "standby", "expiresAt": later()}
        )
    assert e.value.status == 400
    docker.fail = {f"ps {ps_args('modeldr-primary')[-1]}": "Cannot connect to the Docker daemon"}
    with pytest.raises(RequestError, match="Cannot connect") as e:
        webhook.inject(node_failure())
    assert e.value.status == 503
    assert not docker.verbs("kill") and not docker.verbs("pause") and webhook.snapshot() == []


def test_no_node_of_a_cluster_in_an_outage_can_fail(tmp_path: Path, docker: FakeDocker) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(
        {"id": "out", "type": "ClusterOutage", "cluster": "primary", "expiresAt": later()}
    )
    with pytest.raises(RequestError, match="in an outage") as e:
        webhook.inject(node_failure())
    assert e.value.status == 409


# -- NodeFailure -------------------------------------------------------------------------------


def test_node_failure_kills_only_the_named_node_and_records_its_network_first(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    answer = webhook.inject(node_failure(expiresAt=later()))
    assert answer["created"] and answer["fault"]["state"] == "active"
    assert docker.verbs("kill") == [["kill", "--signal", "KILL", "modeldr-primary-worker"]]
    assert {n for n, c in docker.containers.items() if c["status"] != "running"} == {
        "modeldr-primary-worker"
    }
    [saved] = json.loads((tmp_path / "state.json").read_text())["faults"]
    assert saved["address"] == "172.30.213.3"
    assert ["10.241.0.0/24", "172.30.213.2"] in saved["routes"]
    assert saved["natRules"] == ["-A POSTROUTING -s 10.241.1.0/24 -d 172.30.213.0/24 -j MASQUERADE"]
    # A repeat (a retried inject) changes nothing, its expiry neither (/renew does that).
    calls = len(docker.calls)
    again = webhook.inject(node_failure(expiresAt=later(200)))
    assert not again["created"] and len(docker.calls) == calls
    assert again["fault"]["expiresAt"] == answer["fault"]["expiresAt"]


def test_undo_starts_the_node_on_its_old_address_and_puts_its_routes_back(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(node_failure())
    docker.next_ip = 50  # Docker would give it another address
    answer = webhook.undo({"id": "run/step-0"})
    assert answer == {"id": "run/step-0", "undone": True}
    worker = docker.containers["modeldr-primary-worker"]
    assert worker["status"] == "running" and worker["ip"] == "172.30.213.3"
    net = [c for c in docker.calls if c[0] == "network"]
    assert net == [
        ["network", "disconnect", "--force", NET, "modeldr-primary-worker"],
        ["network", "connect", "--ip", "172.30.213.3", NET, "modeldr-primary-worker"],
    ]
    assert sorted(worker["routes"]) == [
        ("10.240.0.0/24", "172.30.213.5"),
        ("10.241.0.0/24", "172.30.213.2"),
        ("10.241.2.0/24", "172.30.213.4"),
    ]
    assert worker["nat"] == ["-A POSTROUTING -s 10.241.1.0/24 -d 172.30.213.0/24 -j MASQUERADE"]
    assert webhook.snapshot() == []
    assert webhook.undo({"id": "run/step-0"}) == {"id": "run/step-0", "undone": False}


def test_a_changed_address_is_reported_and_the_other_nodes_routes_follow(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(node_failure())
    # Taken meanwhile: connect --ip fails, the plain connect gets the next free one.
    real = docker.__call__

    def taken(args: Sequence[str]) -> str:
        if list(args[:3]) == ["network", "connect", "--ip"]:
            docker.calls.append(list(args))
            raise DockerError("Address already in use")
        return real(args)

    assert isinstance(webhook.actions, KindActions)
    webhook.actions.docker = taken
    answer = webhook.undo({"id": "run/step-0"})
    assert "came back with address 172.30.213.100, not 172.30.213.3" in answer["note"]
    for peer in (
        "modeldr-primary-control-plane",
        "modeldr-primary-worker2",
        "modeldr-hub-control-plane",
    ):
        assert ("10.241.1.0/24", "172.30.213.100") in docker.containers[peer]["routes"], peer
    assert ("10.241.1.0/24", "172.30.213.100") not in docker.containers["modeldr-primary-worker"][
        "routes"
    ]


# -- ClusterOutage -----------------------------------------------------------------------------


def test_cluster_outage_pauses_every_running_node_of_the_member_and_undo_unpauses_them(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(node_failure("modeldr-primary-worker2"))  # a dead node stays dead
    webhook.inject(
        {"id": "out", "type": "ClusterOutage", "cluster": "primary", "expiresAt": later()}
    )
    assert [c[1] for c in docker.verbs("pause")] == [
        "modeldr-primary-control-plane",
        "modeldr-primary-worker",
    ]
    status = {n: c["status"] for n, c in docker.containers.items()}
    assert status["modeldr-hub-control-plane"] == "running"
    assert status["modeldr-standby-control-plane"] == "running"
    assert status["modeldr-primary-worker2"] == "exited"
    # Unpaused meanwhile by someone: not an error.
    docker.containers["modeldr-primary-worker"]["status"] = "running"
    webhook.undo({"id": "out"})
    assert all(c["status"] != "paused" for c in docker.containers.values())


def test_an_outage_that_fails_half_way_is_rolled_back(tmp_path: Path, docker: FakeDocker) -> None:
    webhook = make(tmp_path, docker)
    docker.fail["pause modeldr-primary-worker"] = "cgroup freeze failed"
    with pytest.raises(RequestError, match="cgroup freeze failed") as e:
        webhook.inject(
            {"id": "out", "type": "ClusterOutage", "cluster": "primary", "expiresAt": later()}
        )
    assert e.value.status == 503
    assert all(c["status"] != "paused" for c in docker.containers.values())
    assert webhook.snapshot() == []


def test_two_outages_of_one_member_release_it_with_the_last(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    for fault_id in ("a", "b"):
        webhook.inject(
            {"id": fault_id, "type": "ClusterOutage", "cluster": "primary", "expiresAt": later()}
        )
    webhook.undo({"id": "a"})
    assert docker.containers["modeldr-primary-worker"]["status"] == "paused"
    webhook.undo({"id": "b"})
    assert docker.containers["modeldr-primary-worker"]["status"] == "running"


# -- expiry and restart ------------------------------------------------------------------------


def test_an_expired_fault_is_undone_by_the_expiry_check_also_after_a_restart(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(node_failure(expiresAt=later()))
    webhook.inject(
        {"id": "out", "type": "ClusterOutage", "cluster": "standby", "expiresAt": later()}
    )
    # The provider stops; meanwhile both faults' expiry passes.
    document = json.loads((tmp_path / "state.json").read_text())
    for fault in document["faults"]:
        fault["expiresAt"] = rfc3339(datetime.now(UTC) - timedelta(seconds=5))
    (tmp_path / "state.json").write_text(json.dumps(document))
    restarted = make(tmp_path, docker)
    assert len(restarted.snapshot()) == 2
    restarted.expire_due()  # what its expiry loop does first at start
    assert restarted.snapshot() == []
    assert all(c["status"] == "running" for c in docker.containers.values())
    assert docker.containers["modeldr-primary-worker"]["ip"] == "172.30.213.3"


def test_undo_all_undoes_every_fault_of_the_state_file(tmp_path: Path, docker: FakeDocker) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(node_failure())
    webhook.inject(
        {"id": "out", "type": "ClusterOutage", "cluster": "standby", "expiresAt": later()}
    )
    assert sorted(kind_infra.undo_all(make(tmp_path, docker))) == ["out", "run/step-0"]
    assert all(c["status"] == "running" for c in docker.containers.values())
    docker.containers["modeldr-standby-control-plane"]["status"] = "paused"
    assert isinstance(webhook.actions, KindActions)
    assert webhook.actions.release_all() == ["modeldr-standby-control-plane"]


def test_a_node_whose_pinned_address_is_taken_at_start_comes_back_on_a_new_one(
    tmp_path: Path, docker: FakeDocker
) -> None:
    webhook = make(tmp_path, docker)
    webhook.inject(node_failure())
    docker.taken.add("172.30.213.3")
    answer = webhook.undo({"id": "run/step-0"})
    assert "came back with address 172.30.213.100, not 172.30.213.3" in answer["note"]
    assert [c for c in docker.calls if c[:2] == ["network", "connect"]][-1] == [
        "network",
        "connect",
        NET,
        "modeldr-primary-worker",
    ]
    assert ("10.241.1.0/24", "172.30.213.100") in docker.containers["modeldr-hub-control-plane"][
        "routes"
    ]
