"""scripts/kind-images.sh: how it chooses between the Dockerfiles as they are (a user's Docker)
and the offline build (the project's engine, which never pulls), and that the offline image
is the root Dockerfile's in what the charts rely on (user, entrypoint, command, ports). The
build itself needs the engine and Debian's mirror: measured by hand (docs/kind.md, "kind on
these machines")."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tooling import run_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/kind-images.sh"


def own_docker_host() -> str:
    out = subprocess.run(
        ["bash", "scripts/kind-docker.sh", "env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"DOCKER_HOST=(\S+)", out)
    assert found, out
    return found.group(1)


def mode(tmp_path: Path, *, docker_host: str, base_present: bool, override: str = "") -> str:
    # A `docker` first on PATH that answers `image inspect` for the upstream base as told:
    # the script must not ask any real engine (or registry) to decide.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "docker"
    fake.write_text(f"#!/bin/sh\nexit {0 if base_present else 1}\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MODELDR_KIND_IMAGES", "DOCKER_HOST")}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "DOCKER_HOST": docker_host}
    if override:
        env["MODELDR_KIND_IMAGES"] = override
    done = subprocess.run(
        ["bash", str(SCRIPT), "--mode"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_projects_engine_builds_offline_unless_the_upstream_base_is_there(
    tmp_path: Path,
) -> None:
    host = own_docker_host()
    assert mode(tmp_path, docker_host=host, base_present=False) == "offline"
    assert mode(tmp_path, docker_host=host, base_present=True) == "upstream"


@pytest.mark.parametrize("host", ["", "unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"])
def test_any_other_engine_builds_the_dockerfiles_as_they_are(tmp_path: Path, host: str) -> None:
    assert mode(tmp_path, docker_host=host, base_present=False) == "upstream"


def test_the_choice_can_be_forced(tmp_path: Path) -> None:
    assert mode(tmp_path, docker_host="", base_present=False, override="offline") == "offline"
    host = own_docker_host()
    assert mode(tmp_path, docker_host=host, base_present=False, override="upstream") == "upstream"


def heredocs() -> list[str]:
    """The script's Dockerfile heredocs: the shared venv stage, the operator's final stage,
    the server's final stage."""
    found = re.findall(r"<<DOCKERFILE\n(.*?)\nDOCKERFILE\n", SCRIPT.read_text(), re.DOTALL)
    assert len(found) == 3, "the offline Dockerfile heredocs"
    return list(found)


def offline_dockerfile(requirement: str = "modeldr", final: int = 1) -> str:
    """An offline Dockerfile as the script writes it (`venv_stage REQUIREMENT` + a stage)."""
    stage, *finals = heredocs()
    script = SCRIPT.read_text()
    assert f"{{ venv_stage {shlex.quote(requirement)}; cat <<DOCKERFILE" in script.replace(
        '"modeldr[serving-cpu]"', "'modeldr[serving-cpu]'"
    )
    return stage.replace('"$1"', requirement) + "\n" + finals[final - 1]


def final_stage(text: str) -> list[str]:
    stage = text.split("\nFROM ")[-1]
    keep = ("USER ", "EXPOSE ", "STOPSIGNAL ", "ENTRYPOINT ", "CMD ")
    return [ln.strip() for ln in stage.splitlines() if ln.strip().startswith(keep)]


def test_the_offline_image_runs_as_the_root_dockerfile_does() -> None:
    root = (ROOT / "Dockerfile").read_text()
    offline = offline_dockerfile()
    assert final_stage(offline) == final_stage(root)
    assert "COPY --from=build /opt/venv /opt/venv" in offline and "PATH=/opt/venv/bin:" in offline
    # The same user id as the root Dockerfile's useradd (the chart's runAsUser).
    [uid] = re.findall(r"useradd --system --uid (\d+)", root)
    assert f"useradd --system --uid {uid} " in SCRIPT.read_text()
    # Its build cannot reach any network, installs only the wheels it was given, no torch.
    assert 'docker build -q --network none -t "$OPERATOR_IMAGE"' in SCRIPT.read_text()
    assert "--no-index --find-links /wheels -c /constraints.txt modeldr" in offline
    assert '! /opt/venv/bin/python -c "import torch"' in offline


