"""The infrastructure webhook's server core, whatever makes the faults: the protocol of
docs/infrastructure-webhook.md over HTTP (inject, renew, undo, list, health), every call but
the health check authenticated with a bearer token, an audit log of every request, the
journal of faults on disk (written before acting), expiry (mandatory and capped: a fault past
its `expiresAt` is undone by the server itself), tombstones (an id once undone is never made
again), retries of failed undos, one change at a time. The backends (the sandbox's
`sandbox.infra_webhook.SandboxActions`, kind's `kindtools.infra`) only make and undo the
faults.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from modeldr.drills.infra import (
    FAULT_TYPES,
    MAX_EXPIRY_AHEAD_S,
    MODEL_STORE_LOSS,
    NODE_FAILURE,
    rfc3339,
)
from sandbox.config import MEMBER_CLUSTERS

log = logging.getLogger("sandbox.infra-webhook")

HOST = "127.0.0.1"
#: A failed undo of an expired fault is tried again after this many seconds.
RETRY_S = 10.0
EXPIRY_CHECK_S = 1.0
MAX_BODY = 64 * 1024
MAX_ID = 256
#: How long an undone id is remembered (a late inject of it is refused meanwhile).
TOMBSTONE_TTL = timedelta(days=1)
#: The audit log is moved aside (one old file kept) past this size.
AUDIT_MAX_BYTES = 16 * 1024 * 1024

INJECTING = "injecting"
ACTIVE = "active"
UNDOING = "undoing"


def _now() -> datetime:
    return datetime.now(UTC)


def _format(moment: datetime) -> str:
    return rfc3339(moment)  # UTC, whole seconds rounded up: a deadline is never brought forward


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


def accepts(host: str, port: int) -> bool:
    """Something listens on host:port (a TCP connect succeeds within a second)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


