"""A real HAProxy (Debian's package) on loopback: the sandbox's load balancer for the
`haproxy` traffic provider (docs/traffic.md).

Master-worker mode: the master CLI on a unix socket (reloads), the runtime API on another
(`level admin`, handed to each new worker with `expose-fd listeners`), this base config and
the operator's fragment directory as `-f` arguments. The base config binds one health
frontend; every ModelDeployment's frontend is the operator's, on a port in HAPROXY_PORTS.
Retries with redispatch: a request whose connection is refused (a server that died between
two health checks) is sent to another server instead of failing.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import urllib.request
from pathlib import Path

from sandbox import daemons
from sandbox.config import HAPROXY_HEALTH_PORT, HAPROXY_PORTS, sandbox_paths

NAME = "haproxy"
MARKER = "haproxy -W"


class HAProxyMissingError(RuntimeError):
    pass


def directory() -> Path:
    return sandbox_paths().root / "haproxy"


def settings_env() -> dict[str, str]:
    """The operator's haproxy settings (what the chart's haproxy values set in a cluster)."""
    root = directory()
    return {
        "MODELDR_HAPROXY_CONFIG_DIR": str(root / "conf.d"),
        "MODELDR_HAPROXY_MASTER_SOCKET": str(root / "master.sock"),
        "MODELDR_HAPROXY_RUNTIME_SOCKET": str(root / "runtime.sock"),
        "MODELDR_HAPROXY_BIND_ADDRESS": "127.0.0.1",
        "MODELDR_HAPROXY_PORTS": f"{HAPROXY_PORTS[0]}-{HAPROXY_PORTS[1]}",
    }


def base_config(runtime_socket: Path) -> str:
    return f"""global
    stats socket {runtime_socket} mode 600 level admin expose-fd listeners
    # An old worker left after a reload finishes its requests within this, then goes.
    hard-stop-after 30s
    log stderr format short local0 notice

defaults
    mode http
    log global
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 2
    option redispatch 1

frontend modeldr-haproxy-health
    bind 127.0.0.1:{HAPROXY_HEALTH_PORT}
    http-request return status 200 content-type text/plain string "ok"
"""


def binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if not found:
        raise HAProxyMissingError("haproxy is not installed; run `make tools` (Debian's haproxy)")
    return found


def start() -> str:
    root = directory()
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    base = root / "haproxy.cfg"
    base.write_text(base_config(root / "runtime.sock"))
    argv = [
        binary(),
        "-W",
        "-S",
        f"{root / 'master.sock'},mode,600",
        "-f",
        str(base),
        "-f",
        str(root / "conf.d"),
    ]
    subprocess.run([*argv[:1], "-c", "-q", *argv[4:]], check=True)  # refuse a bad config early
    daemons.start(NAME, argv, MARKER)
    return health_url()


def health_url() -> str:
    return f"http://127.0.0.1:{HAPROXY_HEALTH_PORT}/"


def ready() -> bool:
    with contextlib.suppress(Exception), urllib.request.urlopen(health_url(), timeout=2) as r:
        return int(r.status) == 200
    return False


def stop() -> None:
    daemons.stop(NAME, MARKER, grace=5.0)