def test_the_offline_serving_image_runs_as_the_cpu_dockerfile_does_without_torch() -> None:
    cpu = (ROOT / "serving/Dockerfile.cpu").read_text()
    offline = offline_dockerfile("modeldr[serving-cpu]", final=2)
    # Less the HEALTHCHECK's command: Docker's, which the kubelet ignores (readiness probes).
    assert final_stage(offline) == [ln for ln in final_stage(cpu) if "/health/" not in ln]
    assert 'docker build -q --network none -t "$SERVE_IMAGE"' in SCRIPT.read_text()
    assert '! /opt/venv/bin/python -c "import torch"' in offline
    # serving/Dockerfile.cpu's environment, and the backend that needs no torch.
    env = dict(re.findall(r"(MODELDR_SERVE_\w+)=(\S+)", offline))
    cpu_stage = "\n".join(ln for ln in cpu.split("\nFROM ")[-1].splitlines() if ln[:1] != "#")
    cpu_env = dict(re.findall(r"(MODELDR_SERVE_\w+)=(\S+)", cpu_stage))
    assert cpu_env == {k: v for k, v in env.items() if k != "MODELDR_SERVE_BACKEND"}
    assert env["MODELDR_SERVE_BACKEND"] == "numpy"


def test_the_offline_base_has_what_the_agent_needs() -> None:
    # nftables and tc (iproute2) for the agent's faults, as the root Dockerfile installs.
    root = (ROOT / "Dockerfile").read_text()
    assert "nftables iproute2" in root
    [include] = re.findall(r"--include=(\S+)", SCRIPT.read_text())
    assert {"python3", "python3-venv", "nftables", "iproute2"} <= set(include.split(","))


def _source_digest(root: Path) -> str:
    # The copy's own script, run in the copy (tests.tooling.run_script runs this checkout's).
    done = subprocess.run(
        ["bash", "scripts/kind-images.sh", "--source-digest"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_the_source_digest_follows_what_goes_into_the_images(tmp_path: Path) -> None:
    """The images' label modeldr.source decides whether kind-demo rebuilds them: it must change
    with a file of the package (behind the symlinked roots too), with the pins and with the
    recipe, and must not change with anything else (the tests, a README at the top)."""
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "constraints.txt", "scripts/kind-images.sh"):
        (copy / name).write_bytes((ROOT / name).read_bytes())
    (copy / "modeldr").mkdir()
    (copy / "modeldr/__init__.py").write_text("")
    (copy / "drills").mkdir()
    (copy / "drills/run.py").write_text("x = 1\n")
    (copy / "modeldr/drills").symlink_to("../drills")
    first = _source_digest(copy)
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert _source_digest(copy) == first  # stable
    (copy / "README.md").write_text("unrelated")
    (copy / "tests").mkdir()
    (copy / "tests/test_x.py").write_text("")
    assert _source_digest(copy) == first
    seen = {first}
    for changed, text in (
        ("drills/run.py", "x = 2\n"),  # behind a symlink
        ("constraints.txt", "six==1.16.0\n"),
        ("scripts/kind-images.sh", (ROOT / "scripts/kind-images.sh").read_text() + "\n# x\n"),
    ):
        (copy / changed).write_text(text)
        digest = _source_digest(copy)
        assert digest not in seen, changed
        seen.add(digest)


def test_the_kind_part_prepares_before_its_first_test() -> None:
    """A fresh machine has no image: test-kind.sh builds everything (kind-prepare.sh and the
    base image tests/kind run) before tests/kind, not inside kind-demo after them."""
    text = (ROOT / "scripts/test-kind.sh").read_text()
    tests_at = text.index("-m kind tests/kind")
    assert -1 < text.find("bash scripts/kind-prepare.sh") < tests_at
    assert -1 < text.find("kind-images.sh --base") < tests_at
    prepare = (ROOT / "scripts/kind-prepare.sh").read_text()
    order = [
        prepare.find(s)
        for s in ("kind-docker.sh start", "kind.sh path", "kind-node-image.sh", "kind-images.sh")
    ]
    assert -1 not in order and order == sorted(order)


def test_the_disk_check_refuses_clusters_that_would_not_fit_and_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "MODELDR_CACHE": str(tmp_path)}
    free_gb = shutil.disk_usage(tmp_path).free // 2**30
    fits = run_script("kind-docker.sh", "disk", env={**env, "MODELDR_KIND_DISK_GB": "1"})
    assert fits == ""  # its words go to stderr
    with pytest.raises(AssertionError) as refused:
        run_script(
            "kind-docker.sh", "disk", env={**env, "MODELDR_KIND_DISK_GB": str(free_gb + 100)}
        )
    message = str(refused.value)
    assert "exited 1" in message and "not enough disk for the kind clusters" in message
    assert f"need about {free_gb + 100} GB" in message and "MODELDR_CACHE" in message
