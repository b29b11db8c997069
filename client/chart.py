"""The report's charts as inline SVG (matplotlib's SVG backend, no display, no network):

- the timeline: probe success rate (%), beside it the share of requests answered correctly
  (as the baseline answered, for plans with model checks), and p99 latency (ms, right axis)
  per second over the run, fault windows shaded, step boundaries dotted, failovers and
  failbacks marked;
- the replicas: the target's ready replicas per cluster over the run (a step line per
  cluster, a read that failed a gap), fault windows shaded, step boundaries dotted;
- the trend: the plan's recent runs, RTO per run coloured by verdict, beside it the time to
  correct answers, and the worst error ratio, p99 and lowest F1 when any run measured them
  (a value a run did not measure is a gap, never 0).

Elements carry ids (`gid`), so a browser's DOM (and the tests) can find them: `success-rate`,
`correct-answers`, `p99-latency`, `fault-window-<i>`, `step-<name>`, `failover-<i>`,
`failback-<i>`, `trend`, `trend-runs`, `trend-time-to-correct`, `trend-error-ratio`,
`trend-p99`, `trend-f1`, `replicas-primary`, `replicas-standby`.
Text stays text (svg.fonttype none): small, searchable, selectable.
"""

from __future__ import annotations

import io
import re
from datetime import datetime

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from modeldr.client.reportdata import ReportData

# Verdict colours, the same in the HTML's CSS.
COLOURS = {
    "Passed": "#2e7d32",
    "Failed": "#c62828",
    "Aborted": "#6a1b9a",
    "Error": "#ef6c00",
    "Inconclusive": "#757575",
    "Planned": "#1565c0",
    "Pending": "#9e9e9e",
    "Running": "#0277bd",
}
SUCCESS = "#1565c0"
CORRECT = "#2e7d32"
LATENCY = "#ef6c00"
FAULT = "#e53935"


def _svg(fig: Figure) -> str:
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "modeldr"}):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    # Inline in HTML: no XML declaration or DOCTYPE, no RDF metadata block.
    text = re.sub(r"^.*?(<svg)", r"\1", text, count=1, flags=re.S)
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)


def timeline_svg(data: ReportData) -> str | None:
    """None when there is no timeline to draw (a dry run, a run refused before traffic)."""
    if not data.points:
        return None
    # x is seconds since the run started (its first point when it has no start time), so
    # the axis reads the same whatever the wall-clock time of the run.
    origin = data.status.started_at.timestamp() if data.status.started_at else data.points[0].t
    fig = Figure(figsize=(11, 4.2), dpi=100)
    ax = fig.add_subplot()
    # The order of the drawing calls is the order of the SVG's elements (and their z-order):
    # markers first, the series over them.
    _shade_fault_windows(ax, data, origin)
    _mark_steps(ax, data, origin)
    _mark_switches(ax, data, origin)
    # A point stands for its bucket: drawn at the bucket's middle.
    xs = [_since(p.t + p.width / 2, origin) for p in data.points]
    _plot_success_rate(ax, data, xs)
    correct = _plot_correct_answers(ax, data, xs)
    ax2 = _plot_p99_latency(ax, data, xs)
    ax.grid(True, alpha=0.25)
    _legend(ax, ax2, 2 if correct else 1)
    ax.set_title(f"{data.name}: {data.status.phase}", loc="left", fontsize=10)
    return _svg(fig)


def _since(t: float | datetime, origin: float) -> float:
    """t (Unix seconds or a datetime) as seconds after origin (Unix seconds)."""
    return (t.timestamp() if isinstance(t, datetime) else t) - origin


def _shade_fault_windows(
    ax: Axes, data: ReportData, origin: float, gid: str = "fault-window", label: bool = True
) -> None:
    for i, window in enumerate(data.fault_windows()):
        # A fault never undone is shaded to the run's end (or not at all while it runs).
        end = window.end or (data.status.finished_at or window.start)
        ax.axvspan(
            _since(window.start, origin),
            _since(end, origin),
            color=FAULT,
            alpha=0.15,
            lw=0,
            gid=f"{gid}-{i}",
        )
        if label:
            ax.text(
                _since(window.start, origin),
                103,
                f" {window.record.type}",
                fontsize=8,
                color=FAULT,
                va="bottom",
                ha="left",
            )


