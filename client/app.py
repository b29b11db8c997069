"""`modeldr drill ...` (and `kubectl modeldr drill ...`): run a DrillPlan and follow it, see a
run's status, render its reports, abort it, list a plan's runs, read a run's events.

Exit codes (`EXIT_*`, DRILLS.md): 0 Passed (and a clean dry run, Planned), 1 Failed or
Aborted (and a run interrupted with Ctrl-C), 2 Inconclusive or Error (and a run that had no
verdict within --timeout), 3 usage or connection errors (a bad plan, an unknown run, a hub
that cannot be reached or refuses us).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillrun import spec_errors
from modeldr.api.phase import EXIT_CODES, Phase
from modeldr.client import junit, render
from modeldr.client.backup import backup
from modeldr.client.display import STYLE, live_view, snapshot
from modeldr.client.follow import Followed, Follower, Stop
from modeldr.client.hub import Hub, HubUnavailable, Rejected
from modeldr.client.reportdata import ReportData, from_run_object, parse_document
from modeldr.client.reportdata import history_entry as parse_history
from modeldr.client.rollout import rollout
from modeldr.drills.manifests import run_manifest
from modeldr.drills.report import REPORT_KEY, history_entry
from modeldr.kube.constants import DRILL_PLAN_LABEL, DRILLPLAN_KIND

EXIT_USAGE = 3
EXIT_NO_VERDICT = 2
EXIT_INTERRUPTED = 1
# After a run ends, how long to wait for the operator's report ConfigMap.
REPORT_WAIT_S = 30.0
PLAIN_WIDTH = 160

app = typer.Typer(
    name="modeldr",
    no_args_is_help=True,
    add_completion=False,
    help="modeldr: disaster-recovery drills of model serving.",
)
drill = typer.Typer(
    no_args_is_help=True,
    help="Run DrillPlans, follow them, and read their verdicts and reports.",
)
app.add_typer(drill, name="drill")
app.add_typer(rollout, name="rollout")
app.add_typer(backup, name="backup")

Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context of the hub")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="namespace (default: the plan's, else the context's)"),
]
Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"),
]
JunitOut = Annotated[Path | None, typer.Option("--junit", help="write the JUnit XML here")]
HtmlOut = Annotated[Path | None, typer.Option("--report", "--html", help="write the HTML here")]
MarkdownOut = Annotated[Path | None, typer.Option("--markdown", help="write the Markdown here")]


def console() -> Console:
    # soft_wrap: a path or a message is one line however long (CI logs, copy and paste);
    # without a terminal, tables get room (a CI log is not 80 columns wide).
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out = Console(highlight=False, soft_wrap=True, width=max(out.width, PLAIN_WIDTH))
    return out


def fail_usage(message: str) -> typer.Exit:
    Console(stderr=True).print(f"error: {message}", markup=False)
    return typer.Exit(EXIT_USAGE)


def exit_code(phase: Phase) -> int:
    return EXIT_CODES.get(phase, EXIT_NO_VERDICT)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `1h30m` -> seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m or 1h30m")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(n) * scale[u] for n, u in parts)


def hub_for(kubeconfig: str | None, context: str | None) -> Hub:
    return Hub(kubeconfig, context)


def load_plan(path: Path) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise fail_usage(f"{path}: {exc}") from None
    plans = [d for d in docs if isinstance(d, dict) and d.get("kind") == DRILLPLAN_KIND]
    if len(plans) != 1:
        raise fail_usage(f"{path}: expected one DrillPlan, found {len(plans)}")
    body = plans[0]
    try:
        DrillPlanSpec.parse(body.get("spec") or {})
    except ValidationError as exc:
        raise fail_usage(
            f"{path}: the plan is invalid:\n  " + "\n  ".join(spec_errors(exc))
        ) from None
    return dict(body)


# ------------------------------------------------------------------------------- run


@drill.command("run")
def run_cmd(
    plan_file: Annotated[
        Path, typer.Argument(help="the DrillPlan YAML", exists=True, dir_okay=False)
    ],
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the run to its verdict")] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            help="with --wait: abort the run if it has no verdict by then (90s, "
            "15m, 1h); default: the run's own deadline"
        ),
    ] = None,
    junit_out: JunitOut = None,
    html_out: HtmlOut = None,
    markdown_out: MarkdownOut = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="resolve every step and run the preflight, touching "
            "nothing (the plan is validated, not stored)",
        ),
    ] = False,
    plain: Annotated[bool, typer.Option(help="plain lines even on a terminal")] = False,
) -> None:
    """Apply the plan (server-side apply) and start a run of it; --wait follows it."""
    timeout_s = parse_duration(timeout) if timeout else None
    if (junit_out or html_out or markdown_out) and not wait:
        raise fail_usage("--junit, --report and --markdown need --wait")
    body = load_plan(plan_file)
    hub = hub_for(kubeconfig, context)
    ns = plan_namespace(body, namespace, hub)
    out = console()
    run = start_dry_run(hub, ns, body) if dry_run else start_run(hub, ns, body)
    run_id = run["metadata"]["name"]
    out.print(f"DrillRun {ns}/{run_id} started" + (" (dry run)" if dry_run else ""))
    if not wait:
        out.print(f"follow it: modeldr drill status {run_id} -n {ns}")
        return
    target = str(body["spec"]["target"]["modelDeployment"])
    follower = Follower(hub, ns, out, live=out.is_terminal and not plain)
    with Stop().installed() as stop:
        followed = follower.follow(run_id, target, stop, timeout_s)
    phase = Phase(((followed.run.get("status") or {}).get("phase")) or "Pending")
    # The operator writes the report ConfigMap once the run ended: worth waiting for only then.
    data = report_data(hub, ns, run_id, wait_s=REPORT_WAIT_S if phase.is_final else 0.0)
    write_reports(out, data, junit_out, html_out, markdown_out)
    print_verdict(out, data)
    if dry_run:
        print_dry_run(out, data)
    raise followed_exit(out, followed, phase, run_id)


def plan_namespace(body: dict[str, Any], namespace: str | None, hub: Hub) -> str:
    """The run's namespace: -n, else the plan file's, else the context's; written into the
    plan's metadata (what gets applied). A file and a -n that disagree are a usage error,
    not a guess."""
    meta = body.setdefault("metadata", {})
    ns_in_file = meta.get("namespace")
    ns: str = namespace or ns_in_file or hub.context_namespace
    if ns_in_file and namespace and ns_in_file != namespace:
        raise fail_usage(f"the plan says namespace {ns_in_file}, -n says {namespace}")
    meta["namespace"] = ns
    return ns


def followed_exit(out: Console, followed: Followed, phase: Phase, run_id: str) -> typer.Exit:
    """The exit of `run --wait` (DRILLS.md's codes), saying what the verdict alone does not:
    faults still in force, no verdict in time."""
    if not followed.settled:
        out.print(
            Text("faults NOT all undone yet: see modeldr drill status " + run_id, style="bold red")
        )
    # Interrupted (Ctrl-C, SIGTERM): 1, as for an Aborted run, whatever phase it reached.
    if followed.interrupted:
        return typer.Exit(EXIT_INTERRUPTED)
    if followed.timed_out or not phase.is_final:
        out.print(f"no verdict within the timeout: run {run_id} was aborted")
        return typer.Exit(EXIT_NO_VERDICT)
    return typer.Exit(exit_code(phase))


def start_run(hub: Hub, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """Apply the plan; follow the run its new generation starts, or start one (DRILLS.md:
    never two: the generation's run has one name, whoever creates it first)."""
    name = str(body["metadata"]["name"])
    before = hub.get_plan(ns, name)
    applied = hub.apply_plan(ns, body, dry_run=False)
    generation = int(applied["metadata"]["generation"])
    uid = str(applied["metadata"]["uid"])
    new_generation = before is None or int(before["metadata"]["generation"]) != generation
    manifest = run_manifest(name, uid, generation, applied["spec"])
    if not new_generation:
        # The spec did not change: the plan starts no run, so this is the one run.
        manifest["metadata"]["name"] = f"{name}-run-{int(time.time())}"
    created = hub.create_run(ns, manifest)
    if created is not None:
        return created
    existing = hub.get_run(ns, manifest["metadata"]["name"])  # the operator's, same generation
    if existing is None:
        raise HubUnavailable(f"DrillRun {manifest['metadata']['name']} vanished")
    return existing


def start_dry_run(hub: Hub, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """A dry run of the plan as the file has it: validated by the apiserver (a server-side
    dry-run apply: nothing stored), run once with spec.dryRun, touching nothing."""
    name = str(body["metadata"]["name"])
    checked = hub.apply_plan(ns, body, dry_run=True)
    existing = hub.get_plan(ns, name)
    manifest = run_manifest(name, "", 1, checked["spec"])
    manifest["metadata"]["name"] = f"{name}-dryrun-{int(time.time())}"
    del manifest["spec"]["planGeneration"]
    manifest["spec"]["dryRun"] = True
    if existing is not None:
        manifest["metadata"]["ownerReferences"][0]["uid"] = existing["metadata"]["uid"]
    else:
        del manifest["metadata"]["ownerReferences"]
    created = hub.create_run(ns, manifest)
    if created is None:
        raise HubUnavailable(f"DrillRun {manifest['metadata']['name']} exists already")
    return created


# ---------------------------------------------------------------------------- reports


def report_data(hub: Hub, ns: str, run_id: str, wait_s: float = 0.0) -> ReportData:
    """The run's report ConfigMap (waiting up to wait_s for the operator to write it), else
    what the DrillRun says."""
    give_up = time.monotonic() + wait_s
    while True:
        run = hub.get_run(ns, run_id)
        if run is None:
            raise fail_usage(f"no DrillRun {ns}/{run_id}")
        cm_name = (run.get("status") or {}).get("reportConfigMap")
        if cm_name:
            data = hub.get_config_map(ns, str(cm_name))
            if data and REPORT_KEY in data:
                return parse_document(json.loads(data[REPORT_KEY]))
        if time.monotonic() >= give_up:
            plan = ((run.get("spec") or {}).get("planRef") or {}).get("name")
            runs = hub.list_runs(ns, str(plan)) if plan else []
            return from_run_object(run, [history_entry(r) for r in runs])
        time.sleep(1.0)


def write_reports(
    out: Console,
    data: ReportData,
    junit_out: Path | None,
    html_out: Path | None,
    markdown_out: Path | None,
) -> None:
    for path, make, what in (
        (junit_out, junit.render, "JUnit XML"),
        (html_out, render.html, "HTML report"),
        (markdown_out, render.markdown, "Markdown report"),
    ):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make(data), encoding="utf-8")
        out.print(f"{what}: {path.resolve()}")
    if not data.from_config_map and (junit_out or html_out or markdown_out):
        out.print("(no report ConfigMap for this run: rendered from its status, no timeline)")


def print_verdict(out: Console, data: ReportData) -> None:
    s = data.status
    rto = "-" if s.rto_seconds is None else f"{s.rto_seconds:.2f} s"
    out.print(
        Text.assemble(
            ("verdict: ", "bold"),
            (s.phase.value, STYLE.get(s.phase.value, "")),
            f" ({s.reason})" if s.reason else "",
            f"  RTO {rto}  active {s.active_cluster or '-'}",
        )
    )
    if s.message:
        out.print(s.message, markup=False)
    checks = data.checks()
    bad = [c for c in checks if c.outcome in ("failed", "error")]
    for c in bad:
        out.print(f"  {c.outcome}: {c.group}/{c.name}: {c.message}", markup=False)


def print_dry_run(out: Console, data: ReportData) -> None:
    dry = data.status.dry_run
    if dry is None:
        return
    table = Table(
        title=f"dry run (active cluster now: {dry.active_cluster or 'unknown'})",
        title_justify="left",
    )
    for column in ("step", "type", "cluster", "who acts", "would touch", "finding"):
        table.add_column(column, overflow="fold")
    for p in dry.steps:
        cluster = f"{p.cluster} ({p.role})" if p.cluster and p.role else p.cluster or "-"
        table.add_row(
            p.step,
            p.type,
            cluster,
            p.provider or "-",
            ", ".join(p.targets) or "-",
            Text(
                (f"{p.reason}: " if p.reason else "") + (p.message or ""),
                style="bold red" if p.reason else "",
            ),
        )
    out.print(table)
    pre = Table(title="preflight", title_justify="left")
    for column in ("check", "ok", "finding"):
        pre.add_column(column, overflow="fold")
    for f in dry.preflight:
        pre.add_row(
            f.check,
            Text("yes" if f.ok else "no", style="green" if f.ok else "bold red"),
            (f"{f.reason}: " if f.reason else "") + (f.message or ""),
        )
    out.print(pre)


@drill.command("report")
def report_cmd(
    run_id: Annotated[str, typer.Argument(metavar="NAME", help="the DrillRun")],
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    junit_out: JunitOut = None,
    html_out: HtmlOut = None,
    markdown_out: MarkdownOut = None,
) -> None:
    """Render a run's kept report (JUnit XML, HTML, Markdown); no file: Markdown to stdout."""
    hub = hub_for(kubeconfig, context)
    ns = namespace or hub.context_namespace
    data = report_data(hub, ns, run_id)
    out = console()
    if not (junit_out or html_out or markdown_out):
        out.print(render.markdown(data), markup=False, soft_wrap=True)
        return
    write_reports(out, data, junit_out, html_out, markdown_out)


# ----------------------------------------------------------------- status, list, ...


def latest_run(hub: Hub, ns: str, plan: str) -> str:
    runs = hub.list_runs(ns, plan)
    if not runs:
        raise fail_usage(f"plan {ns}/{plan} has no runs")
    return str(runs[-1]["metadata"]["name"])


@drill.command("status")
def status_cmd(
    run_id: Annotated[str | None, typer.Argument(metavar="[NAME]", help="the DrillRun")] = None,
    plan: Annotated[str | None, typer.Option(help="the plan's latest run")] = None,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """A run's state now; exits with its verdict's code once it ended (0 while it runs)."""
    hub = hub_for(kubeconfig, context)
    ns = namespace or hub.context_namespace
    if run_id is None:
        if plan is None:
            raise fail_usage("give a DrillRun NAME or --plan PLAN")
        run_id = latest_run(hub, ns, plan)
    run = hub.get_run(ns, run_id)
    if run is None:
        raise fail_usage(f"no DrillRun {ns}/{run_id}")
    target = ((run.get("spec") or {}).get("plan") or {}).get("target", {}).get("modelDeployment")
    md = hub.get_modeldeployment(ns, str(target)) if target else None
    snap = snapshot(run, md, datetime.now(UTC))
    out = console()
    out.print(live_view(snap))
    if snap.final and snap.message:
        out.print(f"verdict: {snap.phase} ({snap.reason}): {snap.message}", markup=False)
    raise typer.Exit(exit_code(Phase(snap.phase)) if snap.final else 0)


@drill.command("abort")
def abort_cmd(
    run_id: Annotated[str, typer.Argument(metavar="NAME", help="the DrillRun")],
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    wait: Annotated[bool, typer.Option("--wait", help="until every fault is undone")] = False,
) -> None:
    """Stop a run: the operator undoes every fault and ends it Aborted."""
    hub = hub_for(kubeconfig, context)
    ns = namespace or hub.context_namespace
    if hub.get_run(ns, run_id) is None:
        raise fail_usage(f"no DrillRun {ns}/{run_id}")
    hub.abort_run(ns, run_id)
    out = console()
    out.print(f"DrillRun {ns}/{run_id}: abort requested")
    if wait:
        follower = Follower(hub, ns, out, live=False)
        with Stop().installed() as stop:
            followed = follower.follow(run_id, None, stop, None)
        if not followed.settled:
            out.print(Text("faults NOT all undone yet", style="bold red"))
            raise typer.Exit(EXIT_NO_VERDICT)


@drill.command("list")
def list_cmd(
    plan: Annotated[str | None, typer.Argument(metavar="[PLAN]", help="only this plan's")] = None,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Past and current runs: verdict, reason, RTO, duration."""
    hub = hub_for(kubeconfig, context)
    ns = namespace or hub.context_namespace
    runs = hub.list_runs(ns, plan)
    table = Table(
        title=f"DrillRuns in {ns}" + (f" of plan {plan}" if plan else ""), title_justify="left"
    )
    for column in ("NAME", "PLAN", "VERDICT", "REASON", "RTO", "DURATION", "STARTED"):
        table.add_column(column)
    for raw in runs:
        h = parse_history(history_entry(raw))
        table.add_row(
            h.name + (" (dry run)" if h.dry_run else ""),
            str((raw["metadata"].get("labels") or {}).get(DRILL_PLAN_LABEL, "-")),
            Text(h.phase, style=STYLE.get(h.phase, "")),
            h.reason or "",
            "-" if h.rto_seconds is None else f"{h.rto_seconds:.2f} s",
            "-" if h.duration_seconds is None else f"{h.duration_seconds:.0f} s",
            render.when(h.started_at),
        )
    console().print(table)


@drill.command("logs")
def logs_cmd(
    run_id: Annotated[str, typer.Argument(metavar="NAME", help="the DrillRun")],
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """A run's Kubernetes Events (steps, faults injected and undone, verdict), oldest first."""
    hub = hub_for(kubeconfig, context)
    ns = namespace or hub.context_namespace
    if hub.get_run(ns, run_id) is None:
        raise fail_usage(f"no DrillRun {ns}/{run_id}")
    out = console()
    for event in hub.run_events(ns, run_id):
        at = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
        when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "-"
        count = f" (x{event.count})" if (event.count or 1) > 1 else ""
        out.print(
            f"{when} {event.type:<7} {event.reason}: {event.message}{count}",
            markup=False,
            soft_wrap=True,
        )


# ------------------------------------------------------------------------ entry points


def main(argv: list[str]) -> int:
    """Run the typer app on argv with DRILLS.md's exit codes: usage errors exit 3 (not
    click's 2, which is Inconclusive/Error here), and so do hub and kubeconfig problems."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="modeldr", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            Console(stderr=True).print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except (HubUnavailable, Rejected) as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    return code if isinstance(code, int) else 0
