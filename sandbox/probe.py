"""A synthetic inference client of the hub entry point (tests, benchmarks, the demo).

It finds model servers only through the hub's EndpointSlice of the ModelDeployment's
Service (what the endpointslice traffic provider maintains), sends `POST /predict` at a fixed
rate, and re-resolves the EndpointSlice after an error. Bounded: it stops by itself after
`max_seconds`. It re-reads the slice every `refresh_s` (as a watching client such as a mesh
sidecar would see changes) and at once after an error. Every address it dials must be
loopback.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from sandbox import kube


def infer(address: str, text: str, port: int = 8080, timeout: float = 2.0) -> dict[str, Any]:
    if not address.startswith("127."):
        raise ValueError(f"refusing to send to {address}: the sandbox is loopback only")
    request = urllib.request.Request(
        f"http://{address}:{port}/predict",
        data=json.dumps({"texts": [text]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return dict(json.load(response))


@dataclass
class Result:
    time: float  # time.monotonic()
    address: str
    ok: bool


@dataclass
class HubProbe:
    namespace: str
    service: str
    rate: float = 20.0
    max_seconds: float = 120.0
    port: int = 8080
    refresh_s: float = 1.0
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HubProbe:
        self._thread = threading.Thread(target=self._run, name="hub-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        addresses: list[str] = []
        started = time.monotonic()
        resolved_at = 0.0
        period = 1.0 / self.rate
        n = 0
        while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
            tick = time.monotonic()
            n += 1
            if not addresses or tick - resolved_at >= self.refresh_s:
                with contextlib.suppress(Exception):
                    addresses = kube.ready_endpoint_addresses("hub", self.namespace, self.service)
                    resolved_at = tick
            address = addresses[n % len(addresses)] if addresses else ""
            ok = False
            if address:
                try:
                    infer(address, f"probe {n}", self.port, timeout=2.0)
                    ok = True
                except Exception:
                    addresses = []  # re-resolve through the hub next time
            self.results.append(Result(time.monotonic(), address, ok))
            self._stop.wait(max(0.0, period - (time.monotonic() - tick)))

    def successes(self, prefix: str = "", since: float = 0.0) -> int:
        return sum(
            1 for r in self.results if r.ok and r.address.startswith(prefix) and r.time >= since
        )

    def last_success(self, prefix: str, before: float | None = None) -> float | None:
        times = [
            r.time
            for r in self.results
            if r.ok and r.address.startswith(prefix) and (before is None or r.time <= before)
        ]
        return max(times) if times else None

    def first_success(self, prefix: str, after: float) -> float | None:
        times = [
            r.time for r in self.results if r.ok and r.address.startswith(prefix) and r.time > after
        ]
        return min(times) if times else None

    def failures(self, since: float = 0.0) -> int:
        return sum(1 for r in self.results if not r.ok and r.time >= since)
