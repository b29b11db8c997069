"""The drill's traffic probe, a synthetic client that behaves like a real one, and the
golden-set classifier client of the model checks.

Finding the servers: a *resolver* is a blocking callable that returns the `Endpoints` to use
now, one read per call. `hub_slice_resolver` reads the hub EndpointSlices of the
ModelDeployment's Service (what the endpointslice traffic provider keeps; the slice's
`modeldr.io/active-cluster` annotation says which member cluster its endpoints are in);
`url_resolver` is a fixed entry point (`spec.traffic.url`: a gateway, a load balancer).
Resolvers do not raise: an unreadable source is an `Endpoints` with `read_failed` set, and the
probe then keeps the endpoints it last knew, as a mesh sidecar or kube-proxy does while the
control plane is away.

Sending (`TrafficProbe`): `POST /predict` with one input at a fixed rate, open loop (request i
is due at start + i/rate whatever the answers do, so a slow or dead server shows up as
failures and latency, not as fewer requests). The schedule only dispatches; requests run on a
small pool of daemon worker threads, at most `max_in_flight` at once. Policies:

- catch-up: when the scheduler itself was stalled (a loaded machine, a GC pause) it sends
  at most MAX_CATCH_UP overdue requests at once and skips the older ones (counted in `skipped`, not
  recorded: they were never sent, which says nothing about the service);
- saturation: when `max_in_flight` requests are already waiting for answers, a due request
  fails at once with latency 0 ("client saturated"), like a client whose connection pool is
  exhausted; the default bound, ceil(rate * timeout) + 1 capped at 64, is only reached
  when answers take longer than the timeout or the rate is very high;
- no endpoints: a due request fails at once with latency 0 ("no ready endpoints"): the client
  could not send, which a real client counts as a failed request;
- re-resolution every `refresh_s`, and at once (but at most every MIN_RESOLVE_INTERVAL_S, to
  spare the hub apiserver a read per failed request) after a failed request;
- an answer that arrives after `timeout_s` is a timeout, as for a client with a deadline;
- memory: the newest `max_samples` samples are kept (default 200,000: almost 3 h at 20/s);
  older ones are dropped and counted in `dropped`.

The probe never raises out of its threads and stops by itself after `max_seconds`.
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

from modeldr.drills.probe_stats import ProbeSample
from modeldr.drills.rate import RateSchedule
from modeldr.kube.constants import ACTIVE_CLUSTER_ANNOTATION
from modeldr.kube.errors import OperatorError
from modeldr.kube.httpclient import opener

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # Kubernetes' own link slice → Service
# Set by an entry point (a gateway) that knows which member cluster answered; when present it
# names the sample's cluster instead of the resolver's.
CLUSTER_HEADER = "Modeldr-Cluster"
HUB_REQUEST_TIMEOUT = (1.0, 3.0)  # connect, read: a slow hub must not stall re-resolution
MAX_CATCH_UP = 3
RESCHEDULE_S = 0.25
MAX_IN_FLIGHT = 64
MAX_SAMPLES = 200_000
MIN_RESOLVE_INTERVAL_S = 0.1
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_ERROR_CHARS = 200
NO_ENDPOINTS = "no ready endpoints"


class ProbeError(OperatorError):
    """The model server could not be reached or did not answer as a classifier should."""


@dataclass(frozen=True)
class Endpoints:
    addresses: tuple[str, ...]  # ready addresses (or host names), in the order to use them
    port: int
    cluster: str | None = None  # the member cluster they are in, when the source says so
    error: str | None = None  # why none could be resolved
    read_failed: bool = False  # the source could not be read (not: it listed none)
    scheme: str = "http"
    path: str = ""  # a path prefix of the entry point, e.g. "/models/tiny-bert"

    def url(self, address: str, route: str = "/predict") -> str:
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        return f"{self.scheme}://{host}:{self.port}{self.path}{route}"


Resolver = Callable[[], Endpoints]


# --- resolvers --------------------------------------------------------------------------


def hub_slice_resolver(
    hub: client.ApiClient,
    namespace: str,
    service: str,
    *,
    request_timeout: tuple[float, float] = HUB_REQUEST_TIMEOUT,
) -> Resolver:
    """Ready endpoints of the hub EndpointSlices of Service `namespace/service`."""
    discovery = client.DiscoveryV1Api(hub)
    selector = f"{SERVICE_NAME_LABEL}={service}"
    where = f"Service {namespace}/{service}"

    def resolve() -> Endpoints:
        try:
            listing = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=selector, _request_timeout=request_timeout
            )
        except client.ApiException as exc:
            reason = f"{exc.status} {exc.reason}"
            return _unreadable(f"hub EndpointSlices of {where} unreadable: {reason}")
        except Exception as exc:  # urllib3's connection errors and timeouts
            return _unreadable(f"hub EndpointSlices of {where} unreadable: {describe(exc)}")
        return endpoints_from_slices(listing.items or [], service, where)

    return resolve


def _unreadable(message: str) -> Endpoints:
    return Endpoints((), 0, None, message, read_failed=True)


def endpoints_from_slices(slices: Iterable[Any], service: str, where: str) -> Endpoints:
    """The ready addresses of EndpointSlices (kubernetes client models) of one Service.

    The operator's slice (`<service>-modeldr`) comes first, then the others by name; the port
    of the first slice with ready endpoints (named `http`, else its first) is the port, and
    other slices contribute only when they serve on that port. Ready means conditions.ready
    is not False (Kubernetes: unset means ready). The cluster is the slices' active-cluster
    annotation when they agree on one."""
    ours = f"{service}-modeldr"
    ordered = sorted(slices, key=lambda s: (s.metadata.name != ours, s.metadata.name))
    if not ordered:
        return Endpoints((), 0, None, f"{NO_ENDPOINTS}: no hub EndpointSlice of {where}")
    port: int | None = None
    addresses: list[str] = []
    clusters: set[str | None] = set()
    for item in ordered:
        ready = _ready_addresses(item)
        item_port = _http_port(item)
        if not ready or item_port is None or (port is not None and item_port != port):
            continue
        port = item_port
        addresses.extend(a for a in ready if a not in addresses)
        clusters.add((item.metadata.annotations or {}).get(ACTIVE_CLUSTER_ANNOTATION))
    cluster = next(iter(clusters)) if len(clusters) == 1 else None
    if port is None:
        return Endpoints((), 0, None, f"{NO_ENDPOINTS} in the hub EndpointSlices of {where}")
    return Endpoints(tuple(addresses), port, cluster)


def _ready_addresses(item: Any) -> list[str]:
    return [
        address
        for endpoint in item.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
        for address in endpoint.addresses or []
    ]


def _http_port(item: Any) -> int | None:
    ports = [p for p in item.ports or [] if p.port]
    named = [p for p in ports if p.name == "http"]
    chosen = (named or ports or [None])[0]
    return None if chosen is None else int(chosen.port)


def url_resolver(url: str) -> Resolver:
    """A fixed entry point: `http(s)://host[:port][/prefix]`; `/predict` is appended unless
    the URL already ends with it. Raises ProbeError at once for a URL it cannot use."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"traffic URL {url!r}: want http(s)://host[:port][/path]")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ProbeError(f"traffic URL {url!r}: {exc}") from None
    path = parts.path.rstrip("/")
    path = path.removesuffix("/predict")
    endpoints = Endpoints((parts.hostname,), port, None, scheme=parts.scheme, path=path)
    return lambda: endpoints


