"""The webhook traffic provider against a real HTTP receiver on 127.0.0.1 (no sandbox needed)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

import modeldr
from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.operator.traffic import TrafficError
from modeldr.operator.traffic.base import Owner, TrafficTarget
from modeldr.operator.traffic.webhook import WebhookProvider
from tests.specs import minimal_spec

pytestmark = pytest.mark.integration

OWNER = Owner(namespace="ml", name="bert", uid="uid-1")
HUB = client.ApiClient()  # the webhook provider never calls the hub


@dataclass
class Receiver:
    """What the receiver answers next, and every POST it got."""

    url: str
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [post["json"] for post in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(min(length, 1 << 20))
            with state.lock:
                state.posts.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(raw)}
                )
            time.sleep(min(state.delay, 5.0))
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client gave up (timeout test): nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/modeldr/switch?team=ml"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def make_spec(url: str, timeout_seconds: int = 2) -> ModelDeploymentSpec:
    webhook = {"url": url, "timeoutSeconds": timeout_seconds}
    return minimal_spec(traffic={"provider": "webhook", "webhook": webhook})


def target(
    active: str, addresses: tuple[str, ...] = ("127.2.0.5",), reason: str = "failover"
) -> TrafficTarget:
    return TrafficTarget(
        active_cluster=active,
        primary_cluster="primary",
        standby_cluster="standby",
        addresses=addresses,
        port=8080,
        reason=reason,
    )


def test_posts_the_document_once_per_change(receiver: Receiver) -> None:
    provider, spec = WebhookProvider(), make_spec(receiver.url)

    provider.apply(HUB, OWNER, spec, target("standby"))
    [post] = receiver.posts
    assert post["path"] == "/modeldr/switch?team=ml"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["User-Agent"] == f"modeldr/{modeldr.__version__}"
    payload = post["json"]
    assert payload.pop("time").endswith("Z")
    assert payload == {
        "modelDeployment": {"namespace": "ml", "name": "bert", "uid": "uid-1"},
        "activeCluster": "standby",
        "previousCluster": None,
        "reason": "failover",
        "addresses": ["127.2.0.5"],
        "port": 8080,
    }

    provider.apply(HUB, OWNER, spec, target("standby", reason="resync"))
    assert len(receiver.posts) == 1, "same cluster and addresses: no POST"

    provider.apply(HUB, OWNER, spec, target("standby", ("127.2.0.5", "127.2.0.6")))
    provider.apply(HUB, OWNER, spec, target("primary", ("127.1.0.7",), reason="failback"))
    later = receiver.payloads()[1:]
    assert [(p["activeCluster"], p["previousCluster"], p["addresses"]) for p in later] == [
        ("standby", "standby", ["127.2.0.5", "127.2.0.6"]),
        ("primary", "standby", ["127.1.0.7"]),
    ]

    other = Owner(namespace="ml", name="gpt", uid="uid-2")
    provider.apply(HUB, other, spec, target("primary", ("127.1.0.7",)))
    assert len(receiver.posts) == 4, "memory is per ModelDeployment"

    restarted = WebhookProvider()
    restarted.apply(HUB, OWNER, spec, target("primary", ("127.1.0.7",)))
    assert len(receiver.posts) == 5, "the first apply after a start always POSTs"

    restarted.cleanup(HUB, OWNER, spec)
    restarted.apply(HUB, OWNER, spec, target("primary", ("127.1.0.7",)))
    assert len(receiver.posts) == 6, "cleanup forgets what was delivered"


def test_previous_cluster_from_the_caller_after_a_restart(receiver: Receiver) -> None:
    switched = TrafficTarget(
        active_cluster="standby",
        primary_cluster="primary",
        standby_cluster="standby",
        addresses=("127.2.0.5",),
        port=8080,
        extra={"previousCluster": "primary"},
    )
    WebhookProvider().apply(HUB, OWNER, make_spec(receiver.url), switched)
    assert receiver.payloads()[0]["previousCluster"] == "primary"


def test_error_status_is_a_traffic_error_and_is_retried(receiver: Receiver) -> None:
    provider, spec = WebhookProvider(), make_spec(receiver.url)
    receiver.status, receiver.body = 500, b'{"error": "traffic manager is read-only"}'
    with pytest.raises(TrafficError) as info:
        provider.apply(HUB, OWNER, spec, target("standby"))
    message = str(info.value)
    assert "HTTP 500" in message and "traffic manager is read-only" in message

    receiver.status, receiver.body = 204, b""
    provider.apply(HUB, OWNER, spec, target("standby"))
    assert len(receiver.posts) == 2, "a failed POST is not remembered: the next apply sends it"


def test_redirect_is_refused(receiver: Receiver) -> None:
    receiver.status, receiver.headers = 302, {"Location": "http://127.0.0.1:9/elsewhere"}
    with pytest.raises(TrafficError, match=re.escape("HTTP 302 to http://127.0.0.1:9/elsewhere")):
        WebhookProvider().apply(HUB, OWNER, make_spec(receiver.url), target("standby"))
    assert len(receiver.posts) == 1


def test_timeout_is_a_traffic_error(receiver: Receiver) -> None:
    receiver.delay = 2.5
    started = time.monotonic()
    with pytest.raises(TrafficError, match="unreachable"):
        WebhookProvider().apply(HUB, OWNER, make_spec(receiver.url, 1), target("standby"))
    assert time.monotonic() - started < 2.5


def test_connection_refused_is_a_traffic_error() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(TrafficError, match="unreachable"):
        WebhookProvider().apply(
            HUB, OWNER, make_spec(f"http://127.0.0.1:{free_port}/"), target("standby")
        )
