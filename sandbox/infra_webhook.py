"""The sandbox's infrastructure provider: the webhook the drill engine asks for `NodeFailure`
and `ClusterOutage` (docs/infrastructure-webhook.md is the protocol), served on
127.0.0.1:INFRA_WEBHOOK_PORT only.

`python -m sandbox infra-webhook` runs it in the foreground; `ensure_running()` starts it as
a sandbox daemon (pid file `.sandbox/state/infra-webhook.pid`, log
`.sandbox/logs/infra-webhook.log`), reusing a running one. `make operator-up` starts it and
registers its URL in both member Secrets; it outlives `make operator-down` (a restarted
operator must be able to undo what a drill injected) and `make sandbox-down` stops it.

What each fault does: ClusterOutage → `Sandbox.outage(cluster)`, undone by `restore`;
NodeFailure → `Sandbox.fail_node(cluster, node)`, undone by `recover_node`. Only the member
clusters (primary, standby) and their existing nodes are accepted.

State: every fault is written to `.sandbox/state/infra-faults.json` before it is acted on
(state `injecting`, then `active`; `undoing` while it is undone), so a restarted webhook
still knows what to undo. A fault with `expiresAt` is undone by the webhook itself once that
time has passed (checked every second, and at start); a failed undo is retried every
RETRY_S. Changes are serialized: one inject or undo at a time. Two faults on the same target
(the same cluster for ClusterOutage, the same node for NodeFailure) share it: the target is
broken by the first and repaired only when the last of them is undone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modeldr.drills.infra import CLUSTER_OUTAGE, FAULT_TYPES, NODE_FAILURE, rfc3339
from sandbox import daemons, kube
from sandbox.api import INFRA_WEBHOOK, INFRA_WEBHOOK_MARKER, Sandbox
from sandbox.config import (
    CLUSTERS,
    INFRA_WEBHOOK_PORT,
    MEMBER_CLUSTERS,
    SANDBOX_ROOT_ENV,
    Paths,
    sandbox_paths,
)

log = logging.getLogger("sandbox.infra-webhook")

HOST = "127.0.0.1"
STATE_FILE = "infra-faults.json"
#: A failed undo of an expired fault is tried again after this many seconds.
RETRY_S = 10.0
EXPIRY_CHECK_S = 1.0
MAX_BODY = 64 * 1024
MAX_ID = 256
#: How long an outage may take to close its apiserver's port.
OUTAGE_WAIT_S = 30.0

INJECTING = "injecting"
ACTIVE = "active"
UNDOING = "undoing"


def url(port: int = INFRA_WEBHOOK_PORT) -> str:
    return f"http://{HOST}:{port}"


def log_file() -> Path:
    return sandbox_paths().logs / f"{INFRA_WEBHOOK}.log"


def state_file(paths: Paths | None = None) -> Path:
    return (paths or sandbox_paths()).state / STATE_FILE


def _now() -> datetime:
    return datetime.now(UTC)


def _format(moment: datetime) -> str:
    return rfc3339(moment)  # UTC, whole seconds rounded up: a deadline is never brought forward


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


def _accepts(host: str, port: int) -> bool:
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


class SandboxActions:
    """Inject and undo through the sandbox's own API (the same calls `make sandbox-*` make)."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    def check(self, fault_type: str, cluster: str, node: str | None) -> None:
        """RequestError if the fault cannot be made here (4xx), or cannot be checked (503)."""
        if fault_type != NODE_FAILURE or node is None:
            return
        if self.sandbox.paths.outage_marker(cluster).exists():
            raise RequestError(
                409, f"cluster {cluster!r} is in an outage: none of its nodes can fail now"
            )
        try:
            items = kube.core(cluster).list_node(_request_timeout=5).items
        except Exception as exc:
            raise RequestError(
                503, f"cannot list the nodes of cluster {cluster!r}: {exc}"
            ) from None
        names = sorted(n.metadata.name for n in items)
        if node not in names:
            raise RequestError(
                400,
                f"node {node!r} does not exist in cluster {cluster!r} "
                f"(nodes: {', '.join(names) or 'none'})",
            )

    def inject(self, fault: dict[str, Any]) -> None:
        if fault["type"] == CLUSTER_OUTAGE:
            self.sandbox.outage(fault["cluster"])
            # kwokctl returns once it has signalled the control plane, a moment before the
            # apiserver closes its port: in effect means refusing connections.
            port = CLUSTERS[fault["cluster"]].apiserver_port
            kube.wait_for(
                lambda: not _accepts(HOST, port),
                timeout=OUTAGE_WAIT_S,
                interval=0.05,
                what=f"the apiserver of {fault['cluster']} (port {port}) to refuse connections",
            )
        else:
            self.sandbox.fail_node(fault["cluster"], fault["node"])

    def undo(self, fault: dict[str, Any]) -> None:
        if fault["type"] == CLUSTER_OUTAGE:
            self.sandbox.restore(fault["cluster"])
        else:
            self.sandbox.recover_node(fault["cluster"], fault["node"])


