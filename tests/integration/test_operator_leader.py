"""Two operator replicas on the sandbox hub, as the chart runs them: one Lease holder
reconciles, the other waits and takes over at once when the holder stops (it releases the
Lease on SIGTERM). Both run with the chart's ServiceAccount token, so the Lease RBAC
(create; get/update/patch on one name) is the chart's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator

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
    operator_up,
)

pytestmark = pytest.mark.integration

PEER_HEALTH_PORT = HEALTH_PORT + 1
PEER_METRICS_PORT = METRICS_PORT + 1


@pytest.fixture
def peer(sandbox: Sandbox) -> Iterator[subprocess.Popen[bytes]]:
    operator_up()
    log = open(sandbox_paths().logs / "operator-peer.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        operator_argv(),
        env={
            **os.environ,
            **operator_env("sandbox-operator-1", PEER_HEALTH_PORT, PEER_METRICS_PORT),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
        operator_up()  # leave the sandbox with its usual operator


def holder() -> str:
    api = client.CoordinationV1Api(kube.api_client("hub"))
    spec = api.read_namespaced_lease(LEASE, NAMESPACE).spec
    return str(spec.holder_identity or "")


def metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def test_one_leader_and_a_fast_takeover(peer: subprocess.Popen[bytes]) -> None:
    kube.wait_for(lambda: healthz(PEER_HEALTH_PORT) is not None, timeout=60,
                  what="the second replica's /healthz")  # fmt: skip
    time.sleep(3)  # a few retry periods: the peer must keep waiting
    assert (healthz(PEER_HEALTH_PORT) or {}).get("leader") is False
    assert (healthz(HEALTH_PORT) or {}).get("leader") is True
    assert holder() == "sandbox-operator-0"
    assert metric(PEER_METRICS_PORT, "modeldr_leader") == 0.0
    assert metric(METRICS_PORT, "modeldr_leader") == 1.0

    stopped = time.monotonic()
    operator_down()  # SIGTERM: the holder releases the Lease
    kube.wait_for(lambda: (healthz(PEER_HEALTH_PORT) or {}).get("leader") is True, timeout=20,
                  what="the second replica taking over")  # fmt: skip
    takeover = time.monotonic() - stopped
    assert holder() == "sandbox-operator-1"
    # Released, not expired: well inside the 15 s lease duration.
    assert takeover < 10, f"takeover took {takeover:.1f}s"
    assert peer.poll() is None
