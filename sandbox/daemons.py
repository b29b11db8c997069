"""Background processes of the sandbox (process runtime, Prometheus) tracked by pid files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.config import REPO_ROOT, sandbox_paths


def cmdline(pid: int) -> str:
    """The process's command line, words joined by spaces ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pid_in(pidfile: Path, matches: Callable[[str], bool]) -> int | None:
    """The pid in `pidfile` if that process is alive and its command line `matches`."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if matches(cmdline(pid)) else None


def spawn(
    argv: list[str], pidfile: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` detached (own session), its output appended to `log`, its pid written."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def terminate(pid: int | None, pidfile: Path, grace: float) -> bool:
    """SIGTERM `pid`, SIGKILL its process group after `grace`; True if one was running."""
    if not pid:
        pidfile.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and cmdline(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def running_pid(name: str, marker: str) -> int | None:
    """The pid of daemon `name` if it is alive and its command line contains `marker`."""
    return pid_in(sandbox_paths().pidfile(name), lambda line: marker in line)


def start(name: str, argv: list[str], marker: str, env: dict[str, str] | None = None) -> int:
    """Start `argv` detached (own session), logging to .sandbox/logs/<name>.log; idempotent."""
    pid = running_pid(name, marker)
    if pid:
        return pid
    paths = sandbox_paths()
    paths.state.mkdir(parents=True, exist_ok=True)
    return spawn(argv, paths.pidfile(name), paths.logs / f"{name}.log", env).pid


def stop(name: str, marker: str, grace: float = 15.0) -> bool:
    """SIGTERM the daemon, SIGKILL its process group after `grace`; True if one was running."""
    return terminate(running_pid(name, marker), sandbox_paths().pidfile(name), grace)
