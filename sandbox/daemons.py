"""Background processes of the sandbox (process runtime, Prometheus) tracked by pid files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from sandbox.config import REPO_ROOT, sandbox_paths


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running_pid(name: str, marker: str) -> int | None:
    """The pid of daemon `name` if it is alive and its command line contains `marker`."""
    pidfile = sandbox_paths().pidfile(name)
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if marker in _cmdline(pid) else None


def start(name: str, argv: list[str], marker: str, env: dict[str, str] | None = None) -> int:
    """Start `argv` detached (own session), logging to .sandbox/logs/<name>.log; idempotent."""
    pid = running_pid(name, marker)
    if pid:
        return pid
    paths = sandbox_paths()
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.logs / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    paths.pidfile(name).write_text(str(proc.pid))
    return proc.pid


def stop(name: str, marker: str, grace: float = 15.0) -> bool:
    """SIGTERM the daemon, SIGKILL its process group after `grace`; True if one was running."""
    pid = running_pid(name, marker)
    pidfile = sandbox_paths().pidfile(name)
    if not pid:
        pidfile.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _cmdline(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True
