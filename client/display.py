"""What `modeldr drill run --wait` shows while a run goes on, from the DrillRun's status and
the ModelDeployment's: the current step and the time left in it, the active cluster, the
probe's success rate and p99, each gate's last value, the faults in force.

Two forms of the same `Snapshot`: `live_view` (a rich renderable, redrawn in place on a
terminal) and `changes` (plain timestamped lines, one per thing that changed, for CI logs).
Pure: the follow loop (client.follow) feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import DrillRunStatus, FaultRecord, GateStatus, ProbeLiveStatus
from modeldr.api.phase import Phase

STYLE = {
    "Passed": "bold green",
    "Failed": "bold red",
    "Aborted": "bold magenta",
    "Error": "bold dark_orange",
    "Inconclusive": "bold yellow",
    "Planned": "bold blue",
    "Running": "bold cyan",
    "Pending": "dim",
}
# The probe line of the plain form is repeated at most this often when nothing else moves.
PROBE_LINE_EVERY_S = 10.0


@dataclass(frozen=True)
class GateLine:
    name: str
    phase: str
    last: str  # the last measurement: its phase and value


@dataclass(frozen=True)
class Snapshot:
    run: str
    now: datetime
    phase: str
    reason: str | None = None
    message: str | None = None
    step: str | None = None
    step_index: int | None = None
    steps_total: int = 0
    step_started_at: datetime | None = None
    step_seconds: float | None = None
    active_cluster: str | None = None
    probe: ProbeLiveStatus | None = None
    gates: tuple[GateLine, ...] = ()
    faults_in_force: tuple[FaultRecord, ...] = ()
    ended_steps: tuple[tuple[str, str, str], ...] = ()  # name, phase, message
    faults_undone: tuple[str, ...] = ()
    abort_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def step_left_seconds(self) -> float | None:
        if self.step_started_at is None or self.step_seconds is None:
            return None
        return max(0.0, self.step_seconds - (self.now - self.step_started_at).total_seconds())

    @property
    def final(self) -> bool:
        return Phase(self.phase).is_final


def snapshot(run: dict[str, Any], md: dict[str, Any] | None, now: datetime) -> Snapshot:
    status = DrillRunStatus.parse(run.get("status"))
    spec = run.get("spec") or {}
    plan = DrillPlanSpec.parse(spec["plan"]) if spec.get("plan") else None
    step_index = None
    step_seconds = None
    step_started = None
    if status.current_step and plan is not None:
        names = plan.step_names
        if status.current_step in names:
            step_index = names.index(status.current_step)
            step_seconds = float(plan.steps[step_index].duration_seconds)
    for step in status.steps:
        if step.name == status.current_step:
            step_started = step.started_at
    gates = tuple(GateLine(g.name, g.phase.value, last_measurement(g)) for g in status.gates)
    if status.phase.is_final:
        step_index, step_seconds, step_started = None, None, None
    md_active = ((md or {}).get("status") or {}).get("activeCluster")
    return Snapshot(
        run=str(run["metadata"]["name"]),
        now=now,
        phase=status.phase.value,
        reason=status.reason,
        message=status.message,
        step=None if status.phase.is_final else status.current_step,
        step_index=step_index,
        steps_total=len(plan.steps) if plan else len(status.steps),
        step_started_at=step_started,
        step_seconds=step_seconds,
        active_cluster=str(md_active) if md_active else status.active_cluster,
        probe=status.probe,
        gates=gates,
        faults_in_force=tuple(f for f in status.faults if f.state in ("Recorded", "Applied")),
        ended_steps=tuple(
            (s.name, s.phase.value, s.message or "") for s in status.steps if s.phase.is_final
        ),
        faults_undone=tuple(f.id for f in status.faults if f.state in ("Undone", "Abandoned")),
        abort_requested=bool(spec.get("abort")),
    )


def last_measurement(gate: GateStatus) -> str:
    if not gate.measurements:
        return "no measurement yet"
    m = gate.measurements[-1]
    detail = m.value if m.value is not None else (m.message or "")
    return f"{m.phase} {detail}".strip()


def probe_text(probe: ProbeLiveStatus | None) -> str:
    if probe is None or probe.sent == 0:
        return "no probe traffic yet"
    ratio = "-" if probe.success_ratio is None else f"{100 * probe.success_ratio:.1f}%"
    p99 = "-" if probe.p99_latency_ms is None else f"{probe.p99_latency_ms:.0f} ms"
    window = f"{probe.window_seconds:g} s" if probe.window_seconds else "recent"
    # probe.cluster is the cluster of the last success, which may be older than the window.
    answered = ""
    if probe.cluster:
        answered = (
            f", answered by {probe.cluster}"
            if probe.succeeded
            else f", none answered (last answer from {probe.cluster})"
        )
    return f"{ratio} ok ({probe.succeeded}/{probe.sent} in the last {window}), p99 {p99}{answered}"


def fault_text(f: FaultRecord) -> str:
    return f"{f.type} in {f.cluster} on {', '.join(f.targets) or '-'} ({f.state}, {f.id})"


def step_text(s: Snapshot) -> str:
    if s.step is None:
        return "-"
    where = f" ({s.step_index + 1}/{s.steps_total})" if s.step_index is not None else ""
    left = s.step_left_seconds
    return f"{s.step}{where}" + (f", {left:.0f} s left" if left is not None else "")


# ------------------------------------------------------------------------- plain lines


def stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changes(prev: Snapshot | None, cur: Snapshot, last_probe_at: datetime | None) -> list[str]:
    """The lines to print for what changed since `prev` (everything when it is None), each
    prefixed with the time; the probe line when it changed visibly or every
    PROBE_LINE_EVERY_S."""
    lines: list[str] = []
    if prev is None or prev.phase != cur.phase:
        lines.append(f"run {cur.run}: {cur.phase}" + (f" ({cur.reason})" if cur.reason else ""))
    if cur.abort_requested and (prev is None or not prev.abort_requested):
        lines.append("abort requested: the operator undoes every fault and ends the run")
    if cur.step is not None and (prev is None or prev.step != cur.step):
        duration = f" for {cur.step_seconds:.0f} s" if cur.step_seconds is not None else ""
        lines.append(f"step {step_text(cur).split(',')[0]} started{duration}")
    ended_before = {name for name, _, _ in (prev.ended_steps if prev else ())}
    for name, phase, message in cur.ended_steps:
        if name not in ended_before:
            lines.append(f"step {name}: {phase}" + (f" - {message}" if message else ""))
    if cur.active_cluster and (prev is None or prev.active_cluster != cur.active_cluster):
        lines.append(f"active cluster: {cur.active_cluster}")
    before = {f.id for f in prev.faults_in_force} if prev else set()
    for f in cur.faults_in_force:
        if f.id not in before:
            lines.append(f"fault in force: {fault_text(f)}")
    undone_before = set(prev.faults_undone) if prev else set()
    for fid in cur.faults_undone:
        if fid not in undone_before:
            lines.append(f"fault {fid} undone")
    old_gates = {g.name: g for g in prev.gates} if prev else {}
    for g in cur.gates:
        if old_gates.get(g.name) != g:
            lines.append(f"gate {g.name}: {g.phase}, last {g.last}")
    probe_due = last_probe_at is None or (
        (cur.now - last_probe_at).total_seconds() >= PROBE_LINE_EVERY_S
    )
    if cur.probe is not None and cur.probe.sent and not cur.final:
        moved = prev is None or _probe_moved(prev.probe, cur.probe)
        if moved or probe_due:
            lines.append(f"probe: {probe_text(cur.probe)}")
    if cur.final and (prev is None or not prev.final) and cur.message:
        lines.append(f"verdict: {cur.phase} ({cur.reason}): {cur.message}")
    return [f"{stamp(cur.now)} {line}" for line in lines]


def _probe_moved(a: ProbeLiveStatus | None, b: ProbeLiveStatus) -> bool:
    """A visible change: the success rate by a percent point, the serving cluster."""
    if a is None or a.success_ratio is None or b.success_ratio is None:
        return a is None or a.success_ratio != b.success_ratio
    return abs(a.success_ratio - b.success_ratio) >= 0.01 or a.cluster != b.cluster


# --------------------------------------------------------------------------- live view


def live_view(s: Snapshot) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", Text(s.run))
    head.add_row(
        "phase",
        Text(s.phase + (f" ({s.reason})" if s.reason else ""), style=STYLE.get(s.phase, "")),
    )
    head.add_row("step", Text(step_text(s)))
    if s.step_seconds and s.step_left_seconds is not None:
        done = s.step_seconds - s.step_left_seconds
        head.add_row("", ProgressBar(total=s.step_seconds, completed=done, width=40))
    head.add_row("active cluster", Text(s.active_cluster or "-", style="bold"))
    head.add_row("probe", Text(probe_text(s.probe)))
    if s.abort_requested and not s.final:
        head.add_row("abort", Text("requested: undoing faults...", style="bold magenta"))
    parts: list[RenderableType] = [head]
    if s.gates:
        gates = Table(title="gates", title_justify="left", expand=False)
        for column in ("gate", "phase", "last measurement"):
            gates.add_column(column)
        for g in s.gates:
            gates.add_row(g.name, Text(g.phase, style=STYLE.get(g.phase, "")), g.last)
        parts.append(gates)
    faults = Table(title="faults in force", title_justify="left")
    for column in ("type", "cluster", "targets", "since"):
        faults.add_column(column)
    for f in s.faults_in_force:
        since = f.applied_at or f.recorded_at
        faults.add_row(f.type, f.cluster, ", ".join(f.targets), stamp(since) if since else "-")
    if not s.faults_in_force:
        faults.add_row("none", "", "", "")
    parts.append(faults)
    if s.ended_steps:
        steps = Table(title="steps ended", title_justify="left")
        for column in ("step", "phase", "message"):
            steps.add_column(column)
        for name, phase, message in s.ended_steps:
            steps.add_row(name, Text(phase, style=STYLE.get(phase, "")), message)
        parts.append(steps)
    return Panel(Group(*parts), title=f"modeldr drill {s.run}", subtitle=stamp(s.now))
