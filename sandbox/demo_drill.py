"""The demo's drill (step 8 of `make demo`): `kubectl apply` the example golden set as a user
would, then run the example DrillPlan with the CLI, as a user or a CI job does:

    modeldr drill run examples/sandbox/drillplan.yaml --context hub -n modeldr-demo --wait \\
        --junit .sandbox/drill-report/junit.xml --report .sandbox/drill-report/report.html \\
        --markdown .sandbox/drill-report/report.md

The CLI applies the plan (server-side apply), follows the run its new generation starts, or,
for a plan applied unchanged (a second `make demo`), starts the one run itself; it shows the
run live (on a terminal) or as plain lines, and exits with the verdict's code (0 Passed).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import REPO_ROOT, sandbox_paths, tool

PLAN_FILE = REPO_ROOT / "examples/sandbox/drillplan.yaml"
GOLDEN_FILE = REPO_ROOT / "examples/sandbox/golden-set.yaml"
# The example plan's durations (about 2 minutes) plus its restores, with room to spare.
TIMEOUT_S = 480.0
VERDICTS = {0: "Passed", 1: "Failed or Aborted", 2: "Inconclusive or Error", 3: "usage error"}


class DrillTimeout(RuntimeError):
    """The run had no verdict in time."""


class DrillFailed(RuntimeError):
    """The run's verdict is not Passed."""


@dataclass(frozen=True)
class DrillResult:
    exit_code: int
    junit: Path
    html: Path
    markdown: Path

    @property
    def verdict(self) -> str:
        return VERDICTS.get(self.exit_code, f"exit {self.exit_code}")


def hub_kubectl(namespace: str, *args: str) -> str:
    """`kubectl --context hub -n NAMESPACE ARGS...` on the sandbox; its output."""
    command = [
        tool("kubectl"),
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
        "-n",
        namespace,
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def kubectl_apply(namespace: str, path: str) -> str:
    return hub_kubectl(namespace, "apply", "-f", path)


def run_drill(namespace: str) -> DrillResult:
    """The golden set applied, then `modeldr drill run --wait` with its reports; the CLI's
    output goes straight to the demo's (a live view on a terminal)."""
    print(kubectl_apply(namespace, str(GOLDEN_FILE)), flush=True)
    out = sandbox_paths().root / "drill-report"
    result = DrillResult(0, out / "junit.xml", out / "report.html", out / "report.md")
    for path in (result.junit, result.html, result.markdown):
        path.unlink(missing_ok=True)  # never show an older run's report as this one's
    plan = PLAN_FILE.relative_to(REPO_ROOT)
    reports = f"--junit {result.junit} --report {result.html} --markdown {result.markdown}"
    print(f"$ modeldr drill run {plan} --context hub -n {namespace} --wait {reports}", flush=True)
    command = [
        sys.executable,
        "-m",
        "modeldr.cli",
        "drill",
        "run",
        str(PLAN_FILE),
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
        "-n",
        namespace,
        "--wait",
        "--junit",
        str(result.junit),
        "--report",
        str(result.html),
        "--markdown",
        str(result.markdown),
    ]
    try:
        done = subprocess.run(command, timeout=TIMEOUT_S, cwd=REPO_ROOT, check=False)
    except subprocess.TimeoutExpired:
        raise DrillTimeout(f"modeldr drill run had no verdict within {TIMEOUT_S:.0f} s") from None
    return DrillResult(done.returncode, result.junit, result.html, result.markdown)
