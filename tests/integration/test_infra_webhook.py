"""The sandbox's infrastructure webhook, driven through the drill engine's client
(modeldr.drills.infra): NodeFailure and ClusterOutage made and undone for real, idempotent by
id, undone by itself when they expire, remembered across a webhook restart, and 4xx for what
it cannot do. Its security: every call but the health check needs the bearer token (an
anonymous or wrong one is refused and changes nothing), `expiresAt` is mandatory and capped,
a renewal is its own call that never re-creates an undone fault (not even one that arrives
late, while the undo holds the lock), an undone id is never injected again, and every
request is in the audit log."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import urllib3
from kubernetes import client

from modeldr.drills.infra import (
    MAX_EXPIRY_AHEAD_S,
    InfrastructureError,
    InfrastructureProvider,
)
from sandbox import infra_daemon, kube, webhook_server
from sandbox.api import FAILED_NODE_LEASE_HOLDER, Sandbox
from sandbox.config import FAILED_NODE_ANNOTATION, INFRA_WEBHOOK_PORT
from sandbox.infra_webhook import state_file

pytestmark = pytest.mark.integration

# A node without the model's GPU pods: failing it disturbs the least.
CLUSTER, NODE = "primary", "cpu-0"


def _id(what: str) -> str:
    return f"test-{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def provider(sandbox: Sandbox) -> InfrastructureProvider:
    # The same call operator-up makes: starts the daemon or reuses the running one.
    url = infra_daemon.ensure_running()
    assert url == f"http://127.0.0.1:{INFRA_WEBHOOK_PORT}"
    assert sandbox.status()["infra-webhook"] == url
    # An outage's restore takes seconds, and up to 150 s in the worst case.
    return InfrastructureProvider(url, infra_daemon.token(), timeout=180)


def soon(seconds: float = 120) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@contextlib.contextmanager
def undone(provider: InfrastructureProvider, fault_id: str) -> Iterator[None]:
    """Undo `fault_id` whatever happens (undo of an id that is gone is a no-op)."""
    try:
        yield
    finally:
        provider.undo(fault_id)


def lease_holder(cluster: str, node: str) -> str | None:
    coordination = client.CoordinationV1Api(kube.api_client(cluster))
    holder = coordination.read_namespaced_lease(node, "kube-node-lease").spec.holder_identity
    return str(holder) if holder is not None else None


def node_failed(cluster: str, node: str) -> bool:
    annotations = kube.core(cluster).read_node(node).metadata.annotations or {}
    return (
        lease_holder(cluster, node) == FAILED_NODE_LEASE_HOLDER
        and annotations.get(FAILED_NODE_ANNOTATION) == "true"
    )


def node_recovered(cluster: str, node: str) -> bool:
    annotations = kube.core(cluster).read_node(node).metadata.annotations or {}
    return (
        lease_holder(cluster, node) != FAILED_NODE_LEASE_HOLDER
        and FAILED_NODE_ANNOTATION not in annotations
    )


def ids(provider: InfrastructureProvider) -> list[str]:
    return [str(f["id"]) for f in provider.faults()]


def test_node_failure_is_injected_idempotently_and_undone(
    provider: InfrastructureProvider,
) -> None:
    fault_id = _id("node")
    with undone(provider, fault_id):
        provider.inject(fault_id, "NodeFailure", CLUSTER, NODE, expires_at=soon())
        # In effect when inject returns: the heartbeat (Lease) is taken, the node marked.
        assert node_failed(CLUSTER, NODE)
        # The same id again changes nothing and is not an error.
        provider.inject(fault_id, "NodeFailure", CLUSTER, NODE, expires_at=soon())
        [fault] = [f for f in provider.faults() if f["id"] == fault_id]
        assert fault["type"] == "NodeFailure" and fault["state"] == "active"
        assert (fault["cluster"], fault["node"]) == (CLUSTER, NODE)
        assert fault["injectedAt"].endswith("Z")
        # The same id for another target is refused.
        with pytest.raises(InfrastructureError, match="already used") as info:
            provider.inject(fault_id, "NodeFailure", CLUSTER, "gpu-0", expires_at=soon())
        assert info.value.permanent and info.value.status == 409
        provider.undo(fault_id)
        assert node_recovered(CLUSTER, NODE)
        assert fault_id not in ids(provider)
        provider.undo(fault_id)  # undone already: still 2xx


def test_undo_of_an_unknown_id_is_2xx(provider: InfrastructureProvider) -> None:
    provider.undo(_id("never-injected"))


def test_a_fault_that_expires_is_undone_by_the_webhook(provider: InfrastructureProvider) -> None:
    fault_id = _id("expiry")
    with undone(provider, fault_id):
        provider.inject(
            fault_id,
            "NodeFailure",
            CLUSTER,
            NODE,
            expires_at=datetime.now(UTC) + timedelta(seconds=3),
        )
        assert node_failed(CLUSTER, NODE)
        kube.wait_for(
            lambda: fault_id not in ids(provider) and node_recovered(CLUSTER, NODE),
            timeout=10,
            interval=0.25,
            what="the webhook to undo the expired NodeFailure by itself (about 3 s)",
        )


def test_a_restarted_webhook_remembers_its_faults_and_undoes_the_expired_at_start(
    provider: InfrastructureProvider,
) -> None:
    kept, expiring = _id("kept"), _id("expiring")
    with undone(provider, kept), undone(provider, expiring):
        provider.inject(kept, "NodeFailure", CLUSTER, NODE, expires_at=soon())
        provider.inject(
            expiring,
            "NodeFailure",
            CLUSTER,
            "gpu-1",
            expires_at=datetime.now(UTC) + timedelta(seconds=2),
        )
        assert infra_daemon.stop()
        time.sleep(3)  # gpu-1's fault expires while no webhook runs
        assert node_failed(CLUSTER, "gpu-1")
        infra_daemon.ensure_running()
        kube.wait_for(
            lambda: expiring not in ids(provider) and node_recovered(CLUSTER, "gpu-1"),
            timeout=10,
            interval=0.25,
            what="the restarted webhook to undo the fault that expired while it was down",
        )
        assert kept in ids(provider) and node_failed(CLUSTER, NODE)
        provider.undo(kept)
        assert node_recovered(CLUSTER, NODE)


def test_cluster_outage_of_standby_and_its_undo(
    sandbox: Sandbox, provider: InfrastructureProvider
) -> None:
    fault_id = _id("outage")
    host, port = urlsplit(kube.api_client("standby").configuration.host).netloc.split(":")
    try:
        with undone(provider, fault_id):
            provider.inject(fault_id, "ClusterOutage", "standby", expires_at=soon())
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, int(port)), timeout=2).close()
            assert kube.apiserver_ready("primary"), "an outage of standby must not touch primary"
            provider.inject(
                fault_id, "ClusterOutage", "standby", expires_at=soon()
            )  # harmless repeat
            # No node of a cluster in an outage can fail: a 409, nothing injected.
            with pytest.raises(InfrastructureError, match="is in an outage") as info:
                provider.inject(
                    _id("node-in-outage"), "NodeFailure", "standby", "cpu-0", expires_at=soon()
                )
            assert info.value.permanent
            # A renewal that arrives late: while the undo holds the provider's lock (the
            # restore takes seconds). It waits for the lock, finds the fault undone, and is
            # refused: it never takes the cluster down again.
            undo = threading.Thread(target=provider.undo, args=(fault_id,))
            undo.start()
            kube.wait_for(
                lambda: state_of(fault_id) == "undoing", timeout=10, interval=0.02, what="undo"
            )
            late = provider.with_timeout(60)
            with pytest.raises(InfrastructureError, match="never renewed again") as info:
                late.renew(fault_id, soon(30))
            assert info.value.permanent and info.value.status == 404
            undo.join(60)
            # The undo answered once the cluster was back, and it stays back.
            assert kube.apiserver_ready("standby")
            assert fault_id not in ids(provider)
            with pytest.raises(InfrastructureError, match="never injected again") as info:
                provider.inject(fault_id, "ClusterOutage", "standby", expires_at=soon())
            assert info.value.status == 409
            assert kube.apiserver_ready("standby") and fault_id not in ids(provider)
    finally:
        # Belt and braces for a shared sandbox: never leave standby dark.
        if sandbox.paths.outage_marker("standby").exists():
            sandbox.restore("standby")


@pytest.mark.parametrize(
    ("fault_type", "cluster", "node", "fragment"),
    [
        ("ClusterOutage", "nope", None, "unknown cluster 'nope'"),
        ("ClusterOutage", "hub", None, "unknown cluster 'hub'"),
        ("NodeFailure", CLUSTER, "no-such-node", "node 'no-such-node' does not exist"),
    ],
    ids=["unknown-cluster", "not-a-member", "unknown-node"],
)
def test_what_the_webhook_cannot_do_is_a_4xx_with_its_reason(
    provider: InfrastructureProvider,
    fault_type: str,
    cluster: str,
    node: str | None,
    fragment: str,
) -> None:
    fault_id = _id("refused")
    with undone(provider, fault_id):
        with pytest.raises(InfrastructureError) as info:
            provider.inject(fault_id, fault_type, cluster, node, expires_at=soon())
        assert info.value.permanent and info.value.status == 400
        assert fragment in str(info.value)
        assert fault_id not in ids(provider)


def state_of(fault_id: str) -> str | None:
    """The fault's state in the provider's state file (written before every change)."""
    try:
        faults = json.loads(state_file().read_text())["faults"]
    except (OSError, ValueError):
        return None
    return next((f.get("state") for f in faults if f.get("id") == fault_id), None)


def post(path: str, body: Mapping[str, object], token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = urllib3.PoolManager().request(
        "POST",
        f"http://127.0.0.1:{INFRA_WEBHOOK_PORT}{path}",
        body=json.dumps(body).encode(),
        headers=headers,
        timeout=30,
        retries=False,
    )
    return answer.status, json.loads(answer.data or b"{}")


def audit_lines() -> list[dict[str, object]]:
    path = webhook_server.audit_path(state_file())
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_calls_without_the_token_are_refused_audited_and_change_nothing(
    provider: InfrastructureProvider,
) -> None:
    fault_id = _id("anonymous")
    body = {"id": fault_id, "type": "NodeFailure", "cluster": CLUSTER, "node": NODE}
    body["expiresAt"] = soon().strftime("%Y-%m-%dT%H:%M:%SZ")
    for token in (None, "not-the-token"):
        status, answer = post("/inject", body, token)
        assert status == 401, answer
        assert "bearer token" in str(answer["error"])
    assert fault_id not in ids(provider) and node_recovered(CLUSTER, NODE)
    status, _ = post("/undo", {"id": fault_id}, None)
    assert status == 401
    # The client with a wrong token: a permanent error that says what to check.
    wrong = InfrastructureProvider(provider.url, "not-the-token", timeout=10)
    with pytest.raises(InfrastructureError, match="infrastructure-webhook-token") as info:
        wrong.faults()
    assert info.value.permanent and info.value.status == 401
    mine = [e for e in audit_lines() if e.get("id") == fault_id]
    assert [(e["path"], e["authenticated"], e["status"]) for e in mine] == [
        ("/inject", False, 401),
        ("/inject", False, 401),
        ("/undo", False, 401),
    ]
    assert all(e["remote"] == "127.0.0.1" and e["node"] == NODE for e in mine[:2])


def test_expiry_is_mandatory_and_capped_and_a_renewal_pushes_it(
    provider: InfrastructureProvider,
) -> None:
    fault_id = _id("expiry-rules")
    token = infra_daemon.token()
    body: dict[str, object] = {"id": fault_id, "type": "NodeFailure", "cluster": CLUSTER}
    body["node"] = NODE
    status, answer = post("/inject", body, token)
    assert status == 400 and "expiresAt is required" in str(answer["error"])
    with pytest.raises(InfrastructureError, match=f"at most {MAX_EXPIRY_AHEAD_S} s") as info:
        provider.inject(
            fault_id, "NodeFailure", CLUSTER, NODE, expires_at=soon(MAX_EXPIRY_AHEAD_S + 60)
        )
    assert info.value.status == 400 and fault_id not in ids(provider)
    # A renewal never makes a fault that is not in force.
    with pytest.raises(InfrastructureError, match="never makes one") as info:
        provider.renew(fault_id, soon(30))
    assert info.value.status == 404 and fault_id not in ids(provider)
    assert node_recovered(CLUSTER, NODE)
    with undone(provider, fault_id):
        provider.inject(fault_id, "NodeFailure", CLUSTER, NODE, expires_at=soon(120))
        first = next(f["expiresAt"] for f in provider.faults() if f["id"] == fault_id)
        provider.renew(fault_id, soon(40))
        renewed = next(f["expiresAt"] for f in provider.faults() if f["id"] == fault_id)
        assert renewed < first  # brought forward, as the engine's first renewal does
        # A repeated inject changes nothing, its expiry included.
        provider.inject(fault_id, "NodeFailure", CLUSTER, NODE, expires_at=soon(200))
        assert next(f["expiresAt"] for f in provider.faults() if f["id"] == fault_id) == renewed
