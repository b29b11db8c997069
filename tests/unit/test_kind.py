"""The kind path (make kind-demo, scripts/kind-demo.sh, .github/workflows/kind-drill.yaml,
kind/*.yaml, examples/kind) cannot run here (no Docker engine): what can be checked without
it is checked. The workflow parses and every make target, script and file it names exists;
the scripts parse (bash -n) and name files that exist; the kind configs are valid kind
Cluster configs with disjoint pod and service ranges; the images the script builds are the
ones the chart and the example ModelDeployment run; the drill command uses the CLI's real
flags. That the manifests validate against a real apiserver:
tests/integration/test_kind_manifests.py."""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github/workflows/kind-drill.yaml"
DEMO = ROOT / "scripts/kind-demo.sh"
KIND_SH = ROOT / "scripts/kind.sh"
IMAGES_SH = ROOT / "scripts/kind-images.sh"
TEST_KIND = ROOT / "scripts/test-kind.sh"
CONFIGS = {p.stem: p for p in sorted((ROOT / "kind").glob("*.yaml"))}


def workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def run_lines() -> list[str]:
    return [
        line.strip()
        for job in workflow()["jobs"].values()
        for step in job["steps"]
        for line in str(step.get("run", "")).splitlines()
        if line.strip()
    ]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.MULTILINE))


def script_var(name: str) -> str:
    found = re.search(rf"^{name}=(\S+|\$\{{[^}}]*\}})$", DEMO.read_text(), re.MULTILINE)
    assert found, f"{name}= not in {DEMO.name}"
    return found.group(1)


def test_the_workflow_parses_and_runs_the_drill_on_every_trigger_it_names() -> None:
    wf = workflow()
    triggers = wf[True]  # YAML 1.1 reads the key `on` as true
    assert {"workflow_dispatch", "pull_request", "schedule"} <= set(triggers)
    [job] = wf["jobs"].values()
    assert job["runs-on"].startswith("ubuntu") and job["timeout-minutes"] <= 90
    uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    assert uses[0] == "actions/checkout" and "actions/upload-artifact" in uses
    assert "make kind-demo" in run_lines()
    # The clusters go whatever happened; diagnostics on failure.
    last = job["steps"][-1]
    assert last["if"] == "always()" and last["run"].strip() == "make kind-down"


def test_every_make_target_the_workflow_runs_exists() -> None:
    targets = make_targets()
    named = {word for line in run_lines() for word in re.findall(r"\bmake ([\w-]+)", line)}
    assert named >= {"kind-demo", "kind-down"}
    assert named <= targets, named - targets
    # And what the targets run exists.
    makefile = (ROOT / "Makefile").read_text()
    for target in ("kind-up", "kind-down", "kind-demo"):
        recipe = re.search(rf"^{target}:.*\n\t(.+)$", makefile, re.MULTILINE)
        assert recipe, target
        for path in re.findall(r"scripts/[\w.-]+", recipe.group(1)):
            assert (ROOT / path).is_file(), path


def test_the_workflow_publishes_what_the_script_writes() -> None:
    wf = workflow()
    [job] = wf["jobs"].values()
    results = job["env"]["MODELDR_KIND_RESULTS"]
    [upload] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    assert upload["if"] == "always()"
    paths = upload["with"]["path"].split()
    assert paths == [f"{results}/*.junit.xml", f"{results}/*.html"]
    text = DEMO.read_text()
    # One JUnit file and one HTML report per plan, named after the plan's file.
    assert '--junit "$RESULTS/$name.junit.xml"' in text
    assert '--report "$RESULTS/$name.html"' in text
    assert "RESULTS=${MODELDR_KIND_RESULTS:-" in text
    plans = script_var("PLANS").removeprefix("${MODELDR_KIND_PLANS:-").removesuffix("}").split()
    assert plans == [
        "examples/kind/drillplan.yaml",
        "examples/kind/drillplan-outage.yaml",
        "examples/kind/drillplan-partition.yaml",
    ]


def test_files_the_workflow_and_scripts_name_exist() -> None:
    text = "\n".join(p.read_text() for p in (WORKFLOW, DEMO, KIND_SH, IMAGES_SH))
    named = set(
        re.findall(
            r"(?<![\w./$-])((?:scripts|kind|examples|charts|serving|tests/fixtures)/[\w./-]+"
            r"|Dockerfile[\w.]*|constraints\.txt)",
            text,
        )
    )
    named = {n.rstrip(".") for n in named if "$" not in n}
    assert {
        "Dockerfile",
        "serving/Dockerfile.cpu",
        "charts/modeldr",
        "examples/kind/drillplan.yaml",
        "examples/kind/drillplan-outage.yaml",
        "examples/kind/modeldeployment.yaml",
        "examples/sandbox/golden-set.yaml",
    } <= named
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, missing


