"""Fixtures for the model-server tests: tiny models and real `modeldr-serve` processes.

Models are generated once per session from a BertConfig (random weights, local
WordPiece vocabulary) through the same code `modeldr-serve tiny-model` runs.
Servers are real subprocesses bound to 127.0.0.1 on a free port; every wait is
bounded and every process started is stopped (SIGKILL as a last resort).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from modeldr.serving.tiny import build_model_dir

# The installed console script when present (what pods run), else the module.
_SCRIPT = Path(sys.executable).parent / "modeldr-serve"
SERVE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "modeldr.serving.cli"]
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ModelDir:
    path: Path
    digest: str


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    path = tmp_path_factory.mktemp("models") / "classifier"
    return ModelDir(path, build_model_dir(path, "sequence-classification"))


@pytest.fixture(scope="session")
def embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    path = tmp_path_factory.mktemp("models") / "embedder"
    return ModelDir(path, build_model_dir(path, "feature-extraction"))


def copy_model(model: ModelDir, destination: Path) -> Path:
    """A private copy that a test may damage."""
    shutil.copytree(model.path, destination)
    return destination


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    name: str
    stopped: bool = field(default=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def status(self, path: str) -> int:
        return httpx.get(self.url(path), timeout=5.0).status_code

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} while waiting for {what}:\n"
                    + self.log()[-4000:]
                )
            try:
                if predicate():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}:\n{self.log()[-4000:]}"
        )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        self.wait_until(lambda: self.status("/v2/health/ready") == 200, timeout, "readiness")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(
                f"server did not exit within {timeout}s:\n{self.log()[-4000:]}"
            ) from None
        self.stopped = True
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.stopped = True


def _server_args(model: ModelDir, name: str, port: int, extra: Sequence[str]) -> list[str]:
    return [
        *SERVE,
        "run",
        "--model-dir",
        str(model.path),
        "--model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--cpu-threads",
        "1",
        # Short drain so teardown is quick; tests about draining pass their own (last wins).
        "--drain-delay-s",
        "0.2",
        *extra,
    ]


class Launcher:
    """Starts servers with logs under log_dir; close() stops every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ServerProcess] = []

    def __call__(
        self,
        model: ModelDir,
        *extra: str,
        name: str = "tiny",
        wait_ready: bool = True,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        port = free_port()
        log_path = self.log_dir / f"server-{len(self.started)}-{port}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                _server_args(model, name, port, extra),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        server = ServerProcess(proc, port, log_path, name)
        self.started.append(server)
        if wait_ready:
            server.wait_ready()
        return server

    def close(self) -> None:
        for server in self.started:  # signal all first, so their drains overlap
            if server.proc.poll() is None:
                server.signal(signal.SIGTERM)
        for server in self.started:
            server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Launcher]:
    """Start `modeldr-serve run` processes; all of them are stopped at teardown."""
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """Like start_server, for servers shared by the tests of one module."""
    launcher = Launcher(tmp_path_factory.mktemp("servers"))
    yield launcher
    launcher.close()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