class RequestError(Exception):
    """Answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- what a fault does -------------------------------------------------------------------------


class Actions(Protocol):
    """What a backend does: check a fault can be made, make it, undo it."""

    def check(self, fault_type: str, cluster: str, node: str | None) -> None: ...

    def inject(self, fault: dict[str, Any]) -> None: ...

    def undo(self, fault: dict[str, Any]) -> str | dict[str, Any] | None:
        """Undo the fault; an optional note for the log (what had to be done), or a result
        for the caller (ModelStoreLoss: what the restore wrote), answered as `result`."""


def _target(fault: dict[str, Any]) -> tuple[str, str, str | None]:
    return (fault["type"], fault["cluster"], fault.get("node"))


def _describe(fault: dict[str, Any]) -> str:
    node = fault.get("node")
    return f"{fault['type']} of {fault['cluster']}" + (f"/{node}" if node else "")


def _public(fault: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "type",
        "cluster",
        "node",
        "model",
        "injectedAt",
        "expiresAt",
        "state",
        "lastError",
    )
    return {k: fault.get(k) for k in keys if k in fault}


class Webhook:
    """The provider's logic, independent of HTTP: validates, records, acts, expires."""

    def __init__(
        self, path: Path, actions: Actions, clusters: Sequence[str] = MEMBER_CLUSTERS
    ) -> None:
        self.path = path
        self.actions = actions
        #: The member clusters this provider serves (the kind provider serves its own list).
        self.clusters = tuple(clusters)
        self._change = threading.Lock()  # one inject or undo at a time (held while acting)
        self._state = threading.Lock()  # the dict and its file
        self._retry_at: dict[str, float] = {}
        #: id -> when it was undone: never made again under that id (a late inject or renew).
        self.undone: dict[str, str] = {}
        self.faults: dict[str, dict[str, Any]] = self._load()

    # persistence

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            aside = self.path.with_suffix(".corrupt")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.error("state file %s unreadable (%s): moved to %s", self.path, exc, aside)
            return {}
        faults = {f["id"]: f for f in document.get("faults", []) if isinstance(f, dict)}
        undone = document.get("undone")
        if isinstance(undone, dict):
            self.undone = {str(k): str(v) for k, v in undone.items()}
        if faults:
            log.info("known faults from %s: %s", self.path, ", ".join(sorted(faults)))
        return faults

    def _save_locked(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        oldest = _format(_now() - TOMBSTONE_TTL)
        self.undone = {k: v for k, v in self.undone.items() if v >= oldest}
        tmp = self.path.with_suffix(".tmp")
        document = {"faults": list(self.faults.values()), "undone": self.undone}
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, self.path)

    def _put(self, fault: dict[str, Any]) -> None:
        with self._state:
            self.faults[fault["id"]] = fault
            self._save_locked()

    def _drop(self, fault_id: str, tombstone: bool = False) -> None:
        with self._state:
            self.faults.pop(fault_id, None)
            self._retry_at.pop(fault_id, None)
            if tombstone:
                self.undone[fault_id] = _format(_now())
            self._save_locked()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._state:
            return [_public(dict(f)) for f in self.faults.values()]

    def _shared(self, fault: dict[str, Any]) -> list[str]:
        """Other faults holding the same target broken (so it must stay broken)."""
        with self._state:
            return sorted(
                other["id"]
                for other in self.faults.values()
                if other["id"] != fault["id"]
                and _target(other) == _target(fault)
                and other.get("state") in (INJECTING, ACTIVE)
            )

    # requests

    def _validate_inject(self, body: dict[str, Any]) -> tuple[str, str, str, str | None, datetime]:
        fault_id = Webhook._validate_id(body)
        fault_type = body.get("type")
        if fault_type not in FAULT_TYPES:
            raise RequestError(
                400,
                f"unsupported fault type {fault_type!r}: this provider makes "
                f"{', '.join(FAULT_TYPES)}",
            )
        cluster = body.get("cluster")
        if cluster not in self.clusters:
            raise RequestError(
                400,
                f"unknown cluster {cluster!r}: this provider serves the member clusters "
                f"{', '.join(self.clusters)}",
            )
        node = body.get("node")
        if fault_type == NODE_FAILURE:
            if not isinstance(node, str) or not node:
                raise RequestError(400, "NodeFailure needs a node (a node name in `node`)")
        elif node is not None:
            raise RequestError(400, f"{fault_type} takes a whole cluster, not node {node!r}")
        return fault_id, str(fault_type), str(cluster), node, Webhook._validate_expiry(body)

    @staticmethod
    def _validate_model(body: dict[str, Any]) -> dict[str, Any] | None:
        """ModelStoreLoss's `model`: the s3:// source to delete and the backup to restore."""
        model = body.get("model")
        if body.get("type") != MODEL_STORE_LOSS:
            if model is not None:
                raise RequestError(400, "only ModelStoreLoss names a model")
            return None
        restore = model.get("restoreFrom") if isinstance(model, dict) else None
        fields = ("store", "url", "id", "modelDigest")
        if (
            not isinstance(model, dict)
            or not str(model.get("source") or "").startswith("s3://")
            or not isinstance(restore, dict)
            or not all(isinstance(restore.get(f), str) and restore.get(f) for f in fields)
        ):
            raise RequestError(
                400,
                'ModelStoreLoss needs `model`: {"source": "s3://...", "restoreFrom": {"store", '
                '"url", "id", "modelDigest"}}',
            )
        return {"source": model["source"], "restoreFrom": {f: restore[f] for f in fields}}

    @staticmethod
    def _validate_expiry(body: dict[str, Any]) -> datetime:
        """`expiresAt`: mandatory, in the future, at most MAX_EXPIRY_AHEAD_S ahead."""
        expires = body.get("expiresAt")
        if expires is None:
            raise RequestError(
                400,
                "expiresAt is required: every fault undoes itself by then unless renewed "
                f"(at most {MAX_EXPIRY_AHEAD_S} s ahead)",
            )
        try:
            expires_at = _parse_time(str(expires))
        except ValueError as exc:
            raise RequestError(
                400, f"expiresAt {expires!r} is not an RFC 3339 time with a zone: {exc}"
            ) from None
        now = _now()
        if expires_at <= now:
            raise RequestError(400, f"expiresAt {expires!r} has already passed")
        # A second of slack: the client rounds a deadline up to the whole second.
        if (expires_at - now).total_seconds() > MAX_EXPIRY_AHEAD_S + 1:
            raise RequestError(
                400,
                f"expiresAt {expires!r} is {(expires_at - now).total_seconds():.0f} s ahead; "
                f"this provider takes at most {MAX_EXPIRY_AHEAD_S} s (renew to go on)",
            )
        return expires_at

    @staticmethod
    def _validate_id(body: dict[str, Any]) -> str:
        fault_id = body.get("id")
        if not isinstance(fault_id, str) or not fault_id or len(fault_id) > MAX_ID:
            raise RequestError(400, f"`id` must be a non-empty string of at most {MAX_ID} chars")
        return fault_id

    def inject(self, body: dict[str, Any]) -> dict[str, Any]:
        fault_id, fault_type, cluster, node, expires_at = self._validate_inject(body)
        model = self._validate_model(body)
        with self._change:
            self._refuse_undone(fault_id, "injected")
            existing = self.faults.get(fault_id)
            if existing is not None:
                if _target(existing) != (fault_type, cluster, node):
                    raise RequestError(
                        409, f"id {fault_id!r} is already used for {_describe(existing)}"
                    )
                fault = dict(existing)
                if fault.get("state") == ACTIVE:
                    # A repeat changes nothing, its expiry included: /renew does that.
                    log.info("inject %s: already in effect; nothing to do", fault_id)
                    return {"fault": _public(fault), "created": False}
                if fault.get("state") == UNDOING:
                    raise RequestError(409, f"fault {fault_id!r} is being undone")
                # A previous attempt stopped half-way (injecting): act again.
            else:
                self.actions.check(fault_type, cluster, node)
                fault = {
                    "id": fault_id,
                    "type": fault_type,
                    "cluster": cluster,
                    "node": node,
                    "injectedAt": _format(_now()),
                    "expiresAt": _format(expires_at),
                    **({"model": model} if model else {}),
                }
            fault["state"] = INJECTING
            fault.pop("lastError", None)
            self._put(fault)  # recorded before acting
            what = _describe(fault)
            shared = self._shared(fault)
            log.info(
                "inject %s: %s (expiresAt %s)%s",
                fault_id,
                what,
                fault["expiresAt"],
                f"; already in effect by {', '.join(shared)}" if shared else "",
            )
            try:
                if not shared:
                    self.actions.inject(fault)
            except Exception as exc:
                log.error("inject %s: %s failed: %s; undoing what was done", fault_id, what, exc)
                self._rollback(fault, exc)
                raise RequestError(503, f"{what} could not be injected: {exc}") from None
            fault["state"] = ACTIVE
            self._put(fault)
            log.info("inject %s: %s in effect", fault_id, what)
            return {"fault": _public(fault), "created": existing is None}

    def _refuse_undone(self, fault_id: str, verb: str) -> None:
        with self._state:
            undone_at = self.undone.get(fault_id)
        if undone_at is not None:
            raise RequestError(
                409 if verb == "injected" else 404,
                f"fault {fault_id!r} was undone at {undone_at}: an id once undone is never "
                f"{verb} again (a new fault needs a new id)",
            )

    def renew(self, body: dict[str, Any]) -> dict[str, Any]:
        """Push the expiry of a fault in force. Never re-creates one: an id undone (asked or
        expired) or unknown is a 404, one being undone a 409, and nothing changes."""
        fault_id = self._validate_id(body)
        expires_at = self._validate_expiry(body)
        with self._change:  # after an undo in progress, which then leaves a tombstone
            self._refuse_undone(fault_id, "renewed")
            fault = self.faults.get(fault_id)
            if fault is None:
                raise RequestError(
                    404,
                    f"no fault {fault_id!r} in force (never injected, or undone): a renewal "
                    "never makes one",
                )
            if fault.get("state") != ACTIVE:
                raise RequestError(
                    409, f"fault {fault_id!r} is {fault.get('state')}, not in force: not renewed"
                )
            fault = dict(fault)
            fault["expiresAt"] = _format(expires_at)
            self._put(fault)
            log.info("renew %s: expiresAt now %s", fault_id, fault["expiresAt"])
            return {"fault": _public(fault)}

    def _rollback(self, fault: dict[str, Any], cause: Exception) -> None:
        try:
            if not self._shared(fault):
                self.actions.undo(fault)
        except Exception as exc:
            fault["lastError"] = f"inject failed: {cause}; undo failed: {exc}"
            self._put(fault)
            log.error("inject %s: undo after the failure failed too: %s", fault["id"], exc)
            return
        self._drop(fault["id"])

    def undo(self, body: dict[str, Any]) -> dict[str, Any]:
        fault_id = self._validate_id(body)
        with self._change:
            fault = self.faults.get(fault_id)
            if fault is None:
                log.info("undo %s: unknown id (never injected, or undone already)", fault_id)
                return {"id": fault_id, "undone": False}
            note = self._undo_locked(dict(fault), why="asked")
            if isinstance(note, dict):
                return {"id": fault_id, "undone": True, "result": note}
            return {"id": fault_id, "undone": True, **({"note": note} if note else {})}

    def _undo_locked(self, fault: dict[str, Any], why: str) -> str | dict[str, Any] | None:
        """Undo one fault; what the actions had to say about it (e.g. a node's new address)."""
        fault_id = fault["id"]
        what = _describe(fault)
        fault["state"] = UNDOING
        self._put(fault)
        shared = self._shared(fault)
        log.info(
            "undo %s (%s): %s%s",
            fault_id,
            why,
            what,
            f"; kept in effect by {', '.join(shared)}" if shared else "",
        )
        note: str | dict[str, Any] | None = None
        try:
            if not shared:
                note = self.actions.undo(fault)
        except Exception as exc:
            fault["lastError"] = f"undo failed: {exc}"
            self._put(fault)
            log.error("undo %s: %s failed: %s", fault_id, what, exc)
            raise RequestError(503, f"{what} could not be undone: {exc}") from None
        self._drop(fault_id, tombstone=True)
        if shared:
            log.info("undo %s: released (%s stays in effect)", fault_id, what)
        else:
            log.info("undo %s: %s undone%s", fault_id, what, f" ({note})" if note else "")
        return note

    def expire_due(self) -> None:
        """Undo every fault whose expiresAt has passed (a failed one is retried after RETRY_S)."""
        now, mono = _now(), time.monotonic()
        due = [
            f["id"]
            for f in self.snapshot()
            if f.get("expiresAt")
            and _parse_time(f["expiresAt"]) <= now
            and self._retry_at.get(f["id"], 0.0) <= mono
        ]
        for fault_id in due:
            with self._change:
                fault = self.faults.get(fault_id)
                # Renewed or undone while waiting for the lock: nothing to do.
                if fault is None or _parse_time(fault["expiresAt"]) > _now():
                    continue
                try:
                    self._undo_locked(dict(fault), why=f"expired at {fault['expiresAt']}")
                except RequestError:
                    self._retry_at[fault_id] = time.monotonic() + RETRY_S


