"""Test-run layout for `make test` (scripts/test.sh runs pytest with pytest-xdist,
`--dist loadgroup`): the sandbox's integration tests form one group that one worker runs in
collection order, exactly as a plain serial run would (they share one sandbox and one
operator, and many take a whole cluster down or restart the operator, so two of them must
never overlap); the unit and model-server tests, which share nothing, run on the other
workers beside them. Without `-n` (a plain `pytest`), the group marker changes nothing.
"""

from __future__ import annotations

import pytest

#: the one xdist group of the tests that need the sandbox
SANDBOX_GROUP = "sandbox"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(pytest.mark.xdist_group(SANDBOX_GROUP))
