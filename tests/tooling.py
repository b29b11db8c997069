"""The pinned sandbox tools for tests: a missing tool fails the test, never skips it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox.config import ToolMissingError, tool

ROOT = Path(__file__).resolve().parents[1]


def require_tool(name: str) -> str:
    """Path of a tool from `scripts/tools.sh` (e.g. "helm", "kubectl"); fails if missing."""
    try:
        return tool(name)
    except ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


def run_script(*argv: str, env: dict[str, str] | None = None, timeout: float = 30) -> str:
    """Stdout of `bash scripts/<argv...>` run from the repository root; a non-zero exit is an
    AssertionError that carries the script's stderr."""
    done = subprocess.run(
        ["bash", f"scripts/{argv[0]}", *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(f"scripts/{' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return done.stdout
