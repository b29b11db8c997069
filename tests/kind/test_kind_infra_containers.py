"""The kind infrastructure provider (kindtools/infra.py) on real containers of the project's
Docker engine (scripts/kind-docker.sh): a `mdrtest-primary` "cluster" of three node
containers and a `mdrtest-hub` one, each `sleep 300` on the kind network with kind's labels
and routes to the others' "pod ranges" as `scripts/kind.sh network` sets them. What is
checked is what the provider does to containers (the clusters' own reaction, a node going
NotReady, needs the real kind clusters): NodeFailure kills, undo starts it again on its old
address with its routes back; ClusterOutage pauses, undo unpauses; an expired fault is undone
by the provider itself, also by a provider started after its expiry; the provider answers on
the network's gateway from inside a container.

    .venv/bin/python -m pytest -m kind tests/kind      # ~30 s; never part of `make test`
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kindtools import infra as kind_infra
from kindtools.infra import KindActions
from modeldr.drills.infra import InfrastructureError, InfrastructureProvider, rfc3339
from sandbox import infra_daemon
from sandbox.webhook_server import token_from
from tests.tooling import run_script

pytestmark = pytest.mark.kind

ROOT = Path(__file__).resolve().parents[2]
NETWORK = "modeldr-kind"
PREFIX = "mdrtest-"
#: the offline base image (scripts/kind-images.sh --base builds it; the name carries its rev)
IMAGE = run_script("kind-images.sh", "--base-name").strip()
#: name -> (kind cluster, role, fake pod range)
NODES = {
    "mdrtest-primary-control-plane": ("mdrtest-primary", "control-plane", "10.199.0.0/24"),
    "mdrtest-primary-worker": ("mdrtest-primary", "worker", "10.199.1.0/24"),
    "mdrtest-primary-worker2": ("mdrtest-primary", "worker", "10.199.2.0/24"),
    "mdrtest-hub-control-plane": ("mdrtest-hub", "control-plane", "10.198.0.0/24"),
}
WORKER = "mdrtest-primary-worker"


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def state(name: str) -> dict[str, Any]:
    return dict(json.loads(docker("inspect", "--type", "container", name))[0]["State"])


def address(name: str) -> str:
    nets = json.loads(docker("inspect", "--type", "container", name))[0]["NetworkSettings"]
    return str(nets["Networks"][NETWORK]["IPAddress"])


def routes(name: str) -> set[tuple[str, str]]:
    return set(kind_infra.parse_routes(docker("exec", name, "ip", "-4", "route")))


def remove_ours() -> None:
    names = [
        n for n in docker("ps", "-a", "--format", "{{.Names}}").split() if n.startswith(PREFIX)
    ]
    if names:
        docker("rm", "-f", *names, check=False)


def wait_until(what: str, condition: Any, timeout: float, interval: float = 0.02) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(interval)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """The project's engine (started if need be, never stopped: the lead's clusters run on it)."""
    try:
        subprocess.run(
            ["bash", "scripts/kind-docker.sh", "start"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        env = subprocess.run(
            ["bash", "scripts/kind-docker.sh", "env"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        pytest.fail(
            f"these tests need the project's Docker engine and it did not start "
            f"(bash scripts/kind-docker.sh start): {exc}\n{detail[-2000:]}"
        )
    saved = {k: os.environ.get(k) for k in ("DOCKER_HOST", "KIND_EXPERIMENTAL_DOCKER_NETWORK")}
    for assignment in env.removeprefix("export ").split():
        key, _, value = assignment.partition("=")
        os.environ[key] = value
    if IMAGE not in docker("images", "--format", "{{.Repository}}:{{.Tag}}").split():
        pytest.fail(
            f"image {IMAGE} is not in the project's engine: scripts/kind-images.sh --base builds "
            "it (scripts/test-kind.sh does first)"
        )
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@pytest.fixture
def nodes(engine: None) -> Iterator[dict[str, str]]:
    """The four containers, with each one's routes to the others' pod ranges; name -> address.
    Removed on every path (and any left over by an earlier run first)."""
    remove_ours()
    try:
        for name, (cluster, role, _) in NODES.items():
            docker(
                "run",
                "-d",
                "--name",
                name,
                "--network",
                NETWORK,
                "--cap-add",
                "NET_ADMIN",
                "--label",
                f"io.x-k8s.kind.cluster={cluster}",
                "--label",
                f"io.x-k8s.kind.role={role}",
                "--entrypoint",
                "sleep",
                IMAGE,
                "300",
            )
        ips = {name: address(name) for name in NODES}
        for name in NODES:
            script = " && ".join(
                f"ip route replace {cidr} via {ips[other]}"
                for other, (_, _, cidr) in NODES.items()
                if other != name
            )
            docker("exec", name, "sh", "-c", script)
        yield ips
    finally:
        remove_ours()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Provider:
    """`python -m kindtools.infra serve` as a child process, on the gateway and loopback."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log, self.port = state, log, free_port()
        self.token_file = state.with_name("token")
        self.gateway = kind_infra.network_gateway(NETWORK)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> InfrastructureProvider:
        argv = [
            sys.executable,
            "-m",
            "kindtools.infra",
            "serve",
            "--prefix",
            PREFIX,
            "--network",
            NETWORK,
            "--state",
            str(self.state),
            "--port",
            str(self.port),
            "--host",
            self.gateway,
            "--host",
            "127.0.0.1",
            "--token-file",
            str(self.token_file),
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_until("the provider answers", lambda: infra_daemon.answers(self.port), 20, 0.1)
        token = token_from(self.token_file)
        return InfrastructureProvider(f"http://127.0.0.1:{self.port}", token, timeout=60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None


@pytest.fixture
def provider(tmp_path: Path, nodes: dict[str, str]) -> Iterator[Provider]:
    p = Provider(tmp_path / "state.json", tmp_path / "provider.log")
    try:
        yield p
    finally:
        p.stop()
        print((tmp_path / "provider.log").read_text(errors="replace")[-3000:])


def soon(seconds: float = 120) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def later(seconds: float = 120) -> str:
    return rfc3339(soon(seconds))


def fault_id() -> str:
    return f"mdrtest/{uuid.uuid4().hex[:8]}"


def test_node_failure_kills_the_container_and_undo_brings_it_back_on_its_address(
    tmp_path: Path, nodes: dict[str, str]
) -> None:
    from sandbox.webhook_server import Webhook

    actions = KindActions(prefix=PREFIX, network=NETWORK)
    webhook = Webhook(tmp_path / "state.json", actions, clusters=actions.clusters)
    before = routes(WORKER)
    assert len(before) == 3
    for attempt in range(2):  # the second time Docker's allocator has moved on further
        fid = fault_id()
        t0 = time.monotonic()
        webhook.inject(
            {
                "id": fid,
                "type": "NodeFailure",
                "cluster": "primary",
                "node": WORKER,
                "expiresAt": later(),
            }
        )
        killed_s = time.monotonic() - t0
        # Killed, not stopped: SIGKILL's exit code (128 + 9), no grace period.
        assert not state(WORKER)["Running"] and state(WORKER)["ExitCode"] == 137
        assert all(state(n)["Running"] for n in NODES if n != WORKER)
        t0 = time.monotonic()
        answer = webhook.undo({"id": fid})
        started_s = time.monotonic() - t0
        assert answer == {"id": fid, "undone": True}, answer
        assert state(WORKER)["Running"]
        assert address(WORKER) == nodes[WORKER]
        assert routes(WORKER) == before
        assert webhook.snapshot() == []
        print(
            f"NodeFailure {attempt}: killed in {killed_s:.2f} s; started with its routes in "
            f"{started_s:.2f} s"
        )


def test_a_node_whose_address_was_taken_comes_back_on_another_and_the_routes_follow(
    tmp_path: Path, nodes: dict[str, str]
) -> None:
    from sandbox.webhook_server import Webhook

    actions = KindActions(prefix=PREFIX, network=NETWORK)
    webhook = Webhook(tmp_path / "state.json", actions, clusters=actions.clusters)
    fid = fault_id()
    webhook.inject(
        {
            "id": fid,
            "type": "NodeFailure",
            "cluster": "primary",
            "node": WORKER,
            "expiresAt": later(),
        }
    )
    # Another container meanwhile, on the freed address.
    docker(
        "run",
        "-d",
        "--name",
        "mdrtest-intruder",
        "--network",
        NETWORK,
        "--ip",
        nodes[WORKER],
        "--entrypoint",
        "sleep",
        IMAGE,
        "60",
    )
    answer = webhook.undo({"id": fid})
    new = address(WORKER)
    assert new != nodes[WORKER] and state(WORKER)["Running"]
    assert f"came back with address {new}, not {nodes[WORKER]}" in answer["note"], answer
    cidr = NODES[WORKER][2]
    for peer in NODES:
        if peer != WORKER:
            assert (cidr, new) in routes(peer), peer
    assert {via for _, via in routes(WORKER)} == {
        ip for name, ip in nodes.items() if name != WORKER
    }


def test_cluster_outage_pauses_the_members_nodes_only_and_undo_unpauses_them(
    tmp_path: Path, nodes: dict[str, str]
) -> None:
    from sandbox.webhook_server import Webhook

    actions = KindActions(prefix=PREFIX, network=NETWORK)
    webhook = Webhook(tmp_path / "state.json", actions, clusters=actions.clusters)
    fid = fault_id()
    t0 = time.monotonic()
    webhook.inject({"id": fid, "type": "ClusterOutage", "cluster": "primary", "expiresAt": later()})
    paused_s = time.monotonic() - t0
    primary = [n for n, (c, _, _) in NODES.items() if c == "mdrtest-primary"]
    assert all(state(n)["Paused"] for n in primary)
    assert not state("mdrtest-hub-control-plane")["Paused"]
    # The same id again changes nothing.
    again = webhook.inject(
        {"id": fid, "type": "ClusterOutage", "cluster": "primary", "expiresAt": later()}
    )
    assert again["created"] is False
    t0 = time.monotonic()
    webhook.undo({"id": fid})
    unpaused_s = time.monotonic() - t0
    assert not any(state(n)["Paused"] for n in primary)
    assert all(state(n)["Running"] for n in NODES)
    print(f"ClusterOutage: paused in {paused_s:.2f} s; unpaused in {unpaused_s:.2f} s")


def test_unknown_nodes_and_the_hub_are_refused(provider: Provider) -> None:
    client = provider.start()
    refused = [("primary", "mdrtest-hub-control-plane"), ("hub", "x"), ("primary", "nope")]
    for cluster, node in refused:
        with pytest.raises(InfrastructureError) as e:
            client.inject(fault_id(), "NodeFailure", cluster, node, expires_at=soon())
        assert e.value.permanent and e.value.status == 400, e.value
    assert all(state(n)["Running"] and not state(n)["Paused"] for n in NODES)


def test_an_unrenewed_fault_is_undone_by_the_provider_within_a_second_of_its_expiry(
    provider: Provider,
) -> None:
    client = provider.start()
    outage, failure = fault_id(), fault_id()
    now = datetime.now(UTC)
    # A failed node first (no node of a cluster in an outage can fail), the outage over it;
    # the outage expires first (one change at a time: each is timed against its own expiry).
    client.inject(
        failure,
        "NodeFailure",
        "primary",
        "mdrtest-primary-worker2",
        expires_at=now + timedelta(seconds=4),
    )
    client.inject(outage, "ClusterOutage", "primary", expires_at=now + timedelta(seconds=3))
    assert state("mdrtest-primary-control-plane")["Paused"]
    assert not state("mdrtest-primary-worker2")["Running"]
    # The client rounds a deadline up to a whole second: the expiry in force is the provider's.
    deadline = {f["id"]: datetime.fromisoformat(f["expiresAt"]) for f in client.faults()}
    wait_until(
        "the outage undone by itself",
        lambda: not state("mdrtest-primary-control-plane")["Paused"],
        timeout=15,
    )
    unpaused_late = (datetime.now(UTC) - deadline[outage]).total_seconds()
    wait_until(
        "the failed node started by itself",
        lambda: state("mdrtest-primary-worker2")["Running"],
        timeout=15,
    )
    started_late = (datetime.now(UTC) - deadline[failure]).total_seconds()
    wait_until("no fault left", lambda: client.faults() == [], timeout=10)
    print(f"expiry: unpaused {unpaused_late:.2f} s, started {started_late:.2f} s after expiresAt")
    # The expiry check runs every second; the rest is docker's time (an unpause ~0.1 s, a
    # start with its routes ~0.7 s here), with some margin for this loaded 2-core machine.
    assert 0 <= unpaused_late <= 1.5
    assert 0 <= started_late <= 2.5
    # It answers where the hub's pods reach it: the gateway, dialled from inside the network;
    # every container there reaches it, so it answers only with the token.
    url = f"http://{provider.gateway}:{provider.port}/faults"
    probe = (
        "import sys, urllib.error, urllib.request\n"
        f"request = urllib.request.Request({url!r}, headers=dict(h.split(': ', 1) "
        "for h in sys.argv[1:]))\n"
        "try:\n"
        "    print(urllib.request.urlopen(request, timeout=5).read().decode())\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code)\n"
    )
    authorized = f"Authorization: Bearer {client.token}"
    assert json.loads(docker("exec", WORKER, "python3", "-c", probe, authorized)) == {"faults": []}
    assert docker("exec", WORKER, "python3", "-c", probe).strip() == "401"


def test_a_provider_started_after_a_faults_expiry_undoes_it_at_start(
    provider: Provider,
) -> None:
    client = provider.start()
    fid = fault_id()
    client.inject(
        fid, "NodeFailure", "primary", WORKER, expires_at=datetime.now(UTC) + timedelta(seconds=2)
    )
    provider.stop()
    saved = json.loads(provider.state.read_text())["faults"]
    assert [f["id"] for f in saved] == [fid] and saved[0]["state"] == "active"
    time.sleep(3.2)
    assert not state(WORKER)["Running"]  # nobody undid it while no provider ran
    t0 = time.monotonic()
    client = provider.start()
    started_s = wait_until("undone at start", lambda: state(WORKER)["Running"], timeout=10)
    wait_until("no fault left", lambda: client.faults() == [], timeout=10)
    assert json.loads(provider.state.read_text())["faults"] == []
    print(f"restart: undone {time.monotonic() - t0:.2f} s after the start ({started_s:.2f} s)")
