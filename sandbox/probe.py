"""The harness's inference client of the hub entry point (tests, benchmarks, the demo).

They measure with the product's own traffic probe, `drills.probe.TrafficProbe` fed by
`hub_slice_resolver`: what a drill measures is what the demo and `make bench-failover` report.
It finds model servers only through the hub's EndpointSlices of the ModelDeployment's Service
(what the endpointslice traffic provider keeps), sends `POST /predict` at a fixed rate, open
loop, re-reads the slices every `refresh_s` and soon after an error, and stops by itself after
`max_seconds`. A sample's cluster is the slices' `modeldr.io/active-cluster` annotation at the
time the request was sent. The harness adds the network rule: only loopback addresses are
dialled (`loopback_only`), and the samples carry wall-clock times (`clock=time.time`) so that
they line up with the harness's own marks (the outage, the demo's timeline).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import urllib.request
from collections.abc import Iterable
from typing import Any

from modeldr.drills.probe import Endpoints, Resolver, TrafficProbe, hub_slice_resolver
from modeldr.drills.probe_stats import ProbeSample
from sandbox import kube

PROBE_TEXTS = ("the service answers every request", "a failover should go unnoticed")


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


def loopback_only(resolver: Resolver) -> Resolver:
    """The resolver's endpoints less any address outside 127.0.0.0/8 (the network rule)."""

    def resolve() -> Endpoints:
        endpoints = resolver()
        kept = tuple(a for a in endpoints.addresses if a.startswith("127."))
        if kept == endpoints.addresses:
            return endpoints
        dropped = ", ".join(a for a in endpoints.addresses if a not in kept)
        error = endpoints.error or (None if kept else f"only non-loopback addresses: {dropped}")
        return dataclasses.replace(endpoints, addresses=kept, error=error)

    return resolve


def hub_traffic(
    namespace: str,
    service: str,
    *,
    rate: float = 20.0,
    max_seconds: float = 120.0,
    refresh_s: float = 1.0,
    timeout_s: float = 2.0,
) -> TrafficProbe:
    """The product's traffic probe on the hub Service `namespace/service`; call `start()`."""
    resolver = hub_slice_resolver(kube.api_client("hub"), namespace, service)
    return TrafficProbe(
        loopback_only(resolver),
        rate_per_second=rate,
        timeout_s=timeout_s,
        inputs=PROBE_TEXTS,
        max_seconds=max_seconds,
        refresh_s=refresh_s,
        clock=time.time,
    )


# --- reading the samples (their times are time.time(): see the module's docstring) ---------


def successes(samples: Iterable[ProbeSample], cluster: str, since: float = -math.inf) -> int:
    return sum(1 for s in samples if s.ok and s.cluster == cluster and s.sent_at >= since)


def failures(
    samples: Iterable[ProbeSample], since: float = -math.inf, until: float = math.inf
) -> int:
    return sum(1 for s in samples if not s.ok and since <= s.sent_at <= until)


def first_success(samples: Iterable[ProbeSample], cluster: str, after: float) -> ProbeSample | None:
    """The first request sent at or after `after` that `cluster` answered."""
    found = [s for s in samples if s.ok and s.cluster == cluster and s.sent_at >= after]
    return min(found, key=lambda s: s.sent_at, default=None)


def last_success(
    samples: Iterable[ProbeSample], cluster: str, before: float = math.inf
) -> ProbeSample | None:
    """The last request sent before `before` that `cluster` answered."""
    found = [s for s in samples if s.ok and s.cluster == cluster and s.sent_at < before]
    return max(found, key=lambda s: s.sent_at, default=None)
