"""Infrastructure provider "webhook": the client the drill engine asks for the faults only the
infrastructure can make (`NodeFailure`: a node powered off; `ClusterOutage`: a member cluster
gone dark).

The provider is an HTTP endpoint the user's automation serves, registered per member cluster
in the member's hub Secret under key `infrastructure-webhook-url`; the sandbox serves one on
loopback. The protocol, in full, is docs/infrastructure-webhook.md:

- `POST {url}/inject` `{"id", "type", "cluster", "node"?, "expiresAt"}`: 2xx once the fault
  is in effect; idempotent by `id` (a repeat changes nothing); `expiresAt` mandatory, at most
  MAX_EXPIRY_AHEAD_S ahead.
- `POST {url}/renew` `{"id", "expiresAt"}`: pushes the expiry of a fault in force; never
  re-creates one (404 for a fault undone or expired).
- `POST {url}/undo` `{"id"}`: 2xx once undone; an unknown id is 2xx too.
- `GET {url}/faults`: `{"faults": [...]}`, what is in force.

Every call carries `Authorization: Bearer <token>` (the member Secret's
`infrastructure-webhook-token`); a 401/403 is a permanent error saying so.

Errors: a 4xx (the request is wrong: unknown cluster, unsupported type; body
`{"error": "..."}`) is a permanent InfrastructureError quoting the provider's message; a 5xx,
408/425/429, a timeout or an unreachable endpoint is a transient one (the engine may retry
with the same id). A redirect is permanent: urllib would turn the POST into a GET, so the user
configures the final URL instead.

Calls block (the engine runs them on a worker thread); each is one attempt bounded by
`timeout` seconds. No retry happens here.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import modeldr
from modeldr.kube.errors import OperatorError
from modeldr.kube.httpclient import opener

CLUSTER_OUTAGE: Final = "ClusterOutage"
NODE_FAILURE: Final = "NodeFailure"
# The member region's object store unreachable (its model source: docs/backups.md).
MODEL_STORE_OUTAGE: Final = "ModelStoreOutage"
# A model's objects deleted from the member region's store; undo restores a named backup.
MODEL_STORE_LOSS: Final = "ModelStoreLoss"
FAULT_TYPES: Final = (CLUSTER_OUTAGE, NODE_FAILURE, MODEL_STORE_OUTAGE, MODEL_STORE_LOSS)
# Faults that take a whole cluster (or its store), never a node.
WHOLE_CLUSTER: Final = (CLUSTER_OUTAGE, MODEL_STORE_OUTAGE, MODEL_STORE_LOSS)

USER_AGENT = f"modeldr/{modeldr.__version__}"
#: 4xx statuses that say "try again later", not "the request is wrong".
TRANSIENT_4XX: Final = frozenset({408, 425, 429})
#: How much of an error body is quoted in a message.
BODY_EXCERPT = 300
#: Largest response body read (the fault list of a busy provider stays far below).
MAX_BODY = 4 * 1024 * 1024
#: The farthest ahead an expiry may be: a provider refuses more (the engine's first inject is
#: at most its 90 s inject allowance + faultExpirySeconds, at most 30, ahead).
MAX_EXPIRY_AHEAD_S: Final = 300


class InfrastructureError(OperatorError):
    """The provider did not do what was asked.

    `permanent`: retrying the same request cannot help (the provider refused it, or the URL
    or request is invalid); otherwise the failure is transient (5xx, timeout, unreachable).
    `status` is the HTTP status when the provider answered one, `detail` the provider's own
    `error` text (or the start of its body) when it answered an error.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.detail = detail


def rfc3339(moment: datetime) -> str:
    """`moment` in UTC as RFC 3339 with a `Z`, in whole seconds rounded up (a deadline is
    never brought forward); naive datetimes refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InfrastructureError(
            f"expires_at {moment.isoformat()} has no time zone (give an aware datetime)",
            permanent=True,
        )
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_url(url: str) -> str:
    """The base URL without a trailing slash; only http(s) with a host, no query or fragment."""
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InfrastructureError(
            f"infrastructure webhook URL {url!r} is invalid: {exc}", permanent=True
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InfrastructureError(
            f"infrastructure webhook URL {url!r} is not an http(s) URL with a host",
            permanent=True,
        )
    if parts.query or parts.fragment:
        raise InfrastructureError(
            f"infrastructure webhook URL {url!r} must not have a query or fragment",
            permanent=True,
        )
    return text.rstrip("/")


def _excerpt(body: bytes) -> str:
    text = body[:BODY_EXCERPT].decode("utf-8", errors="replace").strip()
    return text + ("..." if len(body) > BODY_EXCERPT else "")


def _error_message(body: bytes) -> str:
    """The provider's `{"error": "..."}`, else the start of the body."""
    try:
        document = json.loads(body)
    except ValueError:
        return _excerpt(body)
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    return _excerpt(body)


