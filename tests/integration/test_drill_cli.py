"""`modeldr drill` on the sandbox, as a user or a CI job runs it: a subprocess with the
sandbox's kubeconfig, no terminal (plain lines), its exit code per verdict, its reports
(JUnit against the JUnit XML schema, the HTML opened in headless Chromium with the chart
drawn), Ctrl-C mid-drill rolling the run back, and a dry run that touches nothing.

Drills are a few seconds long: what is under test is the CLI and the reports, the engine has
its own tests (test_drills.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml
from kubernetes import client

from modeldr.kube.constants import DRILL_PLAN_LABEL, DRILLRUNS, GROUP, VERSION
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from tests import chromium
from tests.integration.modeldeployments import ROOT, custom, serving_everywhere, wait_status
from tests.integration.test_drills import own_modeldeployment, plan

pytestmark = pytest.mark.integration

JUNIT_XSD = ROOT / "tests/fixtures/junit-10.xsd"
REQUESTS = 'sum(rate(modeldr_serve_requests_total{{cluster="{cluster}", namespace="{ns}"}}[15s]))'
CLI_TIMEOUT_S = 240
# What would make a browser fetch something: a remote src/href, a CSS url() or @import, a link.
FETCHES = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?https?:|@import|<link""")


@pytest.fixture(scope="module")
def cli_ns(operator: None, sandbox: Sandbox) -> Iterator[str]:
    with own_modeldeployment("c", lambda spec: None, serving_everywhere) as ns:
        yield ns


@pytest.fixture(autouse=True)
def served(cli_ns: str) -> Iterator[None]:
    wait_status(cli_ns, serving_everywhere, "model servers Ready in both clusters", 180)
    yield
    wait_status(cli_ns, serving_everywhere, "model servers Ready again", 180)


def cli(*args: str, ns: str | None = None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "modeldr.cli",
        "drill",
        *args,
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
    ]
    return command + (["-n", ns] if ns else [])


def run_cli(*args: str, ns: str | None = None, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str]:
    done = subprocess.run(
        cli(*args, ns=ns), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    return done.returncode, done.stdout + done.stderr


def plan_file(tmp_path: Path, name: str, steps: list[dict[str, Any]], **spec: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan(name, steps, **spec)))
    return path


def run_object(ns: str, name: str) -> dict[str, Any]:
    return dict(custom().get_namespaced_custom_object(GROUP, VERSION, ns, DRILLRUNS, name))


def plan_runs(ns: str, plan_name: str) -> list[dict[str, Any]]:
    selector = f"{DRILL_PLAN_LABEL}={plan_name}"
    found = custom().list_namespaced_custom_object(
        GROUP, VERSION, ns, DRILLRUNS, label_selector=selector
    )
    return list(found["items"])


def started_run(output: str) -> str:
    found = re.search(r"DrillRun \S+/(\S+) started", output)
    assert found, output
    return found.group(1)


def cluster_state(ns: str) -> dict[str, Any]:
    """What a drill could touch: the model's pods (name, uid, node) and every node's cordon
    and taints, in both member clusters."""
    state: dict[str, Any] = {}
    for cluster in ("primary", "standby"):
        core = kube.core(cluster)
        pods = core.list_namespaced_pod(ns, label_selector="modeldr.io/name=tiny-bert").items
        state[f"{cluster}/pods"] = sorted(
            (p.metadata.name, p.metadata.uid, p.spec.node_name) for p in pods
        )
        state[f"{cluster}/nodes"] = sorted(
            (
                n.metadata.name,
                bool(n.spec.unschedulable),
                sorted((t.key, t.effect) for t in n.spec.taints or []),
            )
            for n in core.list_node().items
        )
    return state


# ------------------------------------------------------------------------------ tests


