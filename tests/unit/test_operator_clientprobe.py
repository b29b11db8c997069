"""The client probe of a health check (failover.probe): where it sends, what passes, and the
requests themselves against real loopback servers (one that answers, one that sheds load,
one that hangs past the timeout, a closed port)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from modeldr.api.modeldeployment import ClientProbe, ModelDeploymentSpec
from modeldr.operator.clientprobe import (
    MAX_PROBED,
    URL_REQUESTS,
    Answer,
    Targets,
    assess,
    http_failure,
    plan_targets,
    probe_cluster,
    send_all,
)
from tests.loopback import serve
from tests.specs import minimal_spec_dict


def probe(**fields: Any) -> ClientProbe:
    return ClientProbe.model_validate(fields)


def test_the_spec_probes_readiness_by_default_and_parses_one_with_defaults() -> None:
    default = ModelDeploymentSpec.parse(minimal_spec_dict()).failover.probe
    assert default.enabled and default.request == "readiness"
    assert (default.sample_size, default.min_success_percent) == (None, 50)
    # A merge patch that removes the probe (`probe: null`) brings the default back; the off
    # switch is `enabled: false`.
    nulled = ModelDeploymentSpec.parse(minimal_spec_dict(failover={"probe": None}))
    assert nulled.failover.probe == default
    off = minimal_spec_dict(failover={"probe": {"enabled": False}})
    assert not ModelDeploymentSpec.parse(off).failover.probe.enabled
    raw = minimal_spec_dict(failover={"probe": {"urls": {"standby": "https://lb.example/m"}}})
    parsed = ModelDeploymentSpec.parse(raw).failover.probe
    assert (parsed.request, parsed.timeout_milliseconds) == ("readiness", 2000)
    assert parsed.url_for("standby") == "https://lb.example/m" and parsed.url_for("primary") is None


def test_every_entry_address_is_asked_by_default_and_a_url_three_times() -> None:
    addresses = [f"127.1.0.{i}" for i in range(2, 12)]
    every = plan_targets(probe(), "primary", addresses, 8080, random.Random(1))
    assert every.addresses == tuple(sorted(addresses))
    many = [f"127.1.{i // 250}.{i % 250 + 2}" for i in range(MAX_PROBED + 10)]
    capped = plan_targets(probe(), "primary", many, 8080, random.Random(1))
    assert len(set(capped.addresses)) == MAX_PROBED
    url = plan_targets(probe(urls={"primary": "http://lb:80"}), "primary", [], 80, random.Random(1))
    assert url.urls == ("http://lb:80",) * URL_REQUESTS


def test_endpoints_are_sampled_without_repeats_and_all_taken_when_fewer() -> None:
    addresses = ["127.1.0.4", "127.1.0.2", "127.1.0.3", "127.1.0.5"]
    targets = plan_targets(probe(sampleSize=2), "primary", addresses, 8080, random.Random(1))
    assert targets.via == "endpoints" and len(set(targets.urls)) == 2
    assert all(u.startswith("http://127.1.0.") and u.endswith(":8080") for u in targets.urls)
    every = plan_targets(probe(sampleSize=9), "primary", addresses, 8080, random.Random(1))
    assert sorted(every.urls) == sorted(f"http://{a}:8080" for a in addresses)
    v6 = plan_targets(probe(sampleSize=1), "primary", ["::1"], 8080, random.Random(1))
    assert v6.urls == ("http://[::1]:8080",)


def test_a_role_with_a_url_is_probed_there_sample_size_times() -> None:
    p = probe(sampleSize=4, urls={"primary": "https://primary-lb.example/bert/"})
    targets = plan_targets(p, "primary", ["127.1.0.2"], 8080, random.Random(1))
    assert targets == Targets(("https://primary-lb.example/bert",) * 4, "url")
    # The other role has no URL: its endpoints.
    assert plan_targets(p, "standby", ["127.2.0.2"], 8080, random.Random(1)).via == "endpoints"


def test_assess_passes_at_the_share_and_names_counts_and_failure_kinds() -> None:
    p = probe(minSuccessPercent=50, timeoutMilliseconds=800)
    t = Targets(("a", "b", "c", "d"), "endpoints")
    ok, late, shed = Answer(True), Answer(False, "timed out"), Answer(False, "HTTP 503")
    half = assess(p, t, [ok, ok, late, shed])
    assert half.passed and (half.answered, half.sent) == (2, 4)
    low = assess(p, t, [ok, late, late, shed])
    assert not low.passed
    assert "1 of 4 answered within 800 ms, below the 50% needed" in low.message
    assert "failures: timed out x2, HTTP 503 x1" in low.message
    # Nothing sent (no endpoint to ask): no evidence that a client is served.
    assert not assess(p, Targets((), "endpoints"), []).passed
    assert assess(probe(minSuccessPercent=100), t, [ok] * 4).passed
    assert not assess(probe(minSuccessPercent=100), t, [ok, ok, ok, late]).passed


def test_the_message_is_the_same_for_the_same_outcome() -> None:
    # A steady outcome must give a steady status (no write and no wake-up per check).
    p, t = probe(), Targets(("a", "b"), "endpoints")
    first = assess(p, t, [Answer(True, "", 0.01), Answer(False, "timed out", 1.0)])
    second = assess(p, t, [Answer(False, "timed out", 1.2), Answer(True, "", 0.3)])
    assert first.message == second.message


class Model(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        texts = json.loads(self.rfile.read(length))["texts"]
        mode = self.server.state["mode"]  # type: ignore[attr-defined]
        self.server.state["seen"].append((self.path, texts))  # type: ignore[attr-defined]
        if mode == "hang":
            time.sleep(1.5)
        if mode == "shed":
            self._send(503, {"error": "overloaded"})
            return
        if mode == "empty":
            self._send(200, {})
            return
        if mode == "redirect":
            self.send_response(307)
            self.send_header("Location", self.server.state["to"] + self.path)  # type: ignore[attr-defined]
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(200, {"predictions": [{"label": "positive", "score": 0.9}]})

    def do_GET(self) -> None:
        self.server.state["seen"].append((self.path, None))  # type: ignore[attr-defined]
        if self.server.state["mode"] == "loading":  # type: ignore[attr-defined]
            # What modeldr-serve answers while its model loads after a restart.
            self._send(503, {"ready": False, "reason": "model is loading"})
            return
        self._send(200, {"ready": True})


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_requests_against_real_servers_count_only_timely_well_formed_answers() -> None:
    states: dict[str, dict[str, Any]] = {
        m: {"mode": m, "seen": []} for m in ("ok", "shed", "hang", "empty")
    }
    p = probe(request="inference", timeoutMilliseconds=500, text="is it up?")
    with (
        serve(Model, states["ok"]) as ok,
        serve(Model, states["shed"]) as shed,
        serve(Model, states["hang"]) as hang,
        serve(Model, states["empty"]) as empty,
    ):
        targets = Targets((ok, shed, hang, empty, closed_port()), "endpoints")
        started = time.monotonic()
        answers = asyncio.run(send_all(p, targets))
        took = time.monotonic() - started
    assert [a.ok for a in answers] == [True, False, False, False, False]
    assert [a.failure for a in answers[1:]] == [
        "HTTP 503",
        "timed out",
        "bad response",
        "connection refused",
    ]
    assert states["ok"]["seen"] == [("/predict", ["is it up?"])]
    # Concurrent, each bounded by the timeout: one timeout, not the sum.
    assert took < 1.4, took


def test_a_redirect_is_a_failed_answer_and_never_followed() -> None:
    target: dict[str, Any] = {"mode": "ok", "seen": []}
    p = probe(request="inference", timeoutMilliseconds=500, text="is it up?")
    with serve(Model, target) as ok:
        redirecting: dict[str, Any] = {"mode": "redirect", "seen": [], "to": ok}
        with serve(Model, redirecting) as elsewhere:
            [answer] = asyncio.run(send_all(p, Targets((elsewhere,), "url")))
    assert (answer.ok, answer.failure) == (False, "HTTP 307")
    assert target["seen"] == []  # the server the redirect named was never asked


def test_readiness_probe_gets_the_ready_path_and_a_cluster_is_probed_end_to_end() -> None:
    state: dict[str, Any] = {"mode": "ok", "seen": []}
    with serve(Model, state) as url:
        host, port = url.removeprefix("http://").split(":")
        outcome = asyncio.run(
            probe_cluster(probe(request="readiness"), "primary", [host], int(port))
        )
    assert outcome.passed and (outcome.answered, outcome.sent) == (1, 1)
    assert state["seen"] == [("/v2/health/ready", None)]


def test_a_loading_server_fails_the_readiness_probe_in_its_own_words() -> None:
    state: dict[str, Any] = {"mode": "loading", "seen": []}
    with serve(Model, state) as url:
        host, port = url.removeprefix("http://").split(":")
        outcome = asyncio.run(probe_cluster(probe(), "primary", [host], int(port)))
    assert not outcome.passed and outcome.failing == {host}
    assert "0 of 1 answered" in outcome.message
    assert "failures: HTTP 503: model is loading x1" in outcome.message


def test_a_failure_names_the_servers_reason_steadily_and_never_more() -> None:
    assert http_failure(503, b'{"reason": "last 12 inference batches failed"}') == (
        "HTTP 503: last N inference batches failed"
    )
    assert http_failure(503, b"<html>busy</html>") == "HTTP 503"
    assert http_failure(500, b'{"reason": ""}') == "HTTP 500"
    long = http_failure(503, json.dumps({"reason": "x" * 500 + "\u0007"}).encode())
    assert len(long) <= len("HTTP 503: ") + 60 and long.isprintable()


@pytest.mark.timeout(20)
def test_the_probe_never_blocks_the_event_loop() -> None:
    # kopf's loop keeps running other handlers while a probe waits for a dead endpoint.
    state: dict[str, Any] = {"mode": "hang", "seen": []}
    ticks = 0
    stop = threading.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.05)

    async def both(url: str) -> None:
        beat = asyncio.create_task(heartbeat())
        hanging = probe(request="inference", timeoutMilliseconds=600)
        await send_all(hanging, Targets((url,), "endpoints"))
        stop.set()
        await beat

    with serve(Model, state) as url:
        asyncio.run(both(url))
    assert ticks >= 8, ticks


def test_an_endpoint_check_names_the_addresses_that_answered_and_those_that_did_not() -> None:
    p = probe(sampleSize=3)
    targets = plan_targets(
        p, "primary", ["127.1.0.2", "127.1.0.1", "127.1.0.3"], 8080, random.Random(1)
    )
    assert [u.removeprefix("http://").split(":")[0] for u in targets.urls] == list(
        targets.addresses
    )
    by_url = {u: ("127.1.0.2" not in u) for u in targets.urls}
    outcome = assess(
        p, targets, [Answer(by_url[u], "" if by_url[u] else "timed out") for u in targets.urls]
    )
    assert outcome.answering == {"127.1.0.1", "127.1.0.3"} and outcome.failing == {"127.1.0.2"}
    # Through a URL there is no address to blame.
    url = plan_targets(
        probe(urls={"primary": "http://lb:80"}), "primary", ["127.1.0.1"], 8080, random.Random(1)
    )
    assert assess(p, url, [Answer(False, "timed out")]).failing == frozenset()
