"""The demo's model loop (step 9 of `make demo`, docs/models.md): the evaluation the operator
made after the demo's failover and failback, then two verified rollouts with the examples a
user applies, followed with the CLI as a user or a CI job does:

    kubectl --context hub -n modeldr-demo patch md tiny-bert --type merge \\
        --patch-file examples/sandbox/rollout-bad.yaml
    modeldr rollout status tiny-bert --context hub -n modeldr-demo --wait   # 1: RolledBack
    kubectl ... --patch-file examples/sandbox/rollout-good.yaml
    modeldr rollout status tiny-bert --context hub -n modeldr-demo --wait   # 0: Promoted

and at the end the example's version again (a rollout too), so that a second `make demo`
starts from the example as it stands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from sandbox.config import REPO_ROOT, sandbox_paths
from sandbox.demo_drill import hub_kubectl

EXAMPLES = REPO_ROOT / "examples/sandbox"
MODELDEPLOYMENT = EXAMPLES / "modeldeployment.yaml"
# Each rollout: a standby restart, an evaluation, (promoted) a primary restart.
TIMEOUT_S = 300.0
EXPECTED = (("rollout-bad.yaml", 1, "RolledBack"), ("rollout-good.yaml", 0, "Promoted"))


class LoopFailed(RuntimeError):
    """A rollout did not end as its example says it should."""


@dataclass
class LoopResult:
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)


def rollout_status(namespace: str, name: str) -> tuple[int, str]:
    """`modeldr rollout status NAME --wait`: its exit code and output."""
    command = [
        sys.executable,
        "-m",
        "modeldr.cli",
        "rollout",
        "status",
        name,
        "--kubeconfig",
        str(sandbox_paths().kubeconfig),
        "--context",
        "hub",
        "-n",
        namespace,
        "--wait",
        "--timeout",
        str(TIMEOUT_S),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S + 30, cwd=REPO_ROOT
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def patch_model(namespace: str, name: str, patch: dict[str, Any]) -> None:
    hub_kubectl(namespace, "patch", "md", name, "--type", "merge", "-p", json.dumps(patch))


def run_loop(namespace: str, name: str) -> LoopResult:
    result = LoopResult()
    md = json.loads(hub_kubectl(namespace, "get", "md", name, "-o", "json"))
    evaluation = ((md.get("status") or {}).get("lastFailover") or {}).get("evaluation") or {}
    if evaluation:
        result.say(
            f"after the last switch, to {evaluation.get('cluster')}: {evaluation.get('phase')}"
            f" ({evaluation.get('message', '')})"
        )
    for example, code, phase in EXPECTED:
        path = EXAMPLES / example
        result.say(
            f"$ kubectl --context hub -n {namespace} patch md {name} --type merge "
            f"--patch-file {path.relative_to(REPO_ROOT)}"
        )
        patch = yaml.safe_load(path.read_text())
        patch_model(namespace, name, patch)
        result.say(f"$ modeldr rollout status {name} --context hub -n {namespace} --wait")
        exit_code, output = rollout_status(namespace, name)
        for line in output.splitlines():
            result.say(f"  {line}")
        if exit_code != code:
            raise LoopFailed(
                f"{example}: modeldr rollout status exited {exit_code}, not {code} ({phase})"
            )
    original = yaml.safe_load(MODELDEPLOYMENT.read_text())["spec"]["model"]
    result.say(f"back to the example's version ({original.get('revision')}): a rollout too")
    patch_model(namespace, name, {"spec": {"model": original}})
    exit_code, output = rollout_status(namespace, name)
    if exit_code != 0:
        raise LoopFailed(f"back to the example's version: exit {exit_code}: {output[-300:]}")
    result.say("  promoted")
    return result