def test_a_passing_drill_exits_0_with_junit_html_and_markdown(cli_ns: str, tmp_path: Path) -> None:
    path = plan_file(
        tmp_path,
        "cli-pass",
        [
            {
                "name": "standby-pod",
                "fault": {"type": "PodKill", "cluster": "standby"},
                "durationSeconds": 4,
                "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
            }
        ],
        gates=[
            {
                "name": "primary-answers",
                "steps": ["standby-pod"],
                "prometheus": {"query": REQUESTS.format(cluster="primary", ns=cli_ns)},
                # rate() needs two scrapes (2 s apart) of the series this run's probe
                # creates: measured at once it saw no samples (Inconclusive, once in CI).
                "initialDelaySeconds": 3,
                "intervalSeconds": 2,
                "count": 1,
                "successCondition": "result[0] > 0",
            }
        ],
    )
    junit, html, md = tmp_path / "out/drill.xml", tmp_path / "out/drill.html", tmp_path / "d.md"
    code, out = run_cli(
        "run",
        str(path),
        "--wait",
        "--junit",
        str(junit),
        "--report",
        str(html),
        "--markdown",
        str(md),
        ns=cli_ns,
    )
    assert code == 0, out
    # Plain lines (no terminal), timestamped, one per change.
    assert re.search(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ step standby-pod \(1/1\) started for 4 s$", out, re.M
    ), out
    assert re.search(r"Z fault in force: PodKill in standby on ", out), out
    assert re.search(r"Z gate primary-answers: ", out), out
    assert "verdict: Passed" in out and f"JUnit XML: {junit}" in out and str(html) in out
    run = started_run(out)
    # The JUnit file validates against the JUnit XML schema and says what was measured.
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(junit))
    xml = junit.read_text()
    assert 'name="phase" value="Passed"' in xml and 'name="activeCluster"' in xml
    assert 'classname="steps.standby-pod" name="maxErrorRatio"' in xml or (
        'name="maxErrorRatio" classname="steps.standby-pod"' in xml
    )
    assert "<failure" not in xml and "<error" not in xml
    assert f"Drill `{cli_ns}/{run}`: **Passed**" in md.read_text()
    # The report is kept with the run and renders the same later.
    status = run_object(cli_ns, run)["status"]
    assert status["reportConfigMap"] == f"{run}-report"
    cm = kube.core("hub").read_namespaced_config_map(f"{run}-report", cli_ns)
    assert cm.metadata.owner_references[0].name == run
    doc = json.loads(cm.data["report.json"])
    assert doc["timeline"]["points"], "the probe's timeline was recorded"
    assert sum(p[2] for p in doc["timeline"]["points"]) >= 50  # 10/s over about 8 s
    again = tmp_path / "again.xml"
    code, out = run_cli("report", run, "--junit", str(again), ns=cli_ns)
    assert code == 0, out
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(again))
    code, out = run_cli("list", "cli-pass", ns=cli_ns)
    assert code == 0 and run in out and "Passed" in out, out
    code, out = run_cli("status", run, ns=cli_ns)
    assert code == 0 and "Passed" in out, out
    code, out = run_cli("logs", run, ns=cli_ns)
    assert code == 0 and "FaultInjected" in out and "FaultUndone" in out, out
    # The HTML report opens in headless Chromium with the chart drawn.
    dom = chromium.dump_dom(html)
    for element in (
        'id="success-rate"',
        'id="p99-latency"',
        'id="fault-window-0"',
        'id="step-standby-pod"',
        'id="timeline-chart"',
        'id="verdict"',
    ):
        assert element in dom, element
    assert not FETCHES.search(html.read_text()), "the report fetches nothing"
    shot = chromium.screenshot(html, tmp_path / "report.png")
    assert chromium.distinct_colours(shot) > 20, "the screenshot is blank"
    # A second `run` of the unchanged plan starts exactly one new run (no new generation).
    code, out = run_cli("run", str(path), ns=cli_ns)
    assert code == 0, out
    second = started_run(out)
    assert second != run and second.startswith("cli-pass-run-")
    code, out = run_cli("abort", second, "--wait", ns=cli_ns)
    assert code == 0, out
    assert sorted(r["metadata"]["name"] for r in plan_runs(cli_ns, "cli-pass")) == sorted(
        [run, second]
    )


