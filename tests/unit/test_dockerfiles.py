"""The container builds copy only what exists (they cannot be built on this project's CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    p for p in (ROOT / "serving").glob("Dockerfile*") if not p.name.endswith(".dockerignore")
)


def copy_sources(dockerfile: Path) -> list[str]:
    """Sources of every build-context COPY (not `COPY --from=stage`)."""
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_both_dockerfiles_are_checked() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.cpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist(dockerfile: Path) -> None:
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the build context"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"{dockerfile.name} copies paths that do not exist: {missing}"


@pytest.mark.parametrize("link", ["operator", "serving", "drills"])
def test_import_root_symlinks_resolve(link: str) -> None:
    path = ROOT / "modeldr" / link
    assert path.is_symlink() and path.resolve() == ROOT / link and path.resolve().is_dir()
    assert not (ROOT / link / "__init__.py").exists(), "a top-level package would shadow stdlib"
