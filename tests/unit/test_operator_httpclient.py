"""The operator's own HTTP calls never send loopback traffic to an HTTP proxy."""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from modeldr.kube import httpclient, promql
from modeldr.kube.errors import TrafficError
from modeldr.operator.traffic.webhook import post_json
from tests.loopback import serve

# A proxy that refuses every connection: a request sent through it fails.
DEAD_PROXY = "http://127.0.0.1:9"


@pytest.fixture
def proxied_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    httpclient._opener.cache_clear()
    yield
    httpclient._opener.cache_clear()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]},
        }
        self._answer(json.dumps(body).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(b"ok")

    def _answer(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    with serve(_Handler) as url:
        yield url


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:9090", True),
        ("http://127.2.0.5:8000/x", True),
        ("http://localhost:9090", True),
        ("http://prom.localhost", True),
        ("http://[::1]:9090", True),
        ("http://192.0.2.1:9090", False),  # TEST-NET-1: classified only, never dialled
        ("https://hooks.example.com/x", False),
        ("http://prometheus.monitoring:9090", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert httpclient.is_loopback(url) is loopback


@pytest.mark.usefixtures("proxied_env")
def test_promql_reaches_a_loopback_prometheus_despite_http_proxy(server: str) -> None:
    result = promql.evaluate(server, "up")
    assert result.passed is True, result.message


@pytest.mark.usefixtures("proxied_env")
def test_webhook_reaches_a_loopback_receiver_despite_http_proxy(server: str) -> None:
    assert post_json(server + "/switch", {"activeCluster": "standby"}, 2.0) == 200


@pytest.mark.usefixtures("proxied_env")
def test_other_hosts_still_use_the_proxy_variables() -> None:
    def proxies(url: str) -> dict[str, str]:
        # ProxyHandler({}) has nothing to open, so the opener holds no proxy handler at all.
        handlers = httpclient.opener(url).handlers  # type: ignore[attr-defined]
        found = [h for h in handlers if isinstance(h, urllib.request.ProxyHandler)]
        return dict(found[0].proxies) if found else {}  # type: ignore[attr-defined]

    assert proxies("http://prometheus.monitoring:9090").get("http") == DEAD_PROXY
    assert proxies("http://127.0.0.1:9090") == {}


class _Tricky(BaseHTTPRequestHandler):
    """A user-given URL that answers a redirect (to the `server` fixture) or too much."""

    target = ""

    def do_GET(self) -> None:
        if self.path.startswith("/huge"):
            self.send_response(200)
            self.send_header("Content-Length", str(promql.MAX_ANSWER_BYTES + 10))
            self.end_headers()
            chunk = b"x" * 65536
            with contextlib.suppress(OSError):  # the reader stops early: its side closes
                for _ in range(promql.MAX_ANSWER_BYTES // len(chunk) + 1):
                    self.wfile.write(chunk)
            return
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def tricky(server: str) -> Iterator[str]:
    with serve(type("Handler", (_Tricky,), {"target": server})) as url:
        yield url


def test_no_operator_call_follows_a_redirect(tricky: str, server: str) -> None:
    # The server behind the redirect would answer a passing query: it must not be asked.
    outcome = promql.query(tricky, "up", 2.0)
    assert isinstance(outcome, promql.QueryUnavailable), outcome
    assert "HTTP 302, a redirect to " + server in outcome.message
    assert "follows none" in outcome.message
    with pytest.raises(TrafficError, match="HTTP 302 to " + server):
        post_json(tricky + "/switch", {"activeCluster": "standby"}, 2.0)
    with pytest.raises(urllib.error.HTTPError) as caught:
        httpclient.opener(tricky).open(tricky + "/predict", timeout=2.0)
    assert caught.value.code == 302


def test_a_prometheus_answer_over_the_limit_is_not_read_whole(tricky: str) -> None:
    outcome = promql.query(tricky + "/huge", "up", 5.0)
    assert isinstance(outcome, promql.QueryUnavailable), outcome
    assert f"over {promql.MAX_ANSWER_BYTES // 1024} KiB" in outcome.message


def test_read_bounded_reads_up_to_the_limit() -> None:
    assert httpclient.read_bounded(io.BytesIO(b"abc"), 3) == b"abc"
    with pytest.raises(httpclient.AnswerTooLarge):
        httpclient.read_bounded(io.BytesIO(b"abcd"), 3)
