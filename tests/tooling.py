"""The pinned sandbox tools for tests: a missing tool fails the test, never skips it."""

from __future__ import annotations

import pytest

from sandbox.config import ToolMissingError, tool


def require_tool(name: str) -> str:
    """Path of a tool from `scripts/tools.sh` (e.g. "helm", "kubectl"); fails if missing."""
    try:
        return tool(name)
    except ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
