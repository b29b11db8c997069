"""The demo's drill (step 8 of `make demo`): `kubectl apply` the example golden set and
DrillPlan (examples/sandbox/) as a user would, follow the DrillRun the operator runs, and
print what it measured and its verdict. A plan applied unchanged starts no run (one run per
spec generation), so a second `make demo` creates a DrillRun by hand (spec.planRef only: the
operator copies the plan into it), as `kubectl create` would.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import yaml
from kubernetes import client

from modeldr.operator.constants import DRILLPLANS, DRILLRUNS, GROUP, VERSION
from sandbox import kube
from sandbox.config import REPO_ROOT, sandbox_paths, tool

PLAN_FILE = REPO_ROOT / "examples/sandbox/drillplan.yaml"
GOLDEN_FILE = REPO_ROOT / "examples/sandbox/golden-set.yaml"
FINAL = ("Passed", "Failed", "Aborted", "Error", "Inconclusive")
# The example plan's durations (about 2 minutes) plus its restores, with room to spare.
TIMEOUT_S = 420.0


class DrillTimeout(RuntimeError):
    """The run had no verdict in time."""


class DrillFailed(RuntimeError):
    """The run's verdict is not Passed."""


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub"))


def kubectl_apply(namespace: str, path: str) -> str:
    command = [tool("kubectl"), "--kubeconfig", str(sandbox_paths().kubeconfig), "--context",
               "hub", "-n", namespace, "apply", "-f", path]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def start_run(namespace: str) -> str:
    """Apply the plan; the run its generation starts, or a new one by hand."""
    print(kubectl_apply(namespace, str(GOLDEN_FILE)))
    print(kubectl_apply(namespace, str(PLAN_FILE)))
    name = yaml.safe_load(PLAN_FILE.read_text())["metadata"]["name"]
    plan = custom().get_namespaced_custom_object(GROUP, VERSION, namespace, DRILLPLANS, name)
    generation = plan["metadata"]["generation"]
    observed = (plan.get("status") or {}).get("observedGeneration")
    automatic = f"{name}-{generation}"
    if observed != generation or _run_is_new(namespace, automatic):
        return automatic
    run = f"{name}-demo-{int(time.time())}"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DrillRun",
            "metadata": {"name": run}, "spec": {"planRef": {"name": name}}}  # fmt: skip
    custom().create_namespaced_custom_object(GROUP, VERSION, namespace, DRILLRUNS, body)
    print(f"the plan is unchanged (no new generation): created DrillRun {run} by hand")
    return run


def _run_is_new(namespace: str, name: str) -> bool:
    """The generation's run exists and has not ended (this apply started it)."""
    try:
        run = custom().get_namespaced_custom_object(GROUP, VERSION, namespace, DRILLRUNS, name)
    except client.ApiException:
        return False
    return (run.get("status") or {}).get("phase") not in FINAL


def follow(namespace: str, run: str, md: str) -> dict[str, Any]:
    """Print the run's progress until its verdict; the final status."""
    deadline = time.monotonic() + TIMEOUT_S
    last_line, reported, started = "", set(), time.monotonic()
    while time.monotonic() < deadline:
        status = _status(namespace, run)
        active = _active(namespace, md)
        phase, step = status.get("phase", "Pending"), status.get("currentStep") or "-"
        line = f"{phase:<8} step {step:<18} active {active}"
        if line != last_line:
            print(f"  {time.monotonic() - started:6.1f} s  {line}", flush=True)
            last_line = line
        for step in status.get("steps") or []:
            if step.get("finishedAt") and step["name"] not in reported:
                reported.add(step["name"])
                print(
                    f"           step {step['name']}: {step.get('phase')} - {step.get('message')}"
                )
        if status.get("phase") in FINAL:
            return status
        time.sleep(1.0)
    raise DrillTimeout(f"DrillRun {run} had no verdict within {TIMEOUT_S:.0f} s")


def _status(namespace: str, run: str) -> dict[str, Any]:
    try:
        obj = custom().get_namespaced_custom_object(GROUP, VERSION, namespace, DRILLRUNS, run)
    except client.ApiException:
        return {}
    return dict(obj.get("status") or {})


def _active(namespace: str, md: str) -> str:
    try:
        obj = custom().get_namespaced_custom_object(
            GROUP, VERSION, namespace, "modeldeployments", md
        )
    except client.ApiException:
        return "?"
    return str((obj.get("status") or {}).get("activeCluster") or "?")


def summary(run: str, status: dict[str, Any]) -> list[str]:
    """The verdict and measurements as Markdown lines (printed and in the demo report)."""
    out = [f"DrillRun `{run}`: **{status.get('phase')}** ({status.get('reason')})", "",
           str(status.get("message") or ""), "",
           "| step | phase | RTO s | error ratio | p99 ms | active |",
           "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for step in status.get("steps") or []:
        out.append(
            f"| {step['name']} | {step.get('phase')} | {_num(step.get('rtoSeconds'))} | "
            f"{_num(step.get('errorRatio'), 3)} | {_num(step.get('p99LatencyMs'), 1)} | "
            f"{step.get('activeCluster') or '-'} |"
        )
    out += ["", "| gate / model check | phase | figures |", "| --- | --- | --- |"]
    for gate in status.get("gates") or []:
        out.append(f"| gate {gate['name']} | {gate.get('phase')} | {gate.get('message')} |")
    for check in status.get("modelChecks") or []:
        out.append(
            f"| model check {check['name']} | {check.get('phase')} | {check.get('message')} |"
        )
    out += [
        "",
        "| fault | cluster | targets | applied | undone |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fault in status.get("faults") or []:
        out.append(
            f"| {fault['type']} | {fault['cluster']} | {', '.join(fault.get('targets') or [])} | "
            f"{fault.get('appliedAt', '-')} | {fault.get('undoneAt', 'NOT UNDONE')} |"
        )
    return out


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"
