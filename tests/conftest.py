"""Test-run layout for `make test` on pytest-xdist workers (`MODELDR_TEST_WORKERS=2 make test`;
serial by default, scripts/test.sh says why):
the sandbox's integration tests (all of tests/integration) are one unit of work that one
worker runs in collection order, exactly as a plain serial run would: they share one sandbox
and one operator, and many take a whole cluster down or restart the operator, so two of them
must never overlap. The unit and model-server tests, which share nothing, are spread over
the workers beside them, at a lower CPU priority (nice 10) so that the drills' timing on
the sandbox's worker is what a serial run gives. Without `-n` (a plain `pytest`), nothing
here is used.

Why a scheduler and not `--dist loadgroup` with an `xdist_group` marker: pytest 9.2 keeps a
test's id in `Node._id`, and pytest-xdist 3.8 still writes the group into `Node._nodeid`, so
the group never reaches its scheduler and grouped tests are spread like any others (checked
here: one module's tests on both workers). Loadscope's scheduler with our own scope is the
hook xdist documents for this.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from xdist.scheduler import LoadScopeScheduling

#: the scope of every test that needs the sandbox
SANDBOX_SCOPE = "sandbox"
#: where those tests live (a test id starts with its path from the repository root)
SANDBOX_TESTS = "tests/integration/"


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: the sandbox's one, or the test alone."""
    return SANDBOX_SCOPE if nodeid.startswith(SANDBOX_TESTS) else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling:
    from xdist.scheduler import LoadScopeScheduling

    class SandboxScopeScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return SandboxScopeScheduling(config, log)


#: the niceness of a worker that runs no sandbox test (the unit and model-server tests)
BESIDE_THE_SANDBOX_NICE = 10


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Only on an xdist worker, and only once, at its first test. The sandbox's scope is the
    # first unit of work and goes to a worker before any other, so a worker whose first test
    # is not the sandbox's never runs one (and the operator it starts is never niced).
    config = item.config
    if not hasattr(config, "workerinput") or hasattr(config, "_modeldr_priority_set"):
        return
    config._modeldr_priority_set = True  # type: ignore[attr-defined]
    if scope_of(item.nodeid) != SANDBOX_SCOPE:
        os.nice(BESIDE_THE_SANDBOX_NICE)
