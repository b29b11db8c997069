"""A run's report as HTML (self-contained: inline CSS and SVG, nothing fetched) and as
Markdown (for pull requests and CI summaries), from Jinja2 templates (client/templates)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from modeldr.client import chart
from modeldr.client.reportdata import ReportData

TEMPLATES = Path(__file__).resolve().parent / "templates"
MARKS = {"passed": "✅", "failed": "❌", "error": "⚠️", "skipped": "⏭️"}


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_ts(value: float) -> str:
    return when(datetime.fromtimestamp(value, UTC))


def cell(text: Any) -> str:
    """Text safe in a Markdown table cell."""
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.globals.update(num=num, when=when, when_ts=when_ts, cell=cell, mark=MARKS.get)
    return env


def _context(data: ReportData) -> dict[str, Any]:
    return {
        "data": data,
        "s": data.status,
        "checks": data.checks(),
        "switches": data.switches(),
        "clusters": data.clusters,
        "history": data.history,
        "colours": chart.COLOURS,
    }


def html(data: ReportData) -> str:
    template = _environment(autoescape=True).get_template("report.html.j2")
    return template.render(
        **_context(data),
        timeline_svg=chart.timeline_svg(data),
        replicas_svg=chart.replicas_svg(data),
        trend_svg=chart.trend_svg(data),
    )


def markdown(data: ReportData) -> str:
    return _environment(autoescape=False).get_template("report.md.j2").render(**_context(data))