def _mark_steps(ax: Axes, data: ReportData, origin: float) -> None:
    for step, start, _ in data.step_windows():
        x = _since(start, origin)
        ax.axvline(x, color="#9e9e9e", ls=":", lw=1, gid=f"step-{step.name}")
        ax.text(x, -4, f" {step.name}", fontsize=7, color="#616161", va="top", rotation=0)


def _mark_switches(ax: Axes, data: ReportData, origin: float) -> None:
    # Numbered per kind (failover-0, failback-0, ...): the ids the module docstring names.
    counts = {"failover": 0, "failback": 0, "switch": 0}
    for switch in data.switches():
        i = counts[switch.kind]
        counts[switch.kind] += 1
        colour = "#6a1b9a" if switch.kind == "failover" else "#2e7d32"
        x = _since(switch.at, origin)
        ax.axvline(x, color=colour, lw=2, ls="--", gid=f"{switch.kind}-{i}")
        ax.text(
            x,
            50,
            f" {switch.kind} → {switch.to_cluster}",
            fontsize=8,
            color=colour,
            rotation=90,
            va="center",
        )


def _plot_success_rate(ax: Axes, data: ReportData, xs: list[float]) -> None:
    # A bucket in which no probe request was sent is a gap in the line (NaN), not 0 %.
    success = [
        float("nan") if p.success_ratio is None else 100 * p.success_ratio for p in data.points
    ]
    ax.plot(
        xs,
        success,
        color=SUCCESS,
        lw=1.5,
        label="probe success rate (%)",
        gid="success-rate",
    )
    # Below 0 and above 100: room for the step names and the fault labels.
    ax.set_ylim(-8, 110)
    ax.set_ylabel("success rate (%)", color=SUCCESS)
    ax.set_xlabel(f"seconds since the run started ({data.resolution_seconds:g} s per point)")


def _plot_correct_answers(ax: Axes, data: ReportData, xs: list[float]) -> bool:
    """Correct answers / sent per bucket, dashed over the success rate: where the two part,
    clients got answers that were wrong. False (nothing drawn) when nothing was judged."""
    correct = [
        float("nan") if p.correct_ratio is None else 100 * p.correct_ratio for p in data.points
    ]
    if all(p.correct_ratio is None for p in data.points):
        return False
    ax.plot(
        xs,
        correct,
        color=CORRECT,
        lw=1.2,
        ls="--",
        label="correct answers (%)",
        gid="correct-answers",
    )
    return True


def _plot_p99_latency(ax: Axes, data: ReportData, xs: list[float]) -> Axes:
    """The p99 latency on a right-hand axis of its own (ms, not %); returns that axis."""
    ax2 = ax.twinx()
    ax2.plot(
        xs,
        [float("nan") if p.p99_ms is None else p.p99_ms for p in data.points],
        color=LATENCY,
        lw=1.2,
        label="p99 latency (ms)",
        gid="p99-latency",
    )
    ax2.set_ylabel("p99 latency (ms)", color=LATENCY)
    ax2.set_ylim(bottom=0)
    return ax2


def _legend(ax: Axes, ax2: Axes, series: int) -> None:
    # The series only: the success rate (and correct answers) are ax's last `series` lines
    # (the step and switch markers before them are lines too), the latency ax2's only one.
    lines = ax.get_lines()[-series:] + ax2.get_lines()
    ax.legend(
        handles=lines,
        labels=[str(line.get_label()) for line in lines],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=len(lines),
        fontsize=8,
        frameon=False,
    )