# -- the faults in force -----------------------------------------------------------------------


def _target(fault: dict[str, Any]) -> tuple[str, str, str | None]:
    return (fault["type"], fault["cluster"], fault.get("node"))


def _describe(fault: dict[str, Any]) -> str:
    node = fault.get("node")
    return f"{fault['type']} of {fault['cluster']}" + (f"/{node}" if node else "")


def _public(fault: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "type", "cluster", "node", "injectedAt", "expiresAt", "state", "lastError")
    return {k: fault.get(k) for k in keys if k in fault}


class Webhook:
    """The provider's logic, independent of HTTP: validates, records, acts, expires."""

    def __init__(
        self, path: Path, actions: SandboxActions | Any, clusters: Sequence[str] = MEMBER_CLUSTERS
    ) -> None:
        self.path = path
        self.actions = actions
        #: The member clusters this provider serves (the kind provider serves its own list).
        self.clusters = tuple(clusters)
        self._change = threading.Lock()  # one inject or undo at a time (held while acting)
        self._state = threading.Lock()  # the dict and its file
        self._retry_at: dict[str, float] = {}
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
        if faults:
            log.info("known faults from %s: %s", self.path, ", ".join(sorted(faults)))
        return faults

    def _save_locked(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"faults": list(self.faults.values())}, indent=2) + "\n")
        os.replace(tmp, self.path)

    def _put(self, fault: dict[str, Any]) -> None:
        with self._state:
            self.faults[fault["id"]] = fault
            self._save_locked()

    def _drop(self, fault_id: str) -> None:
        with self._state:
            self.faults.pop(fault_id, None)
            self._retry_at.pop(fault_id, None)
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

    def _validate_inject(
        self, body: dict[str, Any]
    ) -> tuple[str, str, str, str | None, datetime | None]:
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
            raise RequestError(400, f"ClusterOutage takes a whole cluster, not node {node!r}")
        expires = body.get("expiresAt")
        expires_at = None
        if expires is not None:
            try:
                expires_at = _parse_time(str(expires))
            except ValueError as exc:
                raise RequestError(
                    400, f"expiresAt {expires!r} is not an RFC 3339 time with a zone: {exc}"
                ) from None
            if expires_at <= _now():
                raise RequestError(400, f"expiresAt {expires!r} has already passed")
        return fault_id, str(fault_type), str(cluster), node, expires_at

    @staticmethod
    def _validate_id(body: dict[str, Any]) -> str:
        fault_id = body.get("id")
        if not isinstance(fault_id, str) or not fault_id or len(fault_id) > MAX_ID:
            raise RequestError(400, f"`id` must be a non-empty string of at most {MAX_ID} chars")
        return fault_id

    def inject(self, body: dict[str, Any]) -> dict[str, Any]:
        fault_id, fault_type, cluster, node, expires_at = self._validate_inject(body)
        with self._change:
            existing = self.faults.get(fault_id)
            if existing is not None:
                if _target(existing) != (fault_type, cluster, node):
                    raise RequestError(
                        409, f"id {fault_id!r} is already used for {_describe(existing)}"
                    )
                fault = dict(existing)
                renewed = self._renew(fault, expires_at)
                if fault.get("state") == ACTIVE:
                    if renewed:
                        self._put(fault)
                        log.info(
                            "inject %s: already in effect; expiresAt now %s",
                            fault_id,
                            fault["expiresAt"],
                        )
                    else:
                        log.info("inject %s: already in effect; nothing to do", fault_id)
                    return {"fault": _public(fault), "created": False}
                # A previous attempt stopped half-way (injecting or undoing): act again.
            else:
                self.actions.check(fault_type, cluster, node)
                fault = {
                    "id": fault_id,
                    "type": fault_type,
                    "cluster": cluster,
                    "node": node,
                    "injectedAt": _format(_now()),
                    "expiresAt": _format(expires_at) if expires_at else None,
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

    @staticmethod
    def _renew(fault: dict[str, Any], expires_at: datetime | None) -> bool:
        """A repeat's expiresAt replaces the fault's (the engine renews with now + its expiry
        period, which may be sooner than the first inject's allowance); none, or a fault
        without one, changes nothing. A passed one was refused already."""
        if expires_at is None or fault.get("expiresAt") is None:
            return False
        if _format(expires_at) == fault["expiresAt"]:
            return False
        fault["expiresAt"] = _format(expires_at)
        return True

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
            return {"id": fault_id, "undone": True, **({"note": note} if note else {})}

    def _undo_locked(self, fault: dict[str, Any], why: str) -> str | None:
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
        note = None
        try:
            if not shared:
                note = self.actions.undo(fault)
        except Exception as exc:
            fault["lastError"] = f"undo failed: {exc}"
            self._put(fault)
            log.error("undo %s: %s failed: %s", fault_id, what, exc)
            raise RequestError(503, f"{what} could not be undone: {exc}") from None
        self._drop(fault_id)
        if shared:
            log.info("undo %s: released (%s stays in effect)", fault_id, what)
        else:
            log.info("undo %s: %s undone%s", fault_id, what, f" ({note})" if note else "")
        return note if isinstance(note, str) else None

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


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "modeldr-sandbox-infra-webhook"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/faults":
            self._answer(200, {"faults": self.server.webhook.snapshot()})
        elif path == "/healthz":
            self._answer(200, {"ok": True})
        else:
            self._answer(404, {"error": f"no such path {path!r}; GET /faults"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/inject": self.server.webhook.inject,
            "/undo": self.server.webhook.undo,
        }
        try:
            route = routes.get(path)
            if route is None:
                raise RequestError(404, f"no such path {path!r}; POST /inject or /undo")
            self._answer(200, route(self._body()))
        except RequestError as exc:
            self._answer(exc.status, {"error": exc.message})
        except Exception as exc:  # a bug: say so rather than drop the connection
            log.exception("%s %s failed", self.command, path)
            self._answer(500, {"error": f"internal error: {exc}"})

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
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, webhook: Webhook, host: str = HOST) -> None:
        super().__init__((host, port), _Handler)
        self.webhook = webhook


def _expiry_loop(webhook: Webhook, stop: threading.Event) -> None:
    # Runs until the process ends (a daemon thread); at start first, then every second.
    while True:
        try:
            webhook.expire_due()
        except Exception:
            log.exception("checking for expired faults failed")
        if stop.wait(EXPIRY_CHECK_S):
            return


def serve(port: int = INFRA_WEBHOOK_PORT, paths: Paths | None = None) -> None:
    """Serve the webhook in the foreground until SIGTERM/SIGINT."""
    paths = paths or sandbox_paths()
    webhook = Webhook(state_file(paths), SandboxActions(Sandbox(paths)))
    serve_webhook(webhook, [HOST], port)


def serve_webhook(webhook: Webhook, hosts: Sequence[str], port: int) -> None:
    """Serve `webhook` on each of `hosts` (same port) with its expiry loop, in the foreground
    until SIGTERM/SIGINT (the sandbox's provider and the kind provider share this)."""
    servers = [_Server(port, webhook, host) for host in hosts]
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
    log.info("infrastructure webhook on %s (state %s)", where, webhook.path)
    try:
        servers[0].serve_forever(poll_interval=0.5)
    finally:
        for server in servers:
            server.server_close()
        log.info("infrastructure webhook stopped")


def main() -> None:
    serve()


# -- the daemon --------------------------------------------------------------------------------


def answers(port: int = INFRA_WEBHOOK_PORT) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url(port)}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except Exception:
        return False


