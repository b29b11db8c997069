"""The infrastructure webhook client against a real HTTP server on loopback: what it sends,
and how it tells a refused request (permanent) from a failure worth retrying (transient)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from modeldr.drills.infra import InfrastructureError, InfrastructureProvider
from modeldr.kube import httpclient
from modeldr.kube.errors import OperatorError
from tests.loopback import StatefulServer, serve


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Script:
    """What the server answers (status, body bytes) per path, and what it received."""

    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: StatefulServer

    def do_GET(self) -> None:
        self._handle(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(json.loads(self.rfile.read(length)) if length else None)

    def _handle(self, body: Any) -> None:
        script = self.server.state
        script.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        if script.delay:
            time.sleep(script.delay)
        status, data = script.answers.get(self.path, (200, b'{"ok": true}'))
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def url(script: Script) -> Iterator[str]:
    with serve(_Handler, script) as base:
        yield base


TOKEN = "s3cret-t0ken"
SOON = datetime(2030, 1, 1, tzinfo=UTC)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def test_inject_of_a_node_failure_posts_the_documented_document(url: str, script: Script) -> None:
    expires = datetime(2030, 1, 2, 4, 4, 5, 900000, tzinfo=timezone(timedelta(hours=1)))
    InfrastructureProvider(url, TOKEN).inject(
        "run-1/step-0", "NodeFailure", "primary", "gpu-0", expires_at=expires
    )
    [seen] = script.seen
    assert (seen.method, seen.path) == ("POST", "/inject")
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"].startswith("modeldr/")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.body == {
        "id": "run-1/step-0",
        "type": "NodeFailure",
        "cluster": "primary",
        "node": "gpu-0",
        "expiresAt": "2030-01-02T03:04:06Z",  # RFC 3339, UTC, whole seconds rounded up
    }


def test_inject_of_a_cluster_outage_has_no_node(url: str, script: Script) -> None:
    InfrastructureProvider(url + "/", TOKEN).inject(
        "f-2", "ClusterOutage", "standby", expires_at=SOON
    )
    assert script.seen[0].path == "/inject"  # the trailing slash of the base URL is dropped
    assert script.seen[0].body == {
        "id": "f-2",
        "type": "ClusterOutage",
        "cluster": "standby",
        "expiresAt": "2030-01-01T00:00:00Z",
    }


def test_renew_is_its_own_call_with_the_id_and_the_new_expiry(url: str, script: Script) -> None:
    InfrastructureProvider(url, TOKEN).renew("f-2", SOON)
    [seen] = script.seen
    assert (seen.method, seen.path) == ("POST", "/renew")
    assert seen.body == {"id": "f-2", "expiresAt": "2030-01-01T00:00:00Z"}
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_renewal_the_provider_no_longer_has_is_a_permanent_404(url: str, script: Script) -> None:
    script.answers["/renew"] = (404, _error("no fault 'f-2' in force"))
    with pytest.raises(InfrastructureError, match="no fault 'f-2' in force") as info:
        InfrastructureProvider(url, TOKEN).renew("f-2", SOON)
    assert info.value.permanent and info.value.status == 404


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_permanent_and_say_which_key_to_check(
    url: str, script: Script, status: int
) -> None:
    script.answers["/undo"] = (status, _error("no valid bearer token"))
    with pytest.raises(InfrastructureError, match="infrastructure-webhook-token") as info:
        InfrastructureProvider(url, TOKEN).undo("f")
    assert info.value.permanent and info.value.status == status


@pytest.mark.parametrize("token", ["", "  ", "two words"])
def test_a_provider_needs_a_one_word_token(token: str) -> None:
    with pytest.raises(InfrastructureError, match="one non-empty word"):
        InfrastructureProvider("http://127.0.0.1:9", token)


def test_the_token_never_shows_in_the_providers_repr() -> None:
    assert TOKEN not in repr(InfrastructureProvider("http://127.0.0.1:9", TOKEN))


def test_undo_posts_the_id(url: str, script: Script) -> None:
    InfrastructureProvider(url, TOKEN).undo("f-2")
    [seen] = script.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/undo", {"id": "f-2"})


def test_a_base_url_with_a_path_prefixes_every_request(url: str, script: Script) -> None:
    script.answers["/infra/v1/faults"] = (200, b'{"faults": []}')
    provider = InfrastructureProvider(url + "/infra/v1/", TOKEN)
    provider.undo("x")
    provider.faults()
    assert [s.path for s in script.seen] == ["/infra/v1/undo", "/infra/v1/faults"]


def test_faults_lists_what_the_provider_has_in_force(url: str, script: Script) -> None:
    fault = {
        "id": "f-1",
        "type": "NodeFailure",
        "cluster": "primary",
        "node": "gpu-1",
        "injectedAt": "2030-01-01T00:00:00Z",
        "expiresAt": None,
    }
    script.answers["/faults"] = (200, json.dumps({"faults": [fault]}).encode())
    assert InfrastructureProvider(url, TOKEN).faults() == [fault]
    assert script.seen[0].method == "GET" and script.seen[0].body is None


def test_faults_that_are_no_list_are_a_permanent_error(url: str, script: Script) -> None:
    script.answers["/faults"] = (200, b'{"faults": "none"}')
    with pytest.raises(InfrastructureError, match="no list of faults") as info:
        InfrastructureProvider(url, TOKEN).faults()
    assert info.value.permanent


def test_a_4xx_is_permanent_and_carries_the_providers_message(url: str, script: Script) -> None:
    script.answers["/inject"] = (400, _error("unknown cluster 'nope'"))
    with pytest.raises(InfrastructureError) as info:
        InfrastructureProvider(url, TOKEN).inject("f-3", "ClusterOutage", "nope", expires_at=SOON)
    error = info.value
    assert isinstance(error, OperatorError)
    assert error.permanent and error.status == 400
    assert error.detail == "unknown cluster 'nope'"
    assert "unknown cluster 'nope'" in str(error) and "HTTP 400" in str(error)


def test_a_4xx_without_a_json_error_quotes_the_start_of_the_body(url: str, script: Script) -> None:
    script.answers["/undo"] = (404, b"no such route " * 100)
    with pytest.raises(InfrastructureError) as info:
        InfrastructureProvider(url, TOKEN).undo("f-4")
    assert info.value.permanent and info.value.status == 404
    assert "no such route" in str(info.value) and str(info.value).endswith("...")


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_a_5xx_or_a_try_later_4xx_is_transient(url: str, script: Script, status: int) -> None:
    script.answers["/inject"] = (status, _error("cloud API throttled"))
    with pytest.raises(InfrastructureError) as info:
        InfrastructureProvider(url, TOKEN).inject(
            "f-5", "NodeFailure", "primary", "gpu-0", expires_at=SOON
        )
    assert not info.value.permanent and info.value.status == status
    assert "cloud API throttled" in str(info.value)


def test_a_redirect_is_not_followed_and_is_permanent(url: str, script: Script) -> None:
    script.answers["/inject"] = (307, b"")
    with pytest.raises(InfrastructureError, match="redirect") as info:
        InfrastructureProvider(url, TOKEN).inject(
            "f-6", "ClusterOutage", "primary", expires_at=SOON
        )
    assert info.value.permanent
    assert len(script.seen) == 1  # nothing was sent to the Location


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(InfrastructureError) as info:
        InfrastructureProvider(f"http://127.0.0.1:{port}", TOKEN, timeout=2).undo("f-7")
    assert not info.value.permanent and info.value.status is None


def test_a_provider_slower_than_the_timeout_is_transient(url: str, script: Script) -> None:
    script.delay = 1.0
    started = time.monotonic()
    with pytest.raises(InfrastructureError, match=r"timeout 0\.2s") as info:
        InfrastructureProvider(url, TOKEN, timeout=0.2).inject(
            "f-8", "ClusterOutage", "primary", expires_at=SOON
        )
    assert not info.value.permanent
    assert time.monotonic() - started < 1.0


def test_loopback_providers_are_dialled_without_the_proxy(
    url: str, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    httpclient._opener.cache_clear()
    try:
        InfrastructureProvider(url, TOKEN).undo("f-9")
    finally:
        httpclient._opener.cache_clear()
    assert script.seen[0].path == "/undo"


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://127.0.0.1/x",
        "127.0.0.1:19200",
        "http://",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:19200/?a=1",
        "file:///tmp/x",
    ],
)
def test_only_http_urls_with_a_host_are_accepted(bad: str) -> None:
    with pytest.raises(InfrastructureError) as info:
        InfrastructureProvider(bad, TOKEN)
    assert info.value.permanent


def test_https_is_accepted() -> None:
    assert InfrastructureProvider("https://infra.example.com/hooks/", TOKEN).url == (
        "https://infra.example.com/hooks"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("", "ClusterOutage", "primary"), "non-empty id"),
        (("f", "PodKill", "primary"), "not one the infrastructure provider makes"),
        (("f", "NodeFailure", "primary"), "NodeFailure needs a node"),
        (("f", "ClusterOutage", "primary", "gpu-0"), "not a node"),
        (("f", "ClusterOutage", ""), "needs a cluster"),
    ],
)
def test_requests_the_protocol_cannot_express_are_refused_before_sending(
    url: str, script: Script, args: tuple[Any, ...], fragment: str
) -> None:
    with pytest.raises(InfrastructureError, match=fragment) as info:
        InfrastructureProvider(url, TOKEN).inject(*args, expires_at=SOON)
    assert info.value.permanent
    assert script.seen == []


def test_a_naive_expiry_is_refused(url: str, script: Script) -> None:
    with pytest.raises(InfrastructureError, match="no time zone"):
        InfrastructureProvider(url, TOKEN).inject(
            "f", "ClusterOutage", "primary", expires_at=datetime(2030, 1, 1)
        )
    assert script.seen == []
    InfrastructureProvider(url, TOKEN).inject(
        "f", "ClusterOutage", "primary", expires_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    assert script.seen[0].body["expiresAt"] == "2030-01-01T00:00:00Z"
