"""The drill's traffic probe and golden-set classifier against real tiny HTTP servers on
127.0.0.1 (a model server, one that answers 503, one that sleeps past the timeout) and a fake
hub apiserver; resolvers in most tests are plain functions. Timing bounds are loose on
purpose: a loaded 2-core machine must not make them flaky."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from modeldr.drills.checks import ask_digests, served_by
from modeldr.drills.probe import (
    CLUSTER_HEADER,
    Endpoints,
    ProbeError,
    TrafficProbe,
    classify,
    hub_slice_resolver,
    url_resolver,
)
from modeldr.drills.probe_stats import ProbeSample

INPUTS = ("great product, fast delivery", "arrived broken, want a refund")


def label_of(text: str) -> str:
    return "positive" if "great" in text else "negative"


class Server(ThreadingHTTPServer):
    """A stand-in model server. mode: ok (a classifier), 503, embeddings, garbage, lying
    (one prediction too few); `delay` seconds before answering; `cluster` sent in the
    cluster header when set."""

    def __init__(self, mode: str = "ok", delay: float = 0.0, cluster: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode, self.delay, self.cluster = mode, delay, cluster
        self.batches: list[list[str]] = []
        self.active = self.most_active = 0
        self.counter = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) closes the socket under a sleeping handler


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:
        server = self.server
        with server.counter:
            server.active += 1
            server.most_active = max(server.most_active, server.active)
        try:
            texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["texts"]
            server.batches.append(texts)
            time.sleep(server.delay)
            self._answer(texts)
        finally:
            with server.counter:
                server.active -= 1

    def do_GET(self) -> None:
        """V2 model metadata: a digest in `parameters` unless the mode is embeddings."""
        body: dict[str, Any] = {"name": "tiny-bert", "versions": ["1"]}
        if self.server.mode != "embeddings":
            body["parameters"] = {"digest": f"sha256:{self.server.port:064d}"}
        status = 200 if self.path == "/v2/models/tiny-bert" else 404
        data = json.dumps(body if status == 200 else {"error": "unknown model"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, texts: list[str]) -> None:
        mode = self.server.mode
        status = 200
        body: dict[str, Any] = {"model": "tiny-bert", "version": "1"}
        if mode == "503":
            status, body = 503, {"error": "shedding load"}
        elif mode == "embeddings":
            body["embeddings"] = [[0.1, 0.2] for _ in texts]
        elif mode in ("ok", "lying"):
            shown = texts[:-1] if mode == "lying" else texts
            body["predictions"] = [{"label": label_of(t), "score": 0.9} for t in shown]
        data = b"<html>oops</html>" if mode == "garbage" else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.cluster:
            self.send_header(CLUSTER_HEADER, self.server.cluster)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(mode: str = "ok", delay: float = 0.0, cluster: str | None = None) -> Server:
        server = Server(mode, delay, cluster)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fixed(server: Server | None, cluster: str | None = "primary") -> Callable[[], Endpoints]:
    endpoints = (
        Endpoints((), 0, None, "nothing ready")
        if server is None
        else Endpoints(("127.0.0.1",), server.port, cluster)
    )
    return lambda: endpoints


def free_port() -> int:
    """A port nothing listens on (closed again at once): connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(resolver: Callable[[], Endpoints], **kwargs: Any) -> TrafficProbe:
    options: dict[str, Any] = {
        "rate_per_second": 20.0,
        "timeout_s": 1.0,
        "inputs": INPUTS,
        "max_seconds": 10.0,
    }
    return TrafficProbe(resolver, **(options | kwargs))


def run_for(seconds: float, *probes: TrafficProbe) -> None:
    for p in probes:
        p.start()
    time.sleep(seconds)
    for p in probes:
        assert p.stop(), "requests still in flight after stop()"


# --- the schedule -----------------------------------------------------------------------


