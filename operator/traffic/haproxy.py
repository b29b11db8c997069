"""The `haproxy` traffic provider: a real HAProxy, moved through its runtime API.

What it writes and why: operator/traffic/haproxy_config.py. Here the I/O: the fragment file
(written atomically), the runtime API on the admin's stats socket (unix socket, one connection
per batch of `;`-separated commands), and a reload through the master CLI when the structure
changed, confirmed by the new worker listing the backend. A fragment that HAProxy refuses to
load is set aside (`.rejected`), so that it cannot stop other ModelDeployments' reloads.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from kubernetes import client

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube.errors import ConfigError, TrafficConflict
from modeldr.kube.haproxy import HAProxySettings
from modeldr.operator.traffic.base import Owner, TrafficError, TrafficTarget
from modeldr.operator.traffic.haproxy_config import (
    bound_port,
    commands,
    file_structure,
    fragment_path,
    proxy_name,
    render,
    slot_count,
    slots,
)

SOCKET_TIMEOUT_S = 3.0
RELOAD_WAIT_S = 15.0
MAX_REPLY_BYTES = 1 << 20
# Runtime API answers that mean a command was refused (success is silent or informative).
REFUSALS = ("no such", "unknown command", "require", "not allowed", "invalid", "failed")


def ask(path: Path, line: str, timeout_s: float = SOCKET_TIMEOUT_S) -> str:
    """One request on an HAProxy CLI socket (runtime API or master CLI); its whole reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        try:
            conn.connect(str(path))
            conn.sendall(line.encode() + b"\n")
            chunks, size = [], 0
            while size < MAX_REPLY_BYTES:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise TrafficError(f"HAProxy socket {path}: {exc.strerror or exc}") from None
    return b"".join(chunks).decode(errors="replace")


def backends(settings: HAProxySettings) -> set[str]:
    reply = ask(settings.runtime_socket, "show backend")
    return {
        line.strip() for line in reply.splitlines() if line.strip() and not line.startswith("#")
    }


def worker_pid(settings: HAProxySettings) -> str | None:
    """The pid of the worker answering the runtime API now (None: none answers)."""
    try:
        reply = ask(settings.runtime_socket, "show info")
    except TrafficError:
        return None
    for line in reply.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Pid":
            return value.strip()
    return None


def run_commands(settings: HAProxySettings, lines: list[str]) -> None:
    """The commands in one connection; TrafficError naming the first one refused."""
    reply = ask(settings.runtime_socket, ";".join(lines))
    for answer in reply.splitlines():
        if any(word in answer.lower() for word in REFUSALS):
            raise TrafficError(f"HAProxy refused a runtime command: {answer.strip()}")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".cfg.tmp")
    temporary.write_text(text)
    temporary.replace(path)


class HAProxyProvider:
    name = "haproxy"

    def __init__(self) -> None:
        # One writer of the shared directory and master at a time (workers share providers).
        self._lock = threading.Lock()

    def apply(
        self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
    ) -> None:
        settings = self._settings()
        if spec.traffic.haproxy is None:
            raise TrafficError("traffic.provider haproxy needs traffic.haproxy.frontendPort")
        port = spec.traffic.haproxy.frontend_port
        if not settings.port_min <= port <= settings.port_max:
            # Not another owner's object: the spec asks what the admin does not allow.
            raise TrafficError(
                f"traffic.haproxy.frontendPort {port} is outside the ports this operator may "
                f"bind ({settings.port_min}-{settings.port_max}, MODELDR_HAPROXY_PORTS)"
            )
        all_slots = slots(target, slot_count(target))
        text = render(owner, settings, spec.traffic.balance, port, all_slots)
        path = fragment_path(settings, owner)
        backend = proxy_name(owner)
        with self._lock:
            self._port_free(settings, path, port)
            old = path.read_text() if path.exists() else None
            if (
                old is not None
                and file_structure(old) == file_structure(text)
                and backend in backends(settings)
            ):
                run_commands(settings, commands(backend, all_slots))
                if old != text:
                    write_atomic(path, text)
                return
            write_atomic(path, text)
            self._reload(settings, backend, path)

    def cleanup(self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec) -> None:
        try:
            settings = self._settings()
        except TrafficError:
            return  # not set up here: nothing was ever written (a deletion must not hang)
        path = fragment_path(settings, owner)
        with self._lock:
            if not path.exists():
                return
            path.unlink()
            before = worker_pid(settings)
            ask(settings.master_socket, "reload")
            self._wait(settings, proxy_name(owner), present=False, after=before)

    def _settings(self) -> HAProxySettings:
        try:
            return HAProxySettings.from_env()
        except ConfigError as exc:
            raise TrafficError(str(exc)) from None

    def _port_free(self, settings: HAProxySettings, ours: Path, port: int) -> None:
        for other in sorted(settings.config_dir.glob("md.*.cfg")):
            if other != ours and bound_port(other.read_text()) == port:
                raise TrafficConflict(
                    f"HAProxy frontend port {port} is taken by {other.name} (another "
                    "ModelDeployment): choose another traffic.haproxy.frontendPort"
                )

    def _reload(self, settings: HAProxySettings, backend: str, path: Path) -> None:
        before = worker_pid(settings)
        ask(settings.master_socket, "reload")
        if self._wait(settings, backend, present=True, after=before):
            return
        # Not loaded: this fragment must not stop the next reload (anyone's).
        path.replace(path.with_suffix(".cfg.rejected"))
        ask(settings.master_socket, "reload")
        raise TrafficError(
            f"HAProxy did not load backend {backend} within {RELOAD_WAIT_S:.0f} s (its port "
            f"taken by another process? see HAProxy's log); the fragment is set aside as "
            f"{path.name}.rejected"
        )

    def _wait(
        self, settings: HAProxySettings, backend: str, present: bool, after: str | None
    ) -> bool:
        """Until a new worker (not pid `after`) answers and has (or lacks) the backend: the
        old worker still answers until the new one took the socket over."""
        deadline = time.monotonic() + RELOAD_WAIT_S
        while time.monotonic() < deadline:
            try:
                pid = worker_pid(settings)
                if pid not in (None, after) and (backend in backends(settings)) == present:
                    return True
            except TrafficError:
                pass  # the socket changes hands between workers during a reload
            time.sleep(0.1)
        return False