def running_pid() -> int | None:
    return daemons.running_pid(INFRA_WEBHOOK, INFRA_WEBHOOK_MARKER)


def ensure_running(timeout: float = 20.0, attempts: int = 3) -> str:
    """Start the webhook daemon (or reuse the running one); its URL once it answers. A start
    whose process dies before it answers is tried again (CI saw one die without a word on a
    loaded machine); the last failure is raised with how the process ended and its log."""
    paths = sandbox_paths()
    deadline = time.monotonic() + timeout
    failure = ""
    for _ in range(attempts):
        pid = daemons.start(
            INFRA_WEBHOOK,
            [sys.executable, "-m", "sandbox", "infra-webhook"],
            INFRA_WEBHOOK_MARKER,
            env={SANDBOX_ROOT_ENV: str(paths.root)},
        )
        while time.monotonic() < deadline:
            if answers():
                return url()
            # Exited, not "its command line is not the webhook's yet": right after the fork
            # it still shows this process's, and a second start would find the port taken.
            if _exited(pid):
                failure = f"the infrastructure webhook (pid {pid}) exited{_exit_status(pid)}"
                log.warning("%s; starting it again", failure)
                break
            time.sleep(0.2)
        else:
            raise TimeoutError(
                f"the infrastructure webhook did not answer on {url()} within {timeout:.0f}s; "
                f"log {log_file()}:\n{_log_tail(log_file())}"
            )
    raise RuntimeError(f"{failure}; log {log_file()}:\n{_log_tail(log_file())}")


def _exited(pid: int) -> bool:
    """The process is gone or a zombie (a child of this process that ended, not reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def _exit_status(pid: int) -> str:
    """How a child of this process ended (it is a zombie until reaped), for the error."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return ""  # not our child: started by another process
    if reaped == 0:
        return " (still running, but not as the webhook)"
    if os.WIFSIGNALED(status):
        return f" (killed by signal {os.WTERMSIG(status)})"
    return f" (exit status {os.waitstatus_to_exitcode(status)})"


def stop() -> bool:
    """Stop the daemon; True if one was running. Faults it holds stay as they are."""
    return daemons.stop(INFRA_WEBHOOK, INFRA_WEBHOOK_MARKER, grace=10.0)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