def test_sends_at_the_rate_round_robin_and_stops_after_max_seconds(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    p = probe(fixed(server, "primary"), max_seconds=1.5)
    began = time.monotonic()
    p.start()
    assert p.wait(6.0), "the probe did not stop by itself after max_seconds"
    elapsed = time.monotonic() - began
    assert p.stopped_by_itself
    assert 1.2 <= elapsed < 4.0

    samples = p.samples()
    # Due at 0, 1/20, ... before 1.5 s: at most 30; a loaded machine may skip a few.
    assert 15 <= len(samples) <= 30
    assert all(s.ok and s.cluster == "primary" and s.error is None for s in samples)
    assert all(0 < s.latency < 1.0 for s in samples)
    assert 0.8 <= samples[-1].sent_at - samples[0].sent_at <= 1.5
    assert [s.sent_at for s in samples] == sorted(s.sent_at for s in samples)
    sent = [batch[0] for batch in server.batches]
    assert all(len(batch) == 1 for batch in server.batches)
    assert sent[:4] == [INPUTS[0], INPUTS[1], INPUTS[0], INPUTS[1]]
    counters = p.counters()
    assert counters.sent == counters.succeeded == len(samples)
    assert counters.failed == counters.dropped == 0
    assert p.samples(since=samples[10].sent_at) == samples[10:]


def test_a_stalled_scheduler_sends_a_few_overdue_requests_and_skips_the_rest(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    offset = [0.0]
    p = probe(fixed(server), clock=lambda: time.monotonic() + offset[0])
    p.start()
    time.sleep(0.3)
    offset[0] = 2.0  # the scheduler wakes 2 s (40 requests) late
    time.sleep(0.3)
    assert p.stop()
    counters = p.counters()
    assert 30 <= counters.skipped <= 45
    # No burst of 40: about 0.6 s of requests at 20/s plus at most MAX_CATCH_UP.
    assert counters.sent <= 0.6 * 20 + 3 + 4


def test_stop_joins_quickly_and_sends_nothing_after(serve: Callable[..., Server]) -> None:
    p = probe(fixed(serve()))
    p.start()
    time.sleep(0.3)
    began = time.monotonic()
    assert p.stop()
    assert time.monotonic() - began < 1.0
    sent = p.counters().sent
    time.sleep(0.2)
    assert p.counters().sent == sent > 0
    assert not p.running and not p.stopped_by_itself


def test_stop_waits_a_bounded_time_for_slow_requests(serve: Callable[..., Server]) -> None:
    p = probe(fixed(serve(delay=2.0)), timeout_s=1.5, rate_per_second=10.0)
    p.start()
    time.sleep(0.3)
    began = time.monotonic()
    assert not p.stop(wait_s=0.2)  # answers take 2 s: still in flight
    assert time.monotonic() - began < 0.8
    assert p.wait(3.0)  # and they end by the client's timeout
    assert all(s.error == "timeout" for s in p.samples())


def test_bounded_concurrency_fails_what_it_cannot_send(serve: Callable[..., Server]) -> None:
    server = serve(delay=0.8)
    p = probe(fixed(server), timeout_s=2.0, max_in_flight=2)
    run_for(0.5, p)
    saturated = [s for s in p.samples() if s.error and s.error.startswith("client saturated")]
    assert saturated and all(s.latency == 0 and not s.ok for s in saturated)
    assert p.counters().saturated == len(saturated)
    assert server.most_active <= 2
    assert sum(s.ok for s in p.samples()) >= 2


# --- failures ---------------------------------------------------------------------------


def test_failures_are_samples_with_short_errors(serve: Callable[..., Server]) -> None:
    refusing = Endpoints(("127.0.0.1",), free_port(), "primary")
    probes = {
        "HTTP 503": probe(fixed(serve("503"), "standby")),
        "timeout": probe(fixed(serve(delay=1.0), "standby"), timeout_s=0.2),
        "connection refused": probe(lambda: refusing),
        "bad response: not JSON": probe(fixed(serve("garbage"), "standby")),
    }
    run_for(0.6, *probes.values())
    for error, p in probes.items():
        samples = p.samples()
        assert samples, error
        assert all(not s.ok and s.error == error for s in samples), (error, samples[:3])
        assert p.last_error == error
        assert p.counters().failed == len(samples)
    assert all(s.cluster == "standby" for s in probes["HTTP 503"].samples())
    assert all(0.15 <= s.latency < 1.0 for s in probes["timeout"].samples())


def test_no_endpoints_are_failures_with_latency_zero_and_reresolved_at_once() -> None:
    p = probe(fixed(None), refresh_s=60.0)
    run_for(0.6, p)
    samples = p.samples()
    assert len(samples) >= 5
    assert all(
        s == ProbeSample(s.sent_at, 0.0, False, None, "no ready endpoints", s.input_index)
        for s in samples
    )
    counters = p.counters()
    assert counters.unsent == counters.failed == len(samples) and counters.sent == 0
    assert 2 <= counters.resolves <= 0.6 / 0.1 + 2  # at once after a failure, throttled
    assert p.last_error in ("no ready endpoints", "nothing ready")


def test_an_error_reresolves_and_follows_a_failover(serve: Callable[..., Server]) -> None:
    old, new = serve("503"), serve()
    calls = [0]

    def resolver() -> Endpoints:  # the hub switched just after the first read
        calls[0] += 1
        if calls[0] == 1:
            return Endpoints(("127.0.0.1",), old.port, "primary")
        return Endpoints(("127.0.0.1",), new.port, "standby")

    p = probe(resolver, refresh_s=60.0)  # only the error can make it re-read soon
    run_for(1.0, p)
    samples = p.samples()
    assert samples[0].cluster == "primary" and samples[0].error == "HTTP 503"
    first_ok = next(s for s in samples if s.ok)
    assert first_ok.cluster == "standby"
    assert first_ok.sent_at - samples[0].sent_at < 0.6
    assert all(s.ok and s.cluster == "standby" for s in samples if s.sent_at >= first_ok.sent_at)


def test_an_unreadable_source_keeps_the_endpoints_it_knew(serve: Callable[..., Server]) -> None:
    server = serve()
    good = Endpoints(("127.0.0.1",), server.port, "primary")
    unreadable = Endpoints((), 0, None, "hub unreachable", read_failed=True)
    answers = iter([good])

    def resolver() -> Endpoints:
        return next(answers, unreadable)

    p = probe(resolver, refresh_s=0.1)
    run_for(0.6, p)
    assert all(s.ok for s in p.samples())
    assert p.counters().resolve_errors >= 2
    assert p.last_error == "hub unreachable" and p.endpoints == good


def test_a_resolver_that_raises_does_not_stop_the_probe() -> None:
    def resolver() -> Endpoints:
        raise RuntimeError("boom")

    p = probe(resolver)
    run_for(0.3, p)
    assert p.samples() and all(s.error == "no ready endpoints" for s in p.samples())
    assert p.endpoints.error == "resolver failed: RuntimeError: boom"


def test_the_cluster_header_of_an_entry_point_names_the_cluster(
    serve: Callable[..., Server],
) -> None:
    server = serve(cluster="standby")
    p = probe(url_resolver(f"http://127.0.0.1:{server.port}"))
    run_for(0.3, p)
    assert p.samples() and all(s.ok and s.cluster == "standby" for s in p.samples())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        probe(fixed(None), rate_per_second=0)
    with pytest.raises(ValueError):
        probe(fixed(None), inputs=())


# --- resolvers --------------------------------------------------------------------------


def test_url_resolver_and_urls() -> None:
    assert url_resolver("http://127.0.0.1:30080")() == Endpoints(("127.0.0.1",), 30080)
    gateway = url_resolver("https://gw.example.com/models/tiny-bert/predict")()
    assert (
        gateway.url(gateway.addresses[0]) == "https://gw.example.com:443/models/tiny-bert/predict"
    )
    assert url_resolver("http://[::1]:8080/")().url("::1") == "http://[::1]:8080/predict"
    assert Endpoints(("fd00::5",), 8080).url("fd00::5") == "http://[fd00::5]:8080/predict"
    for bad in ("ftp://127.0.0.1/", "127.0.0.1:8080", "http://127.0.0.1:99999"):
        with pytest.raises(ProbeError):
            url_resolver(bad)


def slice_(name: str, service: str, ports: list[dict[str, Any]], endpoints: list[Any]) -> Any:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/service-name": service},
            "annotations": {"modeldr.io/active-cluster": "primary"},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }


SLICES = [
    slice_(
        "tiny-bert-extra",
        "tiny-bert",
        [{"name": "http", "port": 8080}],
        [{"addresses": ["127.1.0.8"], "conditions": {"ready": True}}],
    ),
    slice_(
        "tiny-bert-other-port",
        "tiny-bert",
        [{"name": "http", "port": 9000}],
        [{"addresses": ["127.1.0.9"]}],
    ),
    slice_(
        "tiny-bert-modeldr",
        "tiny-bert",
        [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
        [
            {"addresses": ["127.1.0.5"], "conditions": {"ready": True}},
            {"addresses": ["127.1.0.6"], "conditions": {"ready": False}},
            {"addresses": ["127.1.0.7"]},
        ],
    ),
    slice_(
        "unready-modeldr",
        "unready",
        [{"port": 8080}],
        [{"addresses": ["127.1.0.10"], "conditions": {"ready": False}}],
    ),
    slice_(
        "other-modeldr", "other", [{"name": "http", "port": 7000}], [{"addresses": ["127.2.0.5"]}]
    ),
]


class FakeApiserver(BaseHTTPRequestHandler):
    """GET .../namespaces/<ns>/endpointslices?labelSelector=kubernetes.io/service-name=<s>;
    namespace `locked` answers 403."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        namespace = url.path.split("/")[5]
        selector = urllib.parse.parse_qs(url.query)["labelSelector"][0]
        key, _, value = selector.partition("=")
        items = [s for s in SLICES if s["metadata"]["labels"].get(key) == value]
        status = 403 if namespace == "locked" else 200
        body: dict[str, Any] = {"kind": "EndpointSliceList", "items": items}
        if status == 403:
            body = {"kind": "Status", "code": 403, "reason": "Forbidden"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[client.ApiClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiserver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    with client.ApiClient(configuration) as api:
        yield api
    server.shutdown()
    server.server_close()


def test_hub_slice_resolver_reads_ready_endpoints_of_the_service(hub: client.ApiClient) -> None:
    endpoints = hub_slice_resolver(hub, "modeldr-demo", "tiny-bert")()
    # The operator's slice first; ready unset counts as ready; the 9000 slice is left out.
    assert endpoints == Endpoints(("127.1.0.5", "127.1.0.7", "127.1.0.8"), 8080, "primary")

    unready = hub_slice_resolver(hub, "modeldr-demo", "unready")()
    assert unready.addresses == () and not unready.read_failed
    assert unready.error and unready.error.startswith("no ready endpoints")
    missing = hub_slice_resolver(hub, "modeldr-demo", "missing")()
    assert (
        missing.error == "no ready endpoints: no hub EndpointSlice of Service modeldr-demo/missing"
    )

    locked = hub_slice_resolver(hub, "locked", "tiny-bert")()
    assert locked.read_failed and locked.error and "403 Forbidden" in locked.error


def test_hub_slice_resolver_on_an_unreachable_hub() -> None:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    with client.ApiClient(configuration) as api:
        endpoints = hub_slice_resolver(api, "modeldr-demo", "tiny-bert")()
    assert endpoints.read_failed and endpoints.addresses == ()
    assert endpoints.error == (
        "hub EndpointSlices of Service modeldr-demo/tiny-bert unreadable: connection refused"
    )


# --- the golden-set classifier ----------------------------------------------------------


def test_classify_returns_labels_in_order_in_batches(serve: Callable[..., Server]) -> None:
    server = serve()
    texts = [f"{'great' if i % 3 else 'awful'} item {i}" for i in range(70)]
    endpoints = url_resolver(f"http://127.0.0.1:{server.port}")()
    assert classify(endpoints, texts, batch=32) == [label_of(t) for t in texts]
    assert [len(b) for b in server.batches] == [32, 32, 6]
    assert [t for b in server.batches for t in b] == texts
    assert classify(endpoints, []) == []


def test_classify_retries_once_on_another_address(serve: Callable[..., Server]) -> None:
    server = serve()  # on 127.0.0.1 only: 127.0.0.2 refuses the same port
    endpoints = Endpoints(("127.0.0.2", "127.0.0.1"), server.port, "standby")
    assert classify(endpoints, INPUTS, timeout_s=2.0) == ["positive", "negative"]

    nowhere = Endpoints(("127.0.0.2", "127.0.0.3"), server.port)
    with pytest.raises(ProbeError, match=r"127\.0\.0\.2.*refused.*127\.0\.0\.3.*refused"):
        classify(nowhere, INPUTS, timeout_s=2.0)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("503", "HTTP 503"),
        ("embeddings", "not classification output"),
        ("garbage", "not JSON"),
        ("lying", "1 predictions for 2 texts"),
    ],
)
def test_classify_refuses_a_bad_server(
    serve: Callable[..., Server], mode: str, message: str
) -> None:
    server = serve(mode)
    with pytest.raises(ProbeError, match=message):
        classify(Endpoints(("127.0.0.1",), server.port), INPUTS, timeout_s=2.0)


def test_classify_without_endpoints() -> None:
    with pytest.raises(ProbeError, match="cannot classify: nothing ready"):
        classify(Endpoints((), 0, None, "nothing ready"), INPUTS)


def test_each_answer_records_its_input_and_the_label_answered(
    serve: Callable[..., Server],
) -> None:
    """What drills/answers.py judges: which input a request sent and the label it got;
    a failed request or an answer without a label records no label."""
    p = probe(fixed(serve()), max_seconds=0.5)
    run_for(0.8, p)
    samples = p.samples()
    assert len(samples) >= 5 and all(s.ok for s in samples)
    for s in samples:
        assert s.input_index in (0, 1)
        assert s.answer == label_of(INPUTS[s.input_index])
    unlabelled = probe(fixed(serve("embeddings")), max_seconds=0.3)
    failing = probe(fixed(serve("503")), max_seconds=0.3)
    run_for(0.5, unlabelled, failing)
    assert all(s.ok and s.answer is None for s in unlabelled.samples())
    assert all(not s.ok and s.answer is None for s in failing.samples())


def test_served_digests_are_asked_of_each_server(serve: Callable[..., Server]) -> None:
    """The digest each server reports (V2 model metadata), not what a Deployment says: one
    per cluster when they agree, one per server when they do not, unknown when one cannot
    say (another server, the wrong model name, nobody listening)."""
    a, b = serve(), serve()
    one = Endpoints(("127.0.0.1",), a.port, "primary")
    digests, errors = ask_digests(one, "tiny-bert")
    assert digests == {"127.0.0.1": f"sha256:{a.port:064d}"} and errors == []
    assert served_by("primary", digests) == {"primary": f"sha256:{a.port:064d}"}
    # Two servers answering on different ports stand for two replicas that disagree.
    mixed: dict[str, str | None] = {
        "127.0.0.1": f"sha256:{a.port:064d}",
        "127.0.0.2": f"sha256:{b.port:064d}",
    }
    assert served_by("standby", mixed) == {
        "standby 127.0.0.1": f"sha256:{a.port:064d}",
        "standby 127.0.0.2": f"sha256:{b.port:064d}",
    }
    digests, errors = ask_digests(one, "another-model")
    assert digests == {"127.0.0.1": None} and "HTTP 404" in errors[0]
    assert served_by("primary", digests) == {"primary": None}
    silent = Endpoints(("127.0.0.1",), serve("embeddings").port, "primary")
    assert "reports no parameters.digest" in ask_digests(silent, "tiny-bert")[1][0]
    closed = Endpoints(("127.0.0.1",), free_port(), "primary")
    assert "connection refused" in ask_digests(closed, "tiny-bert")[1][0]
    assert served_by("primary", {}) == {"primary": None}
