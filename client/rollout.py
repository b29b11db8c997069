"""`modeldr rollout status|promote|abort NAME`: a ModelDeployment's verified rollout of a
new model version (spec.rollout, docs/models.md) for people and CI.

Exit codes, like the drill commands': 0 Promoted, 1 RolledBack, 2 still Verifying or
Promoting (without --wait, or no end within --timeout), 3 usage or connection errors (an
unknown ModelDeployment, one without spec.rollout, a request that does not apply now).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console

from modeldr.client.hub import Hub
from modeldr.operator.rollout import IN_PROGRESS, PROMOTED, ROLLED_BACK, ROLLOUT_ANNOTATION

EXIT_PROMOTED, EXIT_ROLLED_BACK, EXIT_IN_PROGRESS, EXIT_USAGE = 0, 1, 2, 3
POLL_S = 2.0

rollout = typer.Typer(
    no_args_is_help=True,
    help="A ModelDeployment's verified rollout of a new model version (spec.rollout).",
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="the ModelDeployment")]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context of the hub")]
Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="namespace (default: the context's)")
]
Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"),
]
Wait = Annotated[bool, typer.Option("--wait", help="until the rollout ends")]
Timeout = Annotated[float, typer.Option("--timeout", help="seconds --wait waits at most")]


def exit_code(phase: str | None) -> int:
    if phase == PROMOTED:
        return EXIT_PROMOTED
    if phase == ROLLED_BACK:
        return EXIT_ROLLED_BACK
    return EXIT_IN_PROGRESS


def describe(status: dict[str, Any]) -> list[str]:
    """The rollout as lines people read: phase, versions, evidence."""

    def version(model: dict[str, Any] | None) -> str:
        if not model:
            return "-"
        digest = str(model.get("expectedDigest", ""))
        revision = model.get("revision")
        return f"{revision} ({digest[:19]}…)" if revision else f"{digest[:19]}…"

    lines = [f"rollout: {status.get('phase', '-')}"]
    if status.get("from"):
        lines.append(f"from: {version(status.get('from'))}")
    lines.append(f"to: {version(status.get('to'))}")
    evaluation = status.get("evaluation") or {}
    if evaluation:
        figures = ", ".join(
            f"{key} {evaluation[key]:.4f}"
            for key in ("agreement", "accuracy", "f1", "referenceF1")
            if isinstance(evaluation.get(key), int | float)
        )
        lines.append(f"evaluation on {evaluation.get('cluster', '-')}: {figures}")
    if status.get("drillRun"):
        lines.append(f"drill run: {status['drillRun']}")
    if status.get("message"):
        lines.append(f"message: {status['message']}")
    return lines


def current(hub: Hub, namespace: str, name: str) -> dict[str, Any]:
    md = hub.get_modeldeployment(namespace, name)
    if md is None:
        raise usage(f"no ModelDeployment {namespace}/{name}")
    if (md.get("spec") or {}).get("rollout") is None:  # `rollout: {}` is a rollout
        raise usage(f"ModelDeployment {namespace}/{name} has no spec.rollout")
    return dict((md.get("status") or {}).get("rollout") or {})


def usage(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False)
    return typer.Exit(EXIT_USAGE)


def report(hub: Hub, namespace: str, name: str, wait: bool, timeout: float) -> None:
    out = Console(highlight=False, soft_wrap=True)
    deadline = time.monotonic() + timeout
    status = current(hub, namespace, name)
    while wait and status.get("phase") in IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(POLL_S)
        status = current(hub, namespace, name)
    for line in describe(status):
        out.print(line, markup=False)
    raise typer.Exit(exit_code(status.get("phase")))


@rollout.command("status")
def status_cmd(
    name: Name,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    wait: Wait = False,
    timeout: Timeout = 900.0,
) -> None:
    """The rollout now (with --wait: once it ended); exits with its outcome's code."""
    hub = Hub(kubeconfig, context)
    report(hub, namespace or hub.context_namespace, name, wait, timeout)


@rollout.command("promote")
def promote_cmd(
    name: Name,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    wait: Wait = False,
    timeout: Timeout = 900.0,
) -> None:
    """Promote the version being verified now, without the rest of its verification."""
    request(name, "promote", ("Verifying",), context, namespace, kubeconfig, wait, timeout)


@rollout.command("abort")
def abort_cmd(
    name: Name,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    wait: Wait = False,
    timeout: Timeout = 900.0,
) -> None:
    """Roll the new version back now (while Verifying or Promoting)."""
    request(name, "abort", IN_PROGRESS, context, namespace, kubeconfig, wait, timeout)


def request(
    name: str,
    what: str,
    when: tuple[str, ...],
    context: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    wait: bool,
    timeout: float,
) -> None:
    hub = Hub(kubeconfig, context)
    ns = namespace or hub.context_namespace
    phase = current(hub, ns, name).get("phase")
    if phase not in when:
        needs = " or ".join(when)
        raise usage(f"{ns}/{name}: the rollout is {phase or 'not started'}; {what} needs {needs}")
    hub.annotate_modeldeployment(ns, name, ROLLOUT_ANNOTATION, what)
    Console(highlight=False).print(f"ModelDeployment {ns}/{name}: {what} requested", markup=False)
    report(hub, ns, name, wait, timeout)