class InfrastructureProvider:
    """Client of one infrastructure webhook (one per member cluster, or shared)."""

    def __init__(self, url: str, token: str, timeout: float = 90.0) -> None:
        if not timeout > 0:
            raise InfrastructureError(f"timeout must be positive, not {timeout!r}", permanent=True)
        if not token.strip() or any(c.isspace() for c in token.strip()):
            raise InfrastructureError(
                "the provider's bearer token must be one non-empty word (the member Secret's "
                "key infrastructure-webhook-token)",
                permanent=True,
            )
        self.url = validate_url(url)
        self.token = token.strip()
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"InfrastructureProvider({self.url!r}, timeout={self.timeout:g})"

    def with_timeout(self, timeout: float) -> InfrastructureProvider:
        return InfrastructureProvider(self.url, self.token, timeout)

    def inject(
        self,
        fault_id: str,
        fault_type: str,
        cluster: str,
        node: str | None = None,
        *,
        expires_at: datetime,
        model: dict[str, Any] | None = None,
    ) -> None:
        """Put the fault in effect until `expires_at` at the latest (the provider undoes it
        then by itself); returns once the provider says it is in effect (2xx). `model`:
        ModelStoreLoss's model and the backup that undo restores (`{"source", "restoreFrom":
        {"store", "url", "id", "modelDigest"}}`), required for it and refused for others."""
        if not fault_id:
            raise InfrastructureError("a fault needs a non-empty id", permanent=True)
        if fault_type not in FAULT_TYPES:
            raise InfrastructureError(
                f"fault type {fault_type!r} is not one the infrastructure provider makes "
                f"(expected one of {', '.join(FAULT_TYPES)})",
                permanent=True,
            )
        if not cluster:
            raise InfrastructureError(f"{fault_type} needs a cluster", permanent=True)
        if fault_type == NODE_FAILURE and not node:
            raise InfrastructureError("NodeFailure needs a node", permanent=True)
        if (fault_type == MODEL_STORE_LOSS) != (model is not None):
            raise InfrastructureError(
                "ModelStoreLoss, and only it, names a model and the backup that restores it",
                permanent=True,
            )
        if fault_type in WHOLE_CLUSTER and node:
            raise InfrastructureError(
                f"{fault_type} takes a whole cluster, not a node (got node {node!r})",
                permanent=True,
            )
        payload: dict[str, Any] = {"id": fault_id, "type": fault_type, "cluster": cluster}
        if node:
            payload["node"] = node
        if model is not None:
            payload["model"] = model
        payload["expiresAt"] = rfc3339(expires_at)
        self._request("POST", "/inject", payload)

    def renew(self, fault_id: str, expires_at: datetime) -> None:
        """Push the expiry of a fault in force; a provider that no longer has it in force
        (undone, expired) answers 404, a permanent error: a renewal never re-creates it."""
        if not fault_id:
            raise InfrastructureError("a fault needs a non-empty id", permanent=True)
        self._request("POST", "/renew", {"id": fault_id, "expiresAt": rfc3339(expires_at)})

    def undo(self, fault_id: str) -> dict[str, Any]:
        """Undo the fault; returns once the provider says it is undone (unknown ids too),
        with the provider's answer (`{"undone": bool, "result": {...}?}`; {} when it gave
        none): ModelStoreLoss's `result` says what the restore wrote and verified."""
        if not fault_id:
            raise InfrastructureError("a fault needs a non-empty id", permanent=True)
        answer = self._request("POST", "/undo", {"id": fault_id})
        return dict(answer) if isinstance(answer, dict) else {}

    def faults(self) -> list[dict[str, Any]]:
        """What the provider has in force: dicts with id, type, cluster, node, injectedAt,
        expiresAt."""
        document = self._request("GET", "/faults", None)
        items = document.get("faults") if isinstance(document, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InfrastructureError(
                f"infrastructure webhook {self.url}/faults answered no list of faults "
                '(want {"faults": [{...}, ...]})',
                permanent=True,
            )
        return [dict(item) for item in items]

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        url = self.url + path
        headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {self.token}",
        }
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        what = f"infrastructure webhook {method} {url}"
        try:
            with opener(url).open(request, timeout=self.timeout) as response:
                status = int(response.status)
                body = response.read(MAX_BODY)
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_BODY) if exc.fp is not None else b""
            raise self._status_error(what, exc.code, body, exc.headers) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # refused, DNS, TLS, timeout (connecting or reading), a connection cut mid-answer
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise InfrastructureError(
                f"{what} failed (timeout {self.timeout:g}s): {reason or type(exc).__name__}",
                permanent=False,
            ) from None
        if not 200 <= status < 300:
            raise self._status_error(what, status, body, None)
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            if method == "GET":
                raise InfrastructureError(
                    f"{what} answered HTTP {status} with a body that is not JSON: "
                    f"{_excerpt(body)!r}",
                    permanent=True,
                    status=status,
                ) from None
            return None  # a POST's 2xx is what counts; its body is informational

    @staticmethod
    def _status_error(
        what: str, status: int, body: bytes, headers: Any | None
    ) -> InfrastructureError:
        if 300 <= status < 400:
            location = headers.get("Location") if headers is not None else None
            where = f" to {location}" if location else ""
            return InfrastructureError(
                f"{what} answered a redirect (HTTP {status}{where}); configure the final URL",
                permanent=True,
                status=status,
            )
        message = _error_message(body)
        if status in (401, 403):
            message = (
                f"{message} (the provider refused the operator's credentials: check the member "
                "Secret's infrastructure-webhook-token against the provider's)"
            )
        permanent = 400 <= status < 500 and status not in TRANSIENT_4XX
        return InfrastructureError(
            f"{what} answered HTTP {status}: {message}",
            permanent=permanent,
            status=status,
            detail=message,
        )
