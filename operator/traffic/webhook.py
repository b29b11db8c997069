"""Traffic provider "webhook": an HTTP POST to the user's own traffic manager.

`apply` POSTs a JSON document (see `build_payload`) to `spec.traffic.webhook.url` and returns
once the receiver answered 2xx; anything else (a non-2xx status, a redirect, a timeout after
`timeoutSeconds`, a refused connection) is a TrafficError quoting the status and the start of
the body, and the caller retries.

Idempotency: a POST is sent when what the receiver was last told successfully, for this
ModelDeployment (by uid), differs from the target: the active cluster, the address set, the
port or the URL. The memory is per provider instance and in-process, so the first `apply` after
an operator start always POSTs: receivers must treat a repeated, identical document as a no-op.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

import modeldr
from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.httpclient import opener
from modeldr.operator.traffic.base import Owner, TrafficError, TrafficTarget

USER_AGENT = f"modeldr/{modeldr.__version__}"
BODY_EXCERPT = 300


@dataclass(frozen=True)
class Delivered:
    """What the receiver was last told (successfully) about one ModelDeployment."""

    url: str
    active_cluster: str
    addresses: tuple[str, ...]
    port: int


def build_payload(
    owner: Owner, target: TrafficTarget, previous_cluster: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "modelDeployment": {"namespace": owner.namespace, "name": owner.name, "uid": owner.uid},
        "activeCluster": target.active_cluster,
        "previousCluster": previous_cluster,
        "reason": target.reason,
        "addresses": list(target.addresses),
        "port": target.port,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def should_post(last: Delivered | None, now: Delivered) -> bool:
    """POST on the first apply (nothing delivered since the process started) or on a change."""
    return last != now


def excerpt(body: bytes) -> str:
    text = body[:BODY_EXCERPT].decode("utf-8", errors="replace").strip()
    return text + ("..." if len(body) > BODY_EXCERPT else "")


def post_json(url: str, payload: dict[str, Any], timeout: float) -> int:
    """POST `payload`; the HTTP status if 2xx, else TrafficError with the status and body."""
    data = json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with opener(url).open(request, timeout=timeout) as response:
            status = int(response.status)
            body = response.read(BODY_EXCERPT + 1)
    except urllib.error.HTTPError as exc:
        body = exc.read(BODY_EXCERPT + 1) if exc.fp is not None else b""
        location = exc.headers.get("Location") if exc.headers else None
        where = f" to {location}" if location and 300 <= exc.code < 400 else ""
        raise TrafficError(
            f"webhook {url} answered HTTP {exc.code}{where} (want 2xx): {excerpt(body)!r}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, TLS, timeout
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise TrafficError(f"webhook {url} unreachable (timeout {timeout:g}s): {reason}") from exc
    if not 200 <= status < 300:
        raise TrafficError(f"webhook {url} answered HTTP {status} (want 2xx): {excerpt(body)!r}")
    return status


class WebhookProvider:
    """Tells an external traffic manager, by HTTP POST, where the traffic should go."""

    name = "webhook"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivered: dict[str, Delivered] = {}

    def apply(
        self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
    ) -> None:
        settings = spec.traffic.webhook
        if settings is None:
            raise TrafficError(
                "traffic.provider is webhook but spec.traffic.webhook.url is not set"
            )
        state = Delivered(settings.url, target.active_cluster, target.addresses, target.port)
        with self._lock:
            last = self._delivered.get(owner.uid)
        if not should_post(last, state):
            return
        # Known only from memory; after a restart the caller may pass it in target.extra.
        previous = last.active_cluster if last else target.extra.get("previousCluster")
        payload = build_payload(owner, target, previous, datetime.now(UTC))
        post_json(settings.url, payload, float(settings.timeout_seconds))
        with self._lock:
            self._delivered[owner.uid] = state

    def cleanup(self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """Nothing to delete remotely; forget what was delivered for this ModelDeployment."""
        with self._lock:
            self._delivered.pop(owner.uid, None)
