"""The product images are built once per source (scripts/kind-images.sh, label modeldr.source):
after scripts/kind-prepare.sh built them (scripts/test-kind.sh runs it before these tests),
kind-demo's own call finds them up to date and rebuilds nothing.

    .venv/bin/python -m pytest -m kind tests/kind      # after scripts/kind-prepare.sh
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.tooling import run_script

pytestmark = pytest.mark.kind

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("ghcr.io/modeldr/modeldr:dev", "ghcr.io/modeldr/modeldr-serve:cpu-dev")


def _own_engine() -> dict[str, str]:
    out = run_script("kind-docker.sh", "env")
    env = dict(os.environ)
    for assignment in out.removeprefix("export ").split():
        key, _, value = assignment.partition("=")
        env[key] = value
    return env


def _inspect(env: dict[str, str], image: str, template: str) -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "-f", template, image],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"{image} is not in the project's engine: scripts/kind-prepare.sh builds it")
    return done.stdout.strip()


def test_images_of_an_unchanged_source_are_not_rebuilt() -> None:
    env = _own_engine()
    digest = run_script("kind-images.sh", "--source-digest").strip()
    before = {image: _inspect(env, image, "{{.Id}}") for image in IMAGES}
    for image in IMAGES:
        assert _inspect(env, image, '{{index .Config.Labels "modeldr.source"}}') == digest
    done = subprocess.run(
        ["bash", "scripts/kind-images.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stderr
    assert done.stdout.split() == list(IMAGES)
    assert {image: _inspect(env, image, "{{.Id}}") for image in IMAGES} == before
