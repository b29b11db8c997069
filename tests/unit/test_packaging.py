"""The wheel and the sdist hold the `modeldr` package and nothing else.

In the repository, modeldr/operator, modeldr/serving, modeldr/drills and modeldr/agent are symlinks
onto top-level folders that hold no __init__.py (see pyproject.toml). The archives
must hold their modules as regular files, put nothing but `modeldr` on the import
path, and leave out sandbox/, bench/ and tests/.

Both archives are built offline through setuptools' own PEP 517 hooks, with the
installed setuptools (what `pip wheel --no-build-isolation` runs), from a copy of the
working tree so that the build writes nothing into the repository.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a fresh checkout does not have (.gitignore) and the VCS folder: never copied.
SKIP_AT_ROOT = {
    ".git",
    ".venv",
    ".sandbox",
    ".kind",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "tmp",
}
SKIP_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
# Symlinked subpackage -> one module it must hold.
SUBPACKAGES = {
    "operator": "handlers.py",
    "serving": "app.py",
    "drills": "engine.py",
    "api": "drillplan.py",
    "kube": "k8s.py",
    "agent": "rules.py",
}
FORBIDDEN = {"sandbox", "bench", "tests"}
BUILD_TIMEOUT_S = 120


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    sdist_tree: Path  # the sdist, unpacked


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = set(SKIP_ANYWHERE(directory, names))
    if Path(directory) == ROOT:
        skipped |= SKIP_AT_ROOT & set(names)
    return skipped


def _build(hook: str, source: Path, out: Path, suffix: str) -> Path:
    """Run setuptools' build_wheel or build_sdist hook in source; the archive it wrote."""
    out.mkdir()
    code = (
        "import sys; from setuptools import build_meta as b; getattr(b, sys.argv[1])(sys.argv[2])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, hook, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"{hook} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    archives = sorted(out.glob(f"*{suffix}"))
    assert len(archives) == 1, f"{hook} wrote {[p.name for p in out.iterdir()]}"
    return archives[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_ignore)
    assert (source / "modeldr" / "operator").is_symlink(), "the copy keeps the repository's links"
    sdist = _build("build_sdist", source, work / "sdist", ".tar.gz")
    wheel = _build("build_wheel", source, work / "wheel", ".whl")
    unpacked = work / "unpacked"
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    (tree,) = unpacked.iterdir()
    return Built(wheel, sdist, tree)


def expected_modules() -> set[str]:
    """modeldr/<sub>/... for every .py file of the symlinked subpackages, and modeldr's own."""
    modules = {f"modeldr/{p.name}" for p in (ROOT / "modeldr").glob("*.py")}
    for sub in SUBPACKAGES:
        for path in (ROOT / sub).rglob("*.py"):
            modules.add(f"modeldr/{sub}/{path.relative_to(ROOT / sub).as_posix()}")
    return modules


def wheel_files(wheel: Path) -> dict[str, int]:
    """Every entry of the wheel and its Unix mode."""
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: info.external_attr >> 16 for info in archive.infolist()}


def no_forbidden_parts(names: list[str], where: str) -> None:
    for name in names:
        parts = PurePosixPath(name).parts
        hits = FORBIDDEN & ({*parts} | {PurePosixPath(name).stem})
        assert not hits, f"{where} holds {name} ({', '.join(sorted(hits))})"


def test_expected_modules_are_found() -> None:
    modules = expected_modules()
    for sub, module in SUBPACKAGES.items():
        assert f"modeldr/{sub}/{module}" in modules


def test_wheel_holds_the_modules_as_regular_files(built: Built) -> None:
    files = wheel_files(built.wheel)
    missing = sorted(expected_modules() - set(files))
    assert not missing, f"the wheel lacks {missing}"
    for sub, module in SUBPACKAGES.items():
        assert f"modeldr/{sub}/{module}" in files
    for name, mode in files.items():
        assert not name.endswith("/"), f"directory entry {name}"
        # Mode 0: no Unix attributes recorded, a plain file to every installer.
        assert mode == 0 or stat.S_ISREG(mode), f"{name} is not a regular file ({oct(mode)})"


def test_wheel_puts_only_modeldr_on_the_import_path(built: Built) -> None:
    files = list(wheel_files(built.wheel))
    tops = {PurePosixPath(name).parts[0] for name in files}
    dist_info = {top for top in tops if top.endswith(".dist-info")}
    assert len(dist_info) == 1 and next(iter(dist_info)).startswith("modeldr-")
    assert tops - dist_info == {"modeldr"}, f"top-level entries {sorted(tops)}"
    with zipfile.ZipFile(built.wheel) as archive:
        top_level = archive.read(f"{next(iter(dist_info))}/top_level.txt").decode()
    assert top_level.split() == ["modeldr"]
    no_forbidden_parts(files, "the wheel")


def test_wheel_carries_the_license(built: Built) -> None:
    files = wheel_files(built.wheel)
    (dist_info,) = {PurePosixPath(n).parts[0] for n in files if ".dist-info/" in n}
    with zipfile.ZipFile(built.wheel) as archive:
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        license_text = archive.read(f"{dist_info}/licenses/LICENSE")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert license_text == (ROOT / "LICENSE").read_bytes()


def test_sdist_holds_the_modules_as_regular_files(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        members = archive.getmembers()
    prefix = PurePosixPath(members[0].name).parts[0]
    links = [m.name for m in members if m.issym() or m.islnk()]
    assert not links, f"the sdist stores links: {links}"
    regular = {PurePosixPath(m.name).relative_to(prefix).as_posix() for m in members if m.isfile()}
    missing = sorted(expected_modules() - regular)
    assert not missing, f"the sdist lacks {missing}"
    for needed in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO"):
        assert needed in regular
    tops = {PurePosixPath(name).parts[0] for name in regular if "/" in name}
    assert tops <= {"modeldr", "modeldr.egg-info"}, f"top-level folders {sorted(tops)}"
    no_forbidden_parts(sorted(regular), "the sdist")
    metadata = HeaderParser().parsestr((built.sdist_tree / "PKG-INFO").read_text())
    assert metadata["License-Expression"] == "Apache-2.0"


def test_the_sdist_builds_the_same_wheel(built: Built, tmp_path: Path) -> None:
    again = _build("build_wheel", built.sdist_tree, tmp_path / "wheel", ".whl")

    def names(wheel: Path) -> list[str]:
        return sorted(n for n in wheel_files(wheel) if not n.endswith(".dist-info/RECORD"))

    assert names(again) == names(built.wheel)
