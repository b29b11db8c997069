"""tests/conftest.py's scheduling for `make test`: every sandbox test in one unit of work (one
worker, in order), every other test on its own."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import SANDBOX_SCOPE, scope_of

ROOT = Path(__file__).resolve().parents[2]


def test_sandbox_tests_share_one_scope_and_the_others_do_not() -> None:
    ids = [
        "tests/integration/test_drills.py::test_a",
        "tests/integration/test_operator.py::test_b[x]",
    ]
    assert {scope_of(i) for i in ids} == {SANDBOX_SCOPE}
    others = ["tests/unit/test_kind.py::test_a", "tests/serving/test_protocol.py::test_b"]
    assert [scope_of(i) for i in others] == others
    # A file that merely mentions integration elsewhere in its id is not the sandbox's.
    assert scope_of("tests/unit/test_integration_x.py::t") != SANDBOX_SCOPE


def test_every_integration_test_lives_where_the_scheduler_looks() -> None:
    """The scheduler only sees test ids: a test marked integration outside tests/integration
    would run beside the sandbox's tests and could meet a cluster another test took down."""
    for path in (ROOT / "tests").rglob("test_*.py"):
        marked = re.search(r"^(pytestmark = |@)pytest\.mark\.integration", path.read_text(), re.M)
        if marked:
            assert path.parent == ROOT / "tests/integration", path
