"""Sandbox process runtime helpers: preStop exec parsing, finding leftover processes, and
probes that come from the node's address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from sandbox.api import leftover_pids
from sandbox.config import SANDBOX_ROOT_ENV
from sandbox.podspec import Probe
from sandbox.runtime import exec_sleep_seconds, kill_stale_processes, run_probe
from tests.loopback import serve


@pytest.mark.parametrize(
    ("command", "seconds"),
    [
        (["sleep", "5"], 5.0),
        (["/bin/sleep", "0.5"], 0.5),
        (["sleep", "5s"], None),  # GNU suffixes are not understood: no sleep, no crash
        (["sleep", "-1"], None),
        (["sleep"], None),
        ([], None),
        (["sh", "-c", "sleep 5"], None),
        (["notsleep", "5"], None),
    ],
)
def test_exec_sleep_seconds(command: list[str], seconds: float | None) -> None:
    assert exec_sleep_seconds(command) == seconds


def test_leftover_pids_finds_marked_processes_only(tmp_path: Path) -> None:
    root = tmp_path / ".sandbox"
    # Each child says "up" once it runs: before its exec, /proc/PID shows pytest's environment.
    sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    out = subprocess.PIPE
    marked = subprocess.Popen(sleeper, stdout=out, env={**os.environ, SANDBOX_ROOT_ENV: str(root)})
    other = subprocess.Popen(
        sleeper, stdout=out, env={**os.environ, SANDBOX_ROOT_ENV: str(tmp_path / "x")}
    )
    by_path = subprocess.Popen([*sleeper, str(root / "pods")], stdout=out)
    try:
        for proc in (marked, other, by_path):
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"
        found = leftover_pids(root)
        assert marked.pid in found
        assert by_path.pid in found
        assert other.pid not in found
        assert os.getpid() not in found
    finally:
        for proc in (marked, other, by_path):
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    assert marked.pid not in leftover_pids(root)


def test_stale_sweep_kills_only_processes_that_carry_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pid file can outlive its process and its number be reused: the sweep after a
    # runtime crash must spare a process that is not this sandbox's.
    root = tmp_path / ".sandbox"
    monkeypatch.setenv("MODELDR_SANDBOX_DIR", str(root))
    pods = root / "pods" / "primary" / "ns"
    pods.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = subprocess.Popen(
        sleeper, env={**os.environ, SANDBOX_ROOT_ENV: str(root.resolve())}, start_new_session=True
    )
    stranger = subprocess.Popen(sleeper, start_new_session=True)
    try:
        (pods / "pod-a.pid").write_text(str(marked.pid))
        (pods / "pod-b.pid").write_text(str(stranger.pid))
        kill_stale_processes()
        assert marked.wait(timeout=10) == -9
        assert stranger.poll() is None
        assert list(pods.glob("*.pid")) == []
    finally:
        for proc in (marked, stranger):
            proc.kill()
            proc.wait()


class _RecordPeer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.state.append(self.client_address[0])  # type: ignore[attr-defined]
        self.send_response(200 if self.path == "/ready" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_http_probe_comes_from_the_node_address() -> None:
    peers: list[str] = []
    with serve(_RecordPeer, peers) as url:
        port = int(url.rsplit(":", 1)[1])
        ready = Probe(kind="httpGet", port=port, path="/ready", timeout=2)
        assert run_probe(ready, "127.0.0.1", {}, source_ip="127.1.0.1")
        assert not run_probe(Probe(kind="httpGet", port=port, path="/x"), "127.0.0.1", {})
    # The first from the node's address; without one, the kernel picks 127.0.0.1.
    assert peers == ["127.1.0.1", "127.0.0.1"]


def test_tcp_probe_comes_from_the_node_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(2)
        port = server.getsockname()[1]
        assert run_probe(Probe(kind="tcpSocket", port=port), "127.0.0.1", {}, source_ip="127.2.0.1")
        conn, peer = server.accept()
        conn.close()
    assert peer[0] == "127.2.0.1"
    # Nothing listening: the probe fails (and says so rather than raising).
    assert not run_probe(Probe(kind="tcpSocket", port=port, timeout=0.5), "127.0.0.1", {})
