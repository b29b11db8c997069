"""A synthetic inference client of the hub entry point (tests, benchmarks, the demo).

It finds model servers only through the hub's EndpointSlice of the ModelDeployment's
Service (what the endpointslice traffic provider maintains), sends `POST /predict` at a fixed
rate, and re-reads the slice every `refresh_s` (as a watching client such as a mesh sidecar
would see changes) and at once after an error. Bounded: it stops by itself after
`max_seconds`. Every address it dials must be loopback.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from sandbox import kube


def _loopback(address: str) -> str:
    if not address.startswith("127."):
        raise ValueError(f"refusing to dial {address}: the sandbox is loopback only")
    return address


def infer(address: str, text: str, port: int = 8080, timeout: float = 2.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{_loopback(address)}:{port}/predict",
        data=json.dumps({"texts": [text]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return dict(json.load(response))


def server_ready(address: str, port: int = 8080) -> bool:
    """The server itself says ready (GET /v2/health/ready), not just a Ready pod status."""
    try:
        url = f"http://{_loopback(address)}:{port}/v2/health/ready"
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except Exception:
        return False


def serving_addresses(cluster: str, namespace: str, service: str, port: int = 8080) -> list[str]:
    """Addresses a member's EndpointSlices list as ready and whose server answers ready: after
    a restore the control plane first shows the pods' stale Ready state."""
    listed = kube.ready_endpoint_addresses(cluster, namespace, service)
    return [a for a in listed if a.startswith("127.") and server_ready(a, port)]


@dataclass(frozen=True)
class Result:
    at: float  # time.time() when the request was sent
    address: str  # "" when the hub listed no address
    ok: bool
    error: str = ""


class HubProbe(threading.Thread):
    def __init__(
        self,
        namespace: str,
        service: str,
        *,
        rate: float = 20.0,
        max_seconds: float = 120.0,
        port: int = 8080,
        refresh_s: float = 1.0,
        timeout_s: float = 2.0,
    ) -> None:
        super().__init__(name="hub-probe", daemon=True)
        self.namespace, self.service = namespace, service
        self.rate, self.max_seconds, self.port = rate, max_seconds, port
        self.refresh_s, self.timeout_s = refresh_s, timeout_s
        self._results: list[Result] = []
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()

    def begin(self) -> HubProbe:
        self.start()
        return self

    def stop(self) -> None:
        self._stop_requested.set()
        if self.is_alive():
            self.join(timeout=self.timeout_s + 5)

    @property
    def stopped_by_itself(self) -> bool:
        return not self.is_alive() and not self._stop_requested.is_set()

    @property
    def results(self) -> list[Result]:
        with self._lock:
            return list(self._results)

    def _record(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)

    def _resolve(self) -> list[str]:
        addresses = kube.ready_endpoint_addresses("hub", self.namespace, self.service)
        return [a for a in addresses if a.startswith("127.")]  # the network rule

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        schedule = time.monotonic()  # request n is due at schedule + n / rate
        addresses: list[str] = []
        resolved_at = float("-inf")
        n = 0
        while not self._stop_requested.is_set() and time.monotonic() < deadline:
            if time.monotonic() - resolved_at >= self.refresh_s:
                # Hub unreachable: keep the last addresses (stale ones fail fast).
                with contextlib.suppress(Exception):
                    addresses = self._resolve()
                resolved_at = time.monotonic()
            sent = time.time()
            if not addresses:
                self._record(Result(sent, "", False, "no ready address in the hub EndpointSlice"))
                resolved_at = float("-inf")
            else:
                address = addresses[n % len(addresses)]
                try:
                    infer(address, f"probe {n}", self.port, timeout=self.timeout_s)
                    self._record(Result(sent, address, True))
                except Exception as exc:
                    self._record(Result(sent, address, False, f"{type(exc).__name__}: {exc}"))
                    resolved_at = float("-inf")  # re-read the hub EndpointSlice at once
            n += 1
            delay = schedule + n / self.rate - time.monotonic()
            if delay < -1.0:  # fell behind (slow errors): do not burst to catch up
                schedule -= delay
                delay = 0.0
            self._stop_requested.wait(max(0.0, delay))

    def successes(self, prefix: str = "", since: float = 0.0) -> int:
        return sum(
            1 for r in self.results if r.ok and r.address.startswith(prefix) and r.at >= since
        )

    def failures(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for r in self.results if not r.ok and since <= r.at <= until)

    def first_success(self, prefix: str, after: float) -> Result | None:
        return next(
            (r for r in self.results if r.ok and r.at >= after and r.address.startswith(prefix)),
            None,
        )

    def last_success(self, prefix: str, before: float = float("inf")) -> Result | None:
        found = None
        for r in self.results:
            if r.ok and r.at < before and r.address.startswith(prefix):
                found = r
        return found
