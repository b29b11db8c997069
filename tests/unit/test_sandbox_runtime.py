"""Sandbox process runtime helpers: preStop exec parsing and finding leftover processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.api import leftover_pids
from sandbox.config import SANDBOX_ROOT_ENV
from sandbox.runtime import exec_sleep_seconds


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
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = subprocess.Popen(sleeper, env={**os.environ, SANDBOX_ROOT_ENV: str(root)})
    other = subprocess.Popen(sleeper, env={**os.environ, SANDBOX_ROOT_ENV: str(tmp_path / "x")})
    by_path = subprocess.Popen([*sleeper, str(root / "pods")])
    try:
        found = leftover_pids(root)
        assert marked.pid in found
        assert by_path.pid in found
        assert other.pid not in found
        assert os.getpid() not in found
    finally:
        for proc in (marked, other, by_path):
            proc.kill()
            proc.wait()
    assert marked.pid not in leftover_pids(root)