def test_each_verdict_has_its_exit_code(cli_ns: str, tmp_path: Path) -> None:
    failed = plan_file(
        tmp_path,
        "cli-failed",
        [
            {
                "name": "hold",
                "action": {"type": "Wait"},
                "durationSeconds": 3,
                "expect": {"maxP99LatencyMs": 0.001},
            }
        ],
    )
    junit = tmp_path / "failed.xml"
    code, out = run_cli("run", str(failed), "--wait", "--junit", str(junit), ns=cli_ns)
    assert code == 1, out
    assert "verdict: Failed (ExpectationFailed)" in out, out
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(junit))
    assert re.search(r'<failure message="measured [0-9.e+-]+ ms, max 0.001 ms"', junit.read_text())

    inconclusive = plan_file(
        tmp_path,
        "cli-inconclusive",
        [{"name": "hold", "action": {"type": "Wait"}, "durationSeconds": 3}],
        gates=[
            {
                "name": "nothing",
                "prometheus": {"query": "no_such_series_anywhere"},
                "intervalSeconds": 1,
                "successCondition": "result[0] > 0",
            }
        ],
    )
    code, out = run_cli("run", str(inconclusive), "--wait", ns=cli_ns)
    assert code == 2 and "verdict: Inconclusive (MetricsMissing)" in out, out

    # No verdict within --timeout: the run is aborted (its faults undone), exit 2.
    slow = plan_file(
        tmp_path,
        "cli-timeout",
        [
            {
                "name": "drain",
                "fault": {"type": "NodeDrain", "cluster": "standby"},
                "durationSeconds": 120,
            }
        ],
    )
    code, out = run_cli("run", str(slow), "--wait", "--timeout", "8s", ns=cli_ns)
    assert code == 2 and "timed out: aborting DrillRun" in out, out
    status = run_object(cli_ns, started_run(out))["status"]
    assert status["phase"] == "Aborted" and "currentStep" not in status, status
    assert all(f["state"] == "Undone" for f in status["faults"]), status["faults"]

    error = tmp_path / "cli-error.yaml"
    body = plan("cli-error", [{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 3}])
    body["spec"]["target"]["modelDeployment"] = "no-such-model"
    error.write_text(yaml.safe_dump(body))
    code, out = run_cli("run", str(error), "--wait", ns=cli_ns)
    assert code == 2 and "verdict: Error (TargetNotFound)" in out, out