# -- HTTP --------------------------------------------------------------------------------------


def new_token() -> str:
    """A bearer token for a provider: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def token_from(path: Path) -> str:
    """The token kept in `path`, made (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_token() + "\n")
    token = path.read_text().strip()
    if not token or any(c.isspace() for c in token):
        raise SystemExit(f"the token file {path} must hold one non-empty word")
    return token


class Audit:
    """One JSON line per request, answered or refused, authenticated or not: who asked what
    and what came of it. Appended (and flushed) before the answer is sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"time": _format(_now()), **entry}, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_size > AUDIT_MAX_BYTES:
                    os.replace(self.path, self.path.with_suffix(self.path.suffix + ".1"))
            with self.path.open("a") as out:
                out.write(line)


def audit_path(state: Path) -> Path:
    return state.with_name(state.stem + "-audit.jsonl")


_AUDITED = ("id", "type", "cluster", "node", "expiresAt")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "modeldr-sandbox-infra-webhook"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/healthz":  # says nothing but "up": the one call without a token
            self._answer(200, {"ok": True})
            return
        self._serve(path, lambda: self._get(path))

    def _get(self, path: str) -> dict[str, Any]:
        if path == "/faults":
            return {"faults": self.server.webhook.snapshot()}
        raise RequestError(404, f"no such path {path!r}; GET /faults")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        # Read (bounded) before the token is checked, so that the audit log says what an
        # unauthenticated caller tried too; nothing acts on it unless authenticated.
        try:
            body: dict[str, Any] | RequestError = self._body()
        except RequestError as exc:
            body = exc
        self._serve(path, lambda: self._post(path, body), body)

    def _post(self, path: str, body: dict[str, Any] | RequestError) -> dict[str, Any]:
        routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/inject": self.server.webhook.inject,
            "/renew": self.server.webhook.renew,
            "/undo": self.server.webhook.undo,
        }
        route = routes.get(path)
        if route is None:
            raise RequestError(404, f"no such path {path!r}; POST /inject, /renew or /undo")
        if isinstance(body, RequestError):
            raise body
        return route(body)

    def _serve(
        self,
        path: str,
        answer: Callable[[], dict[str, Any]],
        body: dict[str, Any] | RequestError | None = None,
    ) -> None:
        self._entry: dict[str, Any] = {
            "remote": self.client_address[0],
            "method": self.command,
            "path": path,
            "authenticated": self._authenticated(),
        }
        if isinstance(body, dict):
            self._entry.update({k: body[k] for k in _AUDITED if isinstance(body.get(k), str)})
        try:
            if not self._entry["authenticated"]:
                raise RequestError(
                    401,
                    "no valid bearer token: every call but GET /healthz needs "
                    "`Authorization: Bearer <token>` (docs/infrastructure-webhook.md#security)",
                )
            self._answer(200, answer())
        except RequestError as exc:
            self._answer(exc.status, {"error": exc.message})
        except Exception as exc:  # a bug: say so rather than drop the connection
            log.exception("%s %s failed", self.command, path)
            self._answer(500, {"error": f"internal error: {exc}"})

    def _authenticated(self) -> bool:
        given = self.headers.get("Authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(token.strip().encode(), self.server.token.encode())

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise RequestError(400, "bad Content-Length") from None
        if length <= 0 or length > MAX_BODY:
            raise RequestError(400, f"a JSON object body of at most {MAX_BODY} bytes is needed")
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise RequestError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object")
        return body

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        entry = getattr(self, "_entry", None)
        if entry is not None:
            entry["status"] = status
            if "error" in document:
                entry["error"] = str(document["error"])[:500]
            self.server.audit.write(entry)
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, port: int, webhook: Webhook, token: str, audit: Audit, host: str = HOST
    ) -> None:
        super().__init__((host, port), _Handler)
        self.webhook = webhook
        self.token = token
        self.audit = audit


def _expiry_loop(webhook: Webhook, stop: threading.Event) -> None:
    # Runs until the process ends (a daemon thread); at start first, then every second.
    while True:
        try:
            webhook.expire_due()
        except Exception:
            log.exception("checking for expired faults failed")
        if stop.wait(EXPIRY_CHECK_S):
            return


def serve_webhook(webhook: Webhook, hosts: Sequence[str], port: int, token: str) -> None:
    """Serve `webhook` on each of `hosts` (same port) with its expiry loop, in the foreground
    until SIGTERM/SIGINT (the sandbox's provider and the kind provider share this). Every
    call but GET /healthz must carry `Authorization: Bearer <token>`; every request is
    written to the audit log beside the state file (`<state>-audit.jsonl`)."""
    audit = Audit(audit_path(webhook.path))
    servers = [_Server(port, webhook, token, audit, host) for host in hosts]
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        for server in servers:
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threading.Thread(target=_expiry_loop, args=(webhook, stop), name="expiry", daemon=True).start()
    for server in servers[1:]:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True
        ).start()
    where = ", ".join(f"http://{host}:{port}" for host in hosts)
    log.info("infrastructure webhook on %s (state %s, audit %s)", where, webhook.path, audit.path)
    try:
        servers[0].serve_forever(poll_interval=0.5)
    finally:
        for server in servers:
            server.server_close()
        log.info("infrastructure webhook stopped")