def replicas_svg(data: ReportData) -> str | None:
    """Ready replicas per cluster over the run; None when none was read (a run from before
    the report kept them, a dry run)."""
    if not any(r.primary is not None or r.standby is not None for r in data.replicas):
        return None
    origin = data.status.started_at.timestamp() if data.status.started_at else data.replicas[0].t
    fig = Figure(figsize=(11, 2.4), dpi=100)
    ax = fig.add_subplot()
    _shade_fault_windows(ax, data, origin, gid="replicas-fault-window", label=False)
    for _step, start, _ in data.step_windows():
        ax.axvline(_since(start, origin), color="#9e9e9e", ls=":", lw=1)
    xs = [_since(r.t, origin) for r in data.replicas]
    most = 1
    # Equal counts overlap: the primary wide and pale under the standby's dashed line.
    styles = (("primary", SUCCESS, "-", 4.0, 0.45), ("standby", LATENCY, "--", 1.6, 1.0))
    for role, colour, style, width, alpha in styles:
        values = [getattr(r, role) for r in data.replicas]
        most = max([most, *(v for v in values if v is not None)])
        cluster = data.clusters.get(role, role)
        ax.step(
            xs,
            [_gap(v) for v in values],
            where="post",
            color=colour,
            ls=style,
            lw=width,
            alpha=alpha,
            label=f"{cluster} ({role})",
            gid=f"replicas-{role}",
        )
    ax.set_ylim(-0.2, most + 0.8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("ready replicas")
    ax.set_xlabel("seconds since the run started")
    ax.grid(True, alpha=0.25)
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncol=2)
    ax.set_title("ready replicas per cluster", loc="left", fontsize=10)
    return _svg(fig)


def trend_svg(data: ReportData) -> str | None:
    """The plan's recent runs, one point per run: RTO and time to correct answers (s), and,
    when any run measured them, the worst step's error ratio and p99 and the lowest F1 of
    the model checks. A value a run did not measure is a gap, never 0 (the best value)."""
    runs = [h for h in data.history if h.started_at is not None and not h.dry_run]
    if len(runs) < 2:
        return None
    xs = list(range(len(runs)))
    panels = [
        (key, label, values)
        for key, label, values in (
            ("error-ratio", "error ratio", [h.error_ratio for h in runs]),
            ("p99", "p99 (ms)", [h.p99_latency_ms for h in runs]),
            ("f1", "F1", [h.f1 for h in runs]),
        )
        if any(v is not None for v in values)
    ]
    fig = Figure(figsize=(11, 2.6 + 1.4 * len(panels)), dpi=100)
    axes = fig.subplots(1 + len(panels), 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    rtos = [_gap(h.rto_seconds) for h in runs]
    ax.plot(xs, rtos, color="#9e9e9e", lw=1, marker=".", label="RTO (s)", gid="trend")
    ax.scatter(
        xs, rtos, c=[COLOURS.get(h.phase, "#000") for h in runs], s=40, zorder=3, gid="trend-runs"
    )
    correct = [h.time_to_correct_seconds for h in runs]
    if any(v is not None for v in correct):
        ax.plot(
            xs,
            [_gap(v) for v in correct],
            color=CORRECT,
            lw=1,
            ls="--",
            marker=".",
            label="time to correct answers (s)",
            gid="trend-time-to-correct",
        )
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_ylabel("seconds")
    ax.set_title("recent runs: RTO, coloured by verdict", loc="left", fontsize=10)
    for panel, (key, label, values) in zip(axes[1:], panels, strict=True):
        panel.plot(
            xs, [_gap(v) for v in values], color=SUCCESS, lw=1, marker=".", gid=f"trend-{key}"
        )
        panel.set_ylabel(label, fontsize=8)
    for each in axes:
        each.grid(True, alpha=0.25)
    axes[-1].set_xticks(
        xs,
        [h.started_at.strftime("%m-%d %H:%M") if h.started_at else "" for h in runs],
        rotation=30,
        fontsize=7,
    )
    return _svg(fig)


def _gap(value: float | None) -> float:
    return float("nan") if value is None else value
