"""The container builds copy only what exists (they cannot be built on this project's CI),
and the operator's image (the repository's Dockerfile) is what the charts run: no torch, the
`modeldr` entry point, the chart's user."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

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


def test_both_serving_dockerfiles_are_checked() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.cpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist(dockerfile: Path) -> None:
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the build context"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"{dockerfile.name} copies paths that do not exist: {missing}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_serving_images_copy_every_import_root(dockerfile: Path) -> None:
    # modeldr/<root> links ../<root>: a root left out is a dangling link in the image.
    roots = {p.name for p in (ROOT / "modeldr").iterdir() if p.is_symlink()}
    copied = set(copy_sources(dockerfile))
    assert roots <= copied, roots - copied
    allowed = dockerignore_allowed(dockerfile)
    assert all(f"{root}/**" in allowed for root in roots), allowed


@pytest.mark.parametrize("link", ["operator", "serving", "drills"])
def test_import_root_symlinks_resolve(link: str) -> None:
    path = ROOT / "modeldr" / link
    assert path.is_symlink() and path.resolve() == ROOT / link and path.resolve().is_dir()
    assert not (ROOT / link / "__init__.py").exists(), "a top-level package would shadow stdlib"


OPERATOR_DOCKERFILE = ROOT / "Dockerfile"


def dockerignore_allowed(dockerfile: Path) -> list[str]:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
    return [line[1:] for line in ignore if line.startswith("!")]


def test_the_operator_image_installs_modeldr_without_torch() -> None:
    text = OPERATOR_DOCKERFILE.read_text()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("[serving]" not in line and "torch" not in line for line in installs)
    assert "-c constraints.txt" in installs[0]
    assert 'ENTRYPOINT ["modeldr"]' in text and 'CMD ["operator"]' in text
    # The chart's securityContext runs it as this user.
    values = yaml.safe_load((ROOT / "charts/modeldr/values.yaml").read_text())
    assert f"USER {values['securityContext']['runAsUser']}:" in text
    # The agent's tools.
    assert "nftables" in text and "iproute2" in text


def test_the_operator_image_context_holds_the_package() -> None:
    allowed = dockerignore_allowed(OPERATOR_DOCKERFILE)
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "LICENSE"):
        assert needed in allowed and (ROOT / needed).exists(), needed
    # Every import root the package links (modeldr/<root> -> ../<root>) is in the context,
    # torch-free code only: serving's Python files, not its weights or Dockerfiles.
    for link in sorted((ROOT / "modeldr").iterdir()):
        if link.is_symlink():
            patterns = [p for p in allowed if p.split("/")[0] == link.name]
            assert patterns, f"modeldr/{link.name} links ../{link.name}, not in the image"
            files = [f for f in (ROOT / link.name).rglob("*.py")]
            assert any(
                fnmatch.fnmatch(str(f.relative_to(ROOT)), p) for f in files for p in patterns
            )


def test_the_charts_default_image_is_the_operator_image() -> None:
    for chart in ("modeldr", "modeldr-agent"):
        values_file = ROOT / "charts" / chart / "values.yaml"
        if not values_file.exists():
            continue
        values = yaml.safe_load(values_file.read_text())
        assert values["image"]["repository"] == "ghcr.io/modeldr/modeldr", chart
    assert "ghcr.io/modeldr/modeldr" in OPERATOR_DOCKERFILE.read_text()