# --- one request --------------------------------------------------------------------------


def post_predict(
    endpoints: Endpoints, address: str, texts: Sequence[str], timeout_s: float
) -> tuple[dict[str, Any], str | None]:
    """POST /predict; the JSON object answered and the cluster header. Raises urllib's
    errors (HTTPError for a status other than 2xx) or ProbeError for a body that is not a
    JSON object."""
    url = endpoints.url(address)
    request = urllib.request.Request(
        url,
        data=json.dumps({"texts": list(texts)}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with opener(url).open(request, timeout=timeout_s) as response:
        if response.status != 200:
            raise ProbeError(f"HTTP {response.status}")
        body = response.read(MAX_RESPONSE_BYTES + 1)
        cluster = response.headers.get(CLUSTER_HEADER) or None
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProbeError(f"bad response: more than {MAX_RESPONSE_BYTES} bytes")
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise ProbeError("bad response: not JSON") from None
    if not isinstance(answer, dict):
        raise ProbeError("bad response: not a JSON object")
    return answer, cluster


def served_digest(endpoints: Endpoints, address: str, model: str, timeout_s: float) -> str:
    """The digest the server at `address` says it serves: its V2 model metadata's
    `parameters.digest` (modeldr-serve reports the manifest digest of the files it verified
    and loaded). Raises ProbeError when it cannot be had (another server, an error)."""
    url = endpoints.url(address, f"/v2/models/{urllib.parse.quote(model, safe='')}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener(url).open(request, timeout=timeout_s) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
        metadata = json.loads(body)
    except (ValueError, RecursionError):
        raise ProbeError(f"{url}: model metadata is not JSON") from None
    except Exception as exc:
        raise ProbeError(f"{url}: {describe(exc)}") from None
    parameters = metadata.get("parameters") if isinstance(metadata, dict) else None
    digest = parameters.get("digest") if isinstance(parameters, dict) else None
    if not isinstance(digest, str) or not digest:
        raise ProbeError(f"{url}: the model metadata reports no parameters.digest")
    return digest


def describe(exc: BaseException) -> str:
    """A short, groupable reason for a failed request: "timeout", "HTTP 503", ..."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return describe(reason) if isinstance(reason, BaseException) else _short(str(reason))
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return describe(exc.reason)  # the kubernetes client's connection failures
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # before: a TimeoutError child
        return "connection refused" if "refused" in str(exc).lower() else "cannot connect"
    if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, http.client.RemoteDisconnected):  # before ConnectionResetError: a child
        return "connection closed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ProbeError):
        return _short(str(exc))
    if isinstance(exc, http.client.HTTPException):
        return _short(f"bad HTTP response: {type(exc).__name__}")
    if isinstance(exc, OSError) and exc.strerror:
        return _short(exc.strerror.lower())
    return _short(f"{type(exc).__name__}: {exc}")


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


# --- the probe --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeCounters:
    sent: int  # requests put on the wire
    succeeded: int
    failed: int  # every failed sample, including those never sent
    unsent: int  # failed at once: no ready endpoints
    saturated: int  # failed at once: max_in_flight requests were waiting
    skipped: int  # due while the scheduler was stalled, beyond MAX_CATCH_UP: not sent
    dropped: int  # samples dropped (the oldest) to keep at most max_samples
    resolves: int
    resolve_errors: int


class TrafficProbe:
    def __init__(
        self,
        resolver: Resolver,
        *,
        rate_per_second: float,
        timeout_s: float,
        inputs: Sequence[str],
        max_seconds: float,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_in_flight: int | None = None,
        max_samples: int = MAX_SAMPLES,
        on_sample: Callable[[ProbeSample], None] | None = None,
    ) -> None:
        if rate_per_second <= 0 or timeout_s <= 0 or max_seconds <= 0 or refresh_s <= 0:
            raise ValueError("rate_per_second, timeout_s, max_seconds, refresh_s must be > 0")
        if not inputs:
            raise ValueError("the probe needs at least one input text")
        self.rate = rate_per_second
        self.timeout_s = timeout_s
        self.inputs = tuple(inputs)
        self.max_seconds = max_seconds
        self.refresh_s = refresh_s
        self.max_in_flight = max_in_flight or max(
            2, min(MAX_IN_FLIGHT, math.ceil(rate_per_second * timeout_s) + 1)
        )
        self._resolver = resolver
        # Called with every sample, outside the lock (the operator's metrics); must not raise.
        self._on_sample = on_sample
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # in-flight count or schedule end
        self._samples: collections.deque[ProbeSample] = collections.deque(maxlen=max_samples)
        self._endpoints = Endpoints((), 0, None, "not resolved yet")
        self._last_error: str | None = None
        self._counts = dict.fromkeys(ProbeCounters.__dataclass_fields__, 0)
        self._in_flight = 0
        self._workers: list[threading.Thread] = []
        self._jobs: collections.deque[tuple[Endpoints, str, int]] = collections.deque()
        self._job_ready = threading.Semaphore(0)
        self._halt = threading.Event()  # stop sending (asked, or max_seconds reached)
        self._wake_resolver = threading.Event()
        self._stop_requested = False
        self._scheduling = False
        self._resolved_at = -math.inf
        self._scheduler: threading.Thread | None = None
        self._schedule: RateSchedule | None = None  # made when the schedule starts
        self.started_at: float | None = None  # on `clock`

    # --- control --------------------------------------------------------------------------

    def start(self) -> TrafficProbe:
        if self._scheduler is not None:
            raise RuntimeError("a TrafficProbe starts once")
        self.started_at = self._clock()
        self._scheduling = True
        self._scheduler = threading.Thread(target=self._run, name="drill-probe", daemon=True)
        self._scheduler.start()
        return self

    def stop(self, wait_s: float | None = None) -> bool:
        """Stop sending and wait up to `wait_s` (default timeout_s + 1) for the requests in
        flight. True when nothing is left running; requests still in flight after that are
        recorded when they end."""
        self._stop_requested = True
        self._halt.set()
        self._wake_resolver.set()
        return self.wait(self.timeout_s + 1.0 if wait_s is None else wait_s)

    def wait(self, timeout_s: float) -> bool:
        """Wait until the schedule ended (stopped, or max_seconds) and no request is in
        flight; False when that did not happen within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._scheduling or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    @property
    def running(self) -> bool:
        with self._lock:
            return self._scheduling or self._in_flight > 0

    @property
    def stopped_by_itself(self) -> bool:
        return self._scheduler is not None and not self.running and not self._stop_requested

    def set_rate(self, rate_per_second: float, ramp_s: float = 0.0) -> None:
        """From now on, ramp linearly to `rate_per_second` over `ramp_s` seconds (a Load
        step); the plan's rate again after it. More requests in flight are allowed for it
        (still at most MAX_IN_FLIGHT)."""
        if rate_per_second <= 0 or ramp_s < 0:
            raise ValueError("rate_per_second must be > 0 and ramp_s >= 0")
        with self._lock:
            self.max_in_flight = max(
                self.max_in_flight,
                min(MAX_IN_FLIGHT, math.ceil(rate_per_second * self.timeout_s) + 1),
            )
            self.rate = rate_per_second
            if self._schedule is not None:
                self._schedule.change(self._clock(), rate_per_second, ramp_s)

    # --- what it saw ----------------------------------------------------------------------

    def samples(self, since: float | None = None) -> list[ProbeSample]:
        """The kept samples sent at or after `since`, in the order they were sent."""
        with self._lock:
            kept = list(self._samples)
        if since is not None:
            kept = [s for s in kept if s.sent_at >= since]
        kept.sort(key=lambda s: s.sent_at)
        return kept

    @property
    def last_error(self) -> str | None:
        with self._lock:
            return self._last_error

    @property
    def endpoints(self) -> Endpoints:
        with self._lock:
            return self._endpoints

    def counters(self) -> ProbeCounters:
        with self._lock:
            return ProbeCounters(**self._counts)

    # --- the schedule ---------------------------------------------------------------------

    def _run(self) -> None:
        resolver_thread = threading.Thread(
            target=self._resolve_loop, name="drill-probe-resolver", daemon=True
        )
        try:
            assert self.started_at is not None
            deadline = self.started_at + self.max_seconds
            self._resolve()  # the first endpoints, before the first request is due
            resolver_thread.start()
            with self._lock:
                self._schedule = RateSchedule(self._clock(), self.rate)
            i = 0  # request i is due when the schedule's count reaches i
            while not self._halt.is_set():
                with self._lock:
                    due = self._schedule.due(i)
                if due >= deadline:
                    break
                now = self._clock()
                if due > now:
                    # At most RESCHEDULE_S: a Load step's new rate takes effect within it.
                    self._halt.wait(min(due - now, RESCHEDULE_S))
                    continue
                with self._lock:
                    due_by_now = self._schedule.count(now)
                overdue = math.floor(due_by_now) - i + 1  # request i and those after
                if overdue > MAX_CATCH_UP:
                    skip = overdue - MAX_CATCH_UP
                    i += skip
                    self._count("skipped", skip)
                self._dispatch(i, now)
                i += 1
        except Exception as exc:  # a bug: say so, never raise out of the thread
            log.exception("traffic probe stopped by an error")
            with self._lock:
                self._last_error = f"probe stopped by an error: {describe(exc)}"
        finally:
            self._halt.set()
            self._wake_resolver.set()
            with self._changed:
                self._scheduling = False
                self._changed.notify_all()
                workers = len(self._workers)
            for _ in range(workers):  # one "exit" per worker, after the jobs queued before it
                self._job_ready.release()

    def _dispatch(self, i: int, now: float) -> None:
        index = i % len(self.inputs)
        worker: threading.Thread | None = None
        with self._lock:
            endpoints = self._endpoints
            if not endpoints.addresses:
                failure: str | None = NO_ENDPOINTS
                self._counts["unsent"] += 1
            elif self._in_flight >= self.max_in_flight:
                failure = f"client saturated: {self._in_flight} requests in flight"
                self._counts["saturated"] += 1
            else:
                failure = None
                address = endpoints.addresses[self._counts["sent"] % len(endpoints.addresses)]
                self._counts["sent"] += 1
                self._in_flight += 1
                self._jobs.append((endpoints, address, index))
                if len(self._workers) < self._in_flight:
                    # Workers >= requests in flight: a queued request never waits for one.
                    worker = threading.Thread(
                        target=self._work, name="drill-probe-worker", daemon=True
                    )
                    self._workers.append(worker)
        if failure is None:
            if worker is not None:
                worker.start()
            self._job_ready.release()
            return
        self._record(ProbeSample(now, 0.0, False, endpoints.cluster, failure, index))
        self._wake_resolver.set()

    def _work(self) -> None:
        while True:
            self._job_ready.acquire()
            with self._lock:
                if not self._jobs:
                    return  # the schedule ended and the queue is empty: exit
                endpoints, address, index = self._jobs.popleft()
            try:
                self._send(endpoints, address, index)
            except Exception:  # a bug in _send: never lose the in-flight count
                log.exception("traffic probe request failed unexpectedly")
            finally:
                with self._changed:
                    self._in_flight -= 1
                    self._changed.notify_all()

    def _send(self, endpoints: Endpoints, address: str, index: int) -> None:
        sent_at = self._clock()
        cluster = endpoints.cluster
        error: str | None = None
        label: str | None = None
        try:
            text = self.inputs[index]
            answer, answered_by = post_predict(endpoints, address, [text], self.timeout_s)
            cluster = answered_by or cluster
            if not _is_inference(answer, 1):
                error = "bad response: no predictions or embeddings"
            else:
                label = first_label(answer)
        except Exception as exc:
            error = describe(exc)
        latency = self._clock() - sent_at
        if error is None and latency > self.timeout_s:
            error = "timeout"  # answered, but after the client's deadline
        ok = error is None
        sample = ProbeSample(sent_at, latency, ok, cluster, error, index, label if ok else None)
        self._record(sample)
        if error is not None:
            self._wake_resolver.set()  # the endpoints may have moved: re-read them now

    def _record(self, sample: ProbeSample) -> None:
        with self._lock:
            if len(self._samples) == self._samples.maxlen:
                self._counts["dropped"] += 1
            self._samples.append(sample)
            self._counts["succeeded" if sample.ok else "failed"] += 1
            if sample.error:
                self._last_error = sample.error
        if self._on_sample is not None:
            try:
                self._on_sample(sample)
            except Exception:  # metrics are best-effort: never break the probe
                log.debug("on_sample failed", exc_info=True)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # --- resolution -----------------------------------------------------------------------

    def _resolve_loop(self) -> None:
        while not self._halt.is_set():
            self._wake_resolver.wait(self.refresh_s)
            self._wake_resolver.clear()
            # Several failures at once ask for one read; at most one read per interval.
            pause = self._resolved_at + MIN_RESOLVE_INTERVAL_S - self._clock()
            if pause > 0 and self._halt.wait(pause):
                return
            if self._halt.is_set():
                return
            self._resolve()

    def _resolve(self) -> None:
        try:
            endpoints = self._resolver()
        except Exception as exc:  # resolvers should not raise; a probe survives one that does
            endpoints = _unreadable(f"resolver failed: {describe(exc)}")
        self._resolved_at = self._clock()
        with self._lock:
            self._counts["resolves"] += 1
            if endpoints.error:
                self._counts["resolve_errors"] += 1
                self._last_error = endpoints.error
            # A source that could not be read says nothing new: keep what was known.
            if not (endpoints.read_failed and self._endpoints.addresses):
                self._endpoints = endpoints


def _is_inference(answer: dict[str, Any], count: int) -> bool:
    outputs = answer.get("predictions", answer.get("embeddings"))
    return isinstance(outputs, list) and len(outputs) == count


def first_label(answer: dict[str, Any]) -> str | None:
    """The label of a classifier's first prediction; None for embeddings or a prediction
    without a usable label (then the answer cannot be judged, drills/answers.py)."""
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        return None
    return label_of(predictions[0])


def label_of(prediction: object) -> str | None:
    """A prediction's label as text (class ids are compared as text); None without one."""
    label = prediction.get("label") if isinstance(prediction, dict) else None
    if isinstance(label, bool) or not isinstance(label, str | int):
        return None
    return str(label)


# --- the golden-set classifier ------------------------------------------------------------


def classify(
    endpoints: Endpoints, texts: Sequence[str], *, timeout_s: float = 10.0, batch: int = 32
) -> list[str]:
    """The label the server gives each text, in order, asked in batches of `batch` texts of
    one address (the first ready one; on a failure, the batch is retried once on the next
    address, which then serves the rest). Raises ProbeError when no answer can be had or an
    answer is not classification output."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not texts:
        return []
    if not endpoints.addresses:
        raise ProbeError(f"cannot classify: {endpoints.error or NO_ENDPOINTS}")
    addresses = endpoints.addresses
    current, failures = 0, []
    labels: list[str] = []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        while True:
            url = endpoints.url(addresses[current])
            try:
                labels.extend(_labels(endpoints, addresses[current], chunk, timeout_s))
                break
            except Exception as exc:
                failures.append(f"{url}: {describe(exc)}")
                if len(failures) > 1 or len(addresses) < 2:
                    raise ProbeError(f"classifier failed: {'; '.join(failures)}") from None
                current = 1
    return labels


def _labels(
    endpoints: Endpoints, address: str, texts: Sequence[str], timeout_s: float
) -> list[str]:
    answer, _ = post_predict(endpoints, address, texts, timeout_s)
    predictions = answer.get("predictions")
    if predictions is None:
        kind = "embeddings" if "embeddings" in answer else f"keys {sorted(answer)[:5]}"
        raise ProbeError(f"not classification output ({kind}, no predictions)")
    if not isinstance(predictions, list) or len(predictions) != len(texts):
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise ProbeError(f"bad response: {got} predictions for {len(texts)} texts")
    labels = []
    for prediction in predictions:
        label = label_of(prediction)
        if label is None:
            raise ProbeError("bad response: a prediction without a label")
        labels.append(label)
    return labels
