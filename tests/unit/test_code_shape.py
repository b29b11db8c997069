"""The shape the product keeps (docs/architecture.md): no function over 60 lines, and the
formatter formats everything (no `# fmt: skip` / `# fmt: off`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("api", "kube", "operator", "drills", "agent", "client", "serving")
MAX_FUNCTION_LINES = 60


def product_files() -> list[Path]:
    return sorted(p for root in PRODUCT for p in (ROOT / root).rglob("*.py"))


def test_the_product_is_where_the_test_looks() -> None:
    assert len(product_files()) > 100


def test_no_product_function_is_over_60_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
        for path in product_files()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not long, "split these into named parts:\n" + "\n".join(long)


def test_the_formatter_formats_the_product() -> None:
    skipped = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in product_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "# fmt: skip" in line or "# fmt: off" in line
    ]
    assert not skipped, skipped
