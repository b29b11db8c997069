"""The `modeldr operator` process on the sandbox hub, as the chart runs it: several replicas,
one Lease holder reconciling, the others waiting. All run with the chart's ServiceAccount
token (sandbox.operator_up), so the Lease RBAC (create; get/update/patch on one name) is the
chart's, not admin's.

- a replica that stops (SIGTERM) releases the Lease and a peer takes over at once;
- a replica that finds its Lease taken stops reconciling and exits non-zero at once; a
  waiting peer takes the Lease when it expires;
- every replica serves /healthz (200, JSON saying whether it leads) and /metrics
  (modeldr_leader).

The sandbox's usual operator (`make operator-up`) is put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
from kubernetes import client

from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from sandbox.operator_up import (
    HEALTH_PORT,
    LEASE,
    METRICS_PORT,
    NAMESPACE,
    healthz,
    operator_argv,
    operator_down,
    operator_env,
    operator_pid,
    operator_up,
)

pytestmark = pytest.mark.integration

Replica = subprocess.Popen[bytes]
StartReplica = Callable[[str, int], Replica]


def _stop(process: Replica) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def replicas(sandbox: Sandbox) -> Iterator[StartReplica]:
    """Start extra operator replicas (identity, port offset); all stopped afterwards, and the
    sandbox's operator started again if it ran before."""
    was_running = operator_pid() is not None
    started: list[tuple[Replica, IO[bytes]]] = []

    def start(identity: str, offset: int) -> Replica:
        log = open(log_path(identity), "ab")  # noqa: SIM115
        process = subprocess.Popen(
            operator_argv(),
            env={
                **os.environ,
                **operator_env(identity, HEALTH_PORT + offset, METRICS_PORT + offset),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append((process, log))
        return process

    try:
        yield start
    finally:
        for process, log in started:
            _stop(process)
            log.close()
        if was_running:
            operator_up()


def log_path(identity: str) -> Path:
    return sandbox_paths().logs / f"operator-{identity}.log"


def coordination() -> client.CoordinationV1Api:
    return client.CoordinationV1Api(kube.api_client("hub"))


def holder() -> str:
    return str(coordination().read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity or "")


def steal_lease(identity: str, duration_seconds: int) -> float:
    """Overwrite the Lease as another holder; return the monotonic time just before the write.

    The leader renews every 2 s, so a renewal can land between our read and our write: the
    write then gets 409 Conflict and is retried on the fresh object, as any client would.
    """
    for _ in range(10):
        lease = coordination().read_namespaced_lease(LEASE, NAMESPACE)
        lease.spec.holder_identity = identity
        lease.spec.lease_duration_seconds = duration_seconds
        lease.spec.renew_time = datetime.now(UTC)
        writing = time.monotonic()
        try:
            coordination().replace_namespaced_lease(LEASE, NAMESPACE, lease)
        except client.ApiException as error:
            if error.status != 409:
                raise
            continue
        return writing
    raise AssertionError("the Lease kept changing under 10 writes in a row")


def metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def leads(offset: int) -> bool:
    return (healthz(HEALTH_PORT + offset) or {}).get("leader") is True


def test_one_leader_and_a_fast_takeover(replicas: StartReplica) -> None:
    operator_up()
    peer = replicas("sandbox-operator-1", 1)
    kube.wait_for(
        lambda: healthz(HEALTH_PORT + 1) is not None,
        timeout=60,
        what="the second replica's /healthz",
    )
    time.sleep(3)  # a few retry periods: the peer must keep waiting
    # /healthz answers 200 on both (healthz() is None otherwise), saying who leads.
    assert healthz(HEALTH_PORT + 1) == {
        "status": "ok",
        "identity": "sandbox-operator-1",
        "leader": False,
        "leaderElection": True,
    }
    assert (healthz(HEALTH_PORT) or {}).get("leader") is True
    assert holder() == "sandbox-operator-0"
    assert metric(METRICS_PORT + 1, "modeldr_leader") == 0.0
    assert metric(METRICS_PORT, "modeldr_leader") == 1.0

    stopped = time.monotonic()
    operator_down()  # SIGTERM: the holder releases the Lease
    kube.wait_for(lambda: leads(1), timeout=20, what="the second replica taking over")
    takeover = time.monotonic() - stopped
    assert holder() == "sandbox-operator-1"
    assert metric(METRICS_PORT + 1, "modeldr_leader") == 1.0
    # Released, not expired: well inside the 15 s lease duration.
    assert takeover < 10, f"takeover took {takeover:.1f}s"
    assert peer.poll() is None
    assert "released Lease" in (sandbox_paths().logs / "operator.log").read_text()[-20000:]


def test_a_replica_whose_lease_is_taken_exits_at_once(replicas: StartReplica) -> None:
    operator_down()
    first = replicas("sandbox-operator-a", 2)
    kube.wait_for(lambda: leads(2), timeout=60, what="the first replica leading")
    second = replicas("sandbox-operator-b", 3)
    kube.wait_for(
        lambda: healthz(HEALTH_PORT + 3) is not None,
        timeout=60,
        what="the second replica's /healthz",
    )
    assert not leads(3)

    # Someone else writes the Lease (as admin): a split brain the holder must not ignore.
    taken = steal_lease("intruder", duration_seconds=4)

    code = first.wait(timeout=15)
    assert code == 1, f"the replica that lost the Lease exited {code}"
    # It notices at its next renewal (every 2 s), not after the renew deadline (10 s).
    assert time.monotonic() - taken < 8
    assert "leadership lost" in log_path("sandbox-operator-a").read_text()[-20000:]

    # The intruder never renews: the waiting replica takes over once 4 s have passed since
    # it saw the record change.
    kube.wait_for(lambda: leads(3), timeout=20, what="the second replica taking over")
    assert time.monotonic() - taken >= 4
    assert holder() == "sandbox-operator-b"
    assert second.poll() is None
