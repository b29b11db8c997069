"""The client probe of a health check (`spec.failover.probe`): what a client of the model sees.

A cluster can pass every API-level signal (apiserver answers, endpoints ready, readiness
probes pass from the node) while no client gets an answer: a partition, a broken CNI path, a
firewall change, or a control plane that has just restarted and still reports its pods'
stale Ready state while the restarted servers load. So each check of a cluster that passed
the API-level signals also sends (unless `enabled: false`), from the operator in the hub,
the request a client sends:

- to the cluster's ready entry addresses (every one by default, at most MAX_PROBED; or
  `sampleSize` of them drawn each check), where the hub reaches them (the sandbox, a
  multi-cluster service mesh, node ports);
- to `failover.probe.urls.<role>` (`sampleSize` requests, URL_REQUESTS by default), the
  member's own load balancer, ingress or gateway, where entry addresses are not routable
  from the hub.

`readiness` (the default) sends `GET /v2/health/ready`, the server's own readiness: 200
only once the model is loaded, verified and warmed up, and not draining; `inference` sends
`POST /predict` with one text and wants predictions (or embeddings) back. An answer counts
when it is a 2xx (and, for inference, a well-formed one) within `timeoutMilliseconds`; the
check fails when fewer than `minSuccessPercent` of the requests sent answered. Requests run
concurrently on the event loop (aiohttp), each bounded by the timeout, so a check costs at
most one timeout.

`plan_targets` and `assess` are pure (unit-tested); `probe_cluster` does the I/O. Messages
carry counts and failure kinds, never latencies or addresses, so that a steady outcome
gives a steady status (no status write, and no wake-up, per check).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from modeldr.api.modeldeployment import ClientProbe
from modeldr.kube.constants import Role
from modeldr.kube.httpclient import is_loopback

INFERENCE_PATH = "/predict"
READINESS_PATH = "/v2/health/ready"
MAX_BODY_BYTES = 64 * 1024
# Failure kinds named in a message (the most frequent first).
MAX_KINDS = 3
# Entry addresses one check asks at most (sampleSize unset), and requests to a probe URL.
MAX_PROBED = 64
URL_REQUESTS = 3
# The server's own words for a 503 (`{"reason": ...}`), cut to this many characters.
MAX_REASON = 60


@dataclass(frozen=True)
class Targets:
    """The base URLs one check sends to, and how they were found (for the message)."""

    urls: tuple[str, ...]
    via: str  # "endpoints" or "url"
    # The entry address behind each URL (endpoints only): what an ejection names.
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    ok: bool
    # Why it failed, as a kind that repeats ("timed out", "HTTP 503", "connection refused").
    failure: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Outcome:
    passed: bool
    message: str
    answered: int
    sent: int
    # Entry addresses that answered / did not, this check (endpoints only; see ejection.py).
    answering: frozenset[str] = frozenset()
    failing: frozenset[str] = frozenset()


def host_port(address: str, port: int) -> str:
    try:
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]:{port}"
    except ValueError:
        pass
    return f"{address}:{port}"


def plan_targets(
    probe: ClientProbe,
    role: Role,
    addresses: Sequence[str],
    port: int,
    rng: random.Random,
) -> Targets:
    """Where this check's requests go: the role's URL `sampleSize` times, else the ready
    entry addresses (all of them, or `sampleSize` drawn at random when set)."""
    url = probe.url_for(role)
    if url:
        return Targets((url.rstrip("/"),) * (probe.sample_size or URL_REQUESTS), "url")
    pool = sorted(set(addresses))
    size = min(probe.sample_size or MAX_PROBED, len(pool))
    chosen = pool if size == len(pool) else rng.sample(pool, size)
    urls = tuple(f"http://{host_port(a, port)}" for a in chosen)
    return Targets(urls, "endpoints", tuple(chosen))


def assess(probe: ClientProbe, targets: Targets, answers: Sequence[Answer]) -> Outcome:
    """Pass when at least minSuccessPercent of the requests sent answered; none sent fails
    (a probe that could not ask anything saw nothing answer)."""
    sent, answered = len(answers), sum(1 for a in answers if a.ok)
    passed = sent > 0 and answered * 100 >= probe.min_success_percent * sent
    where = "from its ready endpoints" if targets.via == "endpoints" else "from its probe URL"
    message = (
        f"client probe ({probe.request}, {where}): {answered} of {sent} answered within "
        f"{probe.timeout_milliseconds} ms, "
        f"{'at least' if passed else 'below'} the {probe.min_success_percent}% needed"
    )
    kinds = Counter(a.failure for a in answers if not a.ok)
    if kinds:
        named = ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common(MAX_KINDS))
        message += f"; failures: {named}"
    by_address = list(zip(targets.addresses, answers, strict=False))
    return Outcome(
        passed,
        message,
        answered,
        sent,
        answering=frozenset(a for a, answer in by_address if answer.ok),
        failing=frozenset(a for a, answer in by_address if not answer.ok),
    )


def http_failure(status: int, body: bytes) -> str:
    """`HTTP 503`, with the server's own reason when it gave one (`HTTP 503: model is
    loading`); digits in the reason become N so that a steady state gives a steady message."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    reason = answer.get("reason") if isinstance(answer, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return f"HTTP {status}"
    words = re.sub(r"\d+", "N", " ".join(reason.split()))[:MAX_REASON]
    return f"HTTP {status}: {''.join(c for c in words if c.isprintable())}"


def _request(probe: ClientProbe) -> tuple[str, str, bytes | None]:
    if probe.request == "readiness":
        return "GET", READINESS_PATH, None
    return "POST", INFERENCE_PATH, json.dumps({"texts": [probe.text]}).encode()


def _well_formed(probe: ClientProbe, body: bytes) -> bool:
    if probe.request == "readiness":
        return True
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and bool(answer.get("predictions") or answer.get("embeddings"))


async def send_one(session: aiohttp.ClientSession, base: str, probe: ClientProbe) -> Answer:
    """One request as a client sends it; never raises (a failure is an Answer)."""
    method, path, body = _request(probe)
    started = time.monotonic()
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        # No redirect is followed (the URLs are the user's): a 3xx is a failed answer.
        async with session.request(
            method, base + path, data=body, headers=headers, allow_redirects=False
        ) as response:
            content = await response.content.read(MAX_BODY_BYTES)
            seconds = time.monotonic() - started
            if response.status // 100 != 2:
                return Answer(False, http_failure(response.status, content), seconds)
            if not _well_formed(probe, content):
                return Answer(False, "bad response", seconds)
            return Answer(True, "", seconds)
    except TimeoutError:
        return Answer(False, "timed out", time.monotonic() - started)
    except aiohttp.ClientConnectorError as exc:
        # The errno's words, not the error's text (which names the address).
        code = exc.os_error.errno
        reason = os.strerror(code) if code else type(exc.os_error).__name__
        return Answer(False, reason.lower(), time.monotonic() - started)
    except (aiohttp.ClientError, OSError) as exc:
        return Answer(False, type(exc).__name__, time.monotonic() - started)


async def send_all(probe: ClientProbe, targets: Targets) -> list[Answer]:
    """Every request of one check at once, each bounded by the probe's timeout."""
    if not targets.urls:
        return []
    timeout = aiohttp.ClientTimeout(total=probe.timeout_milliseconds / 1000.0)
    # A fresh connection per request (no keep-alive): a path that broke since the last check
    # must show, not hide behind a pooled connection. Pod addresses are never proxied; a
    # URL outside loopback honours the proxy environment as the operator's other calls do.
    trust_env = targets.via == "url" and not all(is_loopback(u) for u in targets.urls)
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=trust_env
    ) as session:
        return list(await asyncio.gather(*(send_one(session, u, probe) for u in targets.urls)))


async def probe_cluster(
    probe: ClientProbe,
    role: Role,
    addresses: Sequence[str],
    port: int,
    rng: random.Random | None = None,
) -> Outcome:
    targets = plan_targets(probe, role, addresses, port, rng or random.Random())
    return assess(probe, targets, await send_all(probe, targets))