@pytest.mark.parametrize("script", [DEMO, KIND_SH, IMAGES_SH, TEST_KIND], ids=lambda p: p.name)
def test_the_scripts_parse(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert script.stat().st_mode & 0o111 or "bash scripts/" in (ROOT / "Makefile").read_text()
    assert "set -euo pipefail" in script.read_text()


def test_the_kind_configs_are_three_clusters_with_disjoint_ranges() -> None:
    assert set(CONFIGS) == {"hub", "primary", "standby"}
    ports, pods, services = set(), [], []
    for name, path in CONFIGS.items():
        config = yaml.safe_load(path.read_text())
        assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
        assert config["name"] == f"modeldr-{name}"
        net = config["networking"]
        assert net["apiServerAddress"] == "127.0.0.1"  # published on loopback only
        ports.add(net["apiServerPort"])
        pods.append(ipaddress.ip_network(net["podSubnet"]))
        services.append(ipaddress.ip_network(net["serviceSubnet"]))
        roles = [n["role"] for n in config["nodes"]]
        assert roles[0] == "control-plane" and set(roles) <= {"control-plane", "worker"}
        gpu = [n for n in config["nodes"] if (n.get("labels") or {}).get("nvidia.com/gpu.present")]
        if name == "hub":
            assert not gpu
            continue
        assert len(gpu) >= 2, name  # a hot standby's 2 replicas, one GPU each
        for node in gpu:
            [mount] = node["extraMounts"]
            assert mount["containerPath"] == "/tmp/modeldr/models" and mount["readOnly"]
    assert len(ports) == 3
    ranges = pods + services
    overlaps = [(a, b) for i, a in enumerate(ranges) for b in ranges[i + 1 :] if a.overlaps(b)]
    assert not overlaps, overlaps


def test_the_images_built_are_the_images_run() -> None:
    operator_image = script_var("OPERATOR_IMAGE")
    serve_image = script_var("SERVE_IMAGE")
    values = yaml.safe_load((ROOT / "charts/modeldr/values.yaml").read_text())
    repository, tag = operator_image.rsplit(":", 1)
    assert repository == values["image"]["repository"]
    assert f"--set image.tag={tag}" in DEMO.read_text()
    assert "--set image.pullPolicy=Never" in DEMO.read_text()  # kind load, never pulled
    md = yaml.safe_load((ROOT / "examples/kind/modeldeployment.yaml").read_text())
    assert md["spec"]["runtime"]["image"] == serve_image
    assert md["spec"]["runtime"]["imagePullPolicy"] == "Never"
    text = DEMO.read_text()
    # The images come from scripts/kind-images.sh: on a user's Docker both Dockerfiles as
    # they are, under the same names.
    assert "bash scripts/kind-images.sh" in text
    images = IMAGES_SH.read_text()
    assert re.search(rf"^OPERATOR_IMAGE={re.escape(operator_image)}\s", images, re.MULTILINE)
    assert re.search(rf"^SERVE_IMAGE={re.escape(serve_image)}$", images, re.MULTILINE)
    label = '--label "modeldr.source=$SOURCE" .'
    assert f'docker build -t "$OPERATOR_IMAGE" -f Dockerfile {label}' in images
    assert f'docker build -t "$SERVE_IMAGE" -f serving/Dockerfile.cpu {label}' in images
    assert 'load docker-image "$OPERATOR_IMAGE" --name modeldr-hub' in text
    # The model the kind nodes mount is the one the sandbox example pins (which the sandbox
    # serves from its object stores: kind has none yet, so the node's copy).
    sandbox_md = yaml.safe_load((ROOT / "examples/sandbox/modeldeployment.yaml").read_text())
    kind_model = dict(md["spec"]["model"])
    assert kind_model.pop("source") == "file:///tmp/modeldr/models/tiny-bert"
    assert sandbox_md["spec"]["model"]["source"] == "s3://models/tiny-bert"
    sandbox_model = {
        k: v for k, v in sandbox_md["spec"]["model"].items() if k not in ("source", "store")
    }
    assert kind_model == sandbox_model


def drill_command() -> list[str]:
    text = DEMO.read_text().replace("\\\n", " ")
    [line] = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip().startswith(".venv/bin/modeldr drill run")
    ]
    words = shlex.split(line.split("||")[0])
    return words[words.index("drill") :]


def test_the_drill_command_uses_the_clis_real_flags() -> None:
    from modeldr.client.app import app

    words = drill_command()
    assert words[:2] == ["drill", "run"] and words[2] == "$plan"
    flags = {w for w in words if w.startswith("-")}
    assert flags == {"--context", "-n", "--wait", "--timeout", "--junit", "--report"}
    help_text = CliRunner().invoke(app, ["drill", "run", "--help"], terminal_width=200).output
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", help_text), (flag, help_text)
    assert "for plan in $PLANS; do" in DEMO.read_text()


def test_ci_runs_the_kind_drills_after_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert ci.index("make test") < ci.index("make test-kind")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test-kind:.*\n\tbash scripts/test-kind\.sh$", makefile, re.MULTILINE)
    text = TEST_KIND.read_text()
    # The container tests of the kind provider, both drills, and the clusters always deleted.
    assert "-m kind tests/kind" in text and "bash scripts/kind-demo.sh" in text
    assert "trap cleanup EXIT" in text and "bash scripts/kind.sh down" in text