def test_usage_and_connection_errors_exit_3(cli_ns: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    body = plan(
        "cli-bad",
        [{"name": "x", "fault": {"type": "PodKill", "mode": "fixed"}, "durationSeconds": 3}],
    )
    bad.write_text(yaml.safe_dump(body))
    code, out = run_cli("run", str(bad), ns=cli_ns)
    assert code == 3 and "spec.steps[0].fault.value" in out, out
    code, out = run_cli("run", str(tmp_path / "missing.yaml"), ns=cli_ns)
    assert code == 3, out
    code, out = run_cli("status", "no-such-run", ns=cli_ns)
    assert code == 3 and "no DrillRun" in out, out
    # A hub that does not answer: a kubeconfig pointing at a closed loopback port.
    config = yaml.safe_load(sandbox_paths().kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:9"
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldr.cli",
            "drill",
            "list",
            "--kubeconfig",
            str(dead),
            "--context",
            "hub",
            "-n",
            cli_ns,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 3 and "cannot be reached" in done.stderr, done.stderr
    assert time.monotonic() - started < 30


def test_ctrl_c_mid_drill_rolls_the_run_back_and_exits_1(cli_ns: str, tmp_path: Path) -> None:
    before = cluster_state(cli_ns)["standby/nodes"]
    path = plan_file(
        tmp_path,
        "cli-interrupt",
        [
            {
                "name": "drain",
                "fault": {"type": "NodeDrain", "cluster": "standby"},
                "durationSeconds": 120,
            }
        ],
    )
    proc = subprocess.Popen(
        cli("run", str(path), "--wait", ns=cli_ns),
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        applied = False
        while time.monotonic() < deadline and not applied:
            time.sleep(0.5)
            runs = plan_runs(cli_ns, "cli-interrupt")
            faults = [f for r in runs for f in (r.get("status") or {}).get("faults") or []]
            applied = any(f.get("state") == "Applied" for f in faults)
        assert applied, "the drain was applied"
        node = faults[0]["parameters"]["node"]
        assert kube.core("standby").read_node(node).spec.unschedulable, "cordoned while it holds"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "interrupted: aborting DrillRun" in out, out
    run = started_run(out)
    status = run_object(cli_ns, run)["status"]
    assert status["phase"] == "Aborted" and status["reason"] == "StoppedByHand", status
    assert [f["state"] for f in status["faults"]] == ["Undone"]
    assert all(f.get("undoneAt") for f in status["faults"])
    assert cluster_state(cli_ns)["standby/nodes"] == before, "the cordon was undone"


def test_a_dry_run_touches_nothing_and_says_what_it_would(cli_ns: str, tmp_path: Path) -> None:
    path = plan_file(
        tmp_path,
        "cli-dry",
        [
            {
                "name": "kill",
                "fault": {"type": "PodKill", "cluster": "active"},
                "durationSeconds": 5,
            },
            {
                "name": "drain",
                "fault": {"type": "NodeDrain", "cluster": "standby"},
                "durationSeconds": 5,
            },
            {
                "name": "outage",
                "fault": {"type": "ClusterOutage", "cluster": "primary"},
                "durationSeconds": 5,
            },
            {"name": "back", "action": {"type": "Failback"}, "durationSeconds": 5},
        ],
    )
    before = cluster_state(cli_ns)
    html = tmp_path / "dry.html"
    code, out = run_cli("run", str(path), "--dry-run", "--wait", "--report", str(html), ns=cli_ns)
    assert code == 0, out
    assert "verdict: Planned (DryRun)" in out and "nothing was touched" in out, out
    run = started_run(out)
    obj = run_object(cli_ns, run)
    status = obj["status"]
    assert obj["spec"]["dryRun"] is True
    assert not status.get("faults"), "no fault journaled"
    planned = {p["step"]: p for p in status["dryRun"]["steps"]}
    primary_pods = {p[0] for p in before["primary/pods"]}
    assert set(planned["kill"]["targets"]) <= primary_pods and planned["kill"]["targets"]
    assert planned["kill"]["cluster"] == "primary" and planned["kill"]["provider"] == "member-api"
    assert planned["drain"]["cluster"] == "standby" and planned["drain"]["targets"]
    assert planned["outage"]["provider"] == "webhook" and planned["outage"]["targets"] == [
        "primary"
    ]
    assert planned["back"]["provider"] == "operator"
    assert {f["check"]: f["ok"] for f in status["dryRun"]["preflight"]}["traffic-entry"] is True
    # The plan was validated, not stored; and the clusters are exactly as they were.
    with pytest.raises(client.ApiException) as absent:
        custom().get_namespaced_custom_object(GROUP, VERSION, cli_ns, "drillplans", "cli-dry")
    assert absent.value.status == 404
    assert cluster_state(cli_ns) == before
    assert "kill" in out and "member-api" in out and "webhook" in out
    assert 'id="dry-run"' in html.read_text()


def test_the_cli_runs_as_a_kubectl_plugin(cli_ns: str) -> None:
    """`kubectl modeldr ...` finds kubectl-modeldr on PATH and passes the arguments on."""
    from sandbox.config import tool

    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [
            tool("kubectl"),
            "modeldr",
            "drill",
            "list",
            "--kubeconfig",
            str(sandbox_paths().kubeconfig),
            "--context",
            "hub",
            "-n",
            cli_ns,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"DrillRuns in {cli_ns}" in done.stdout
