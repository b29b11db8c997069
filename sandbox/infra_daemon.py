"""The sandbox's infrastructure webhook as a daemon: start it (or reuse the running one) and
wait until it answers, say how a start failed, stop it. Kept apart from the server
(`sandbox.infra_webhook`) so that `Sandbox.up()` starts it without importing the server,
which drives the sandbox through `Sandbox`."""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.request
from pathlib import Path

from sandbox import daemons
from sandbox.config import (
    INFRA_WEBHOOK,
    INFRA_WEBHOOK_MARKER,
    INFRA_WEBHOOK_PORT,
    SANDBOX_ROOT_ENV,
    Paths,
    sandbox_paths,
)
from sandbox.webhook_server import token_from

log = logging.getLogger("sandbox.infra-webhook")
HOST = "127.0.0.1"


def url(port: int = INFRA_WEBHOOK_PORT) -> str:
    return f"http://{HOST}:{port}"


def log_file() -> Path:
    return sandbox_paths().logs / f"{INFRA_WEBHOOK}.log"


def token_file(paths: Paths | None = None) -> Path:
    """The bearer token the webhook accepts (made on first use, mode 0600); the operator
    gets it in the member Secrets (`infrastructure-webhook-token`)."""
    return (paths or sandbox_paths()).state / f"{INFRA_WEBHOOK}.token"


def token(paths: Paths | None = None) -> str:
    return token_from(token_file(paths))


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
