"""`modeldr drill`'s pure parts: the report data and its checks, the JUnit XML (validated
against the Jenkins/Ant JUnit schema), the Markdown and HTML reports, the live and plain
displays, the exit codes and the argument handling."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml
from rich.console import Console

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import (
    AbortConditionStatus,
    DrillRunStatus,
    DryRunStatus,
    FaultRecord,
    GateStatus,
    Measurement,
    ModelCheckStatus,
    PlannedStep,
    PreflightFinding,
    ProbeLiveStatus,
    SteadyStateStatus,
    StepStatus,
    WindowStatus,
)
from modeldr.api.phase import Phase
from modeldr.client import app, display, junit, render
from modeldr.client.reportdata import OUTCOME_OF_PHASE, Check, ReportData, parse_document
from modeldr.drills import report
from modeldr.drills.runstate import RunRef
from modeldr.drills.timeline import Point, ReplicaPoint
from modeldr.drills.verdict import Part, PartKind, parts_of

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests/fixtures/junit-10.xsd"))
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def plan_with_a_recovery_wait() -> DrillPlanSpec:
    """The example plan with a Wait step before its failback (a plan may hold one: the
    reports below show four steps, one of them an action without a fault)."""
    doc = yaml.safe_load((ROOT / "examples/sandbox/drillplan.yaml").read_text())["spec"]
    failback = [s["name"] for s in doc["steps"]].index("failback")
    doc["steps"].insert(
        failback,
        {
            "name": "primary-recovers",
            "action": {"type": "Wait"},
            "durationSeconds": 15,
            "expect": {"activeCluster": "standby", "maxErrorRatio": 0.0},
        },
    )
    return DrillPlanSpec.parse(doc)


PLAN = plan_with_a_recovery_wait()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(name: str, start: float, end: float, phase: Phase = Phase.PASSED, **kw: Any) -> StepStatus:
    return StepStatus(name=name, phase=phase, started_at=at(start), finished_at=at(end), **kw)


def failed_run() -> DrillRunStatus:
    """The example plan's run where the outage took 12 s (max 10 s), its gate had no data
    once, and the failback's fault was never undone."""
    return DrillRunStatus(
        phase=Phase.FAILED,
        reason="ExpectationFailed",
        message="step primary-outage: RTO 12 s > max 10 s",
        started_at=T0,
        finished_at=at(120),
        rto_seconds=12.0,
        active_cluster="primary",
        seed=7,
        steady_state=SteadyStateStatus(
            before=WindowStatus(
                phase=Phase.PASSED,
                started_at=T0,
                finished_at=at(5),
                error_ratio=0.0,
                message="error ratio 0",
            ),
            after=WindowStatus(phase=Phase.PASSED, started_at=at(110), finished_at=at(115)),
        ),
        steps=[
            step(
                "kill-a-pod",
                5,
                20,
                rto_seconds=0.3,
                error_ratio=0.01,
                p99_latency_ms=40.0,
                requests=300,
                failed_requests=3,
                active_cluster="primary",
            ),
            step(
                "primary-outage",
                20,
                60,
                Phase.FAILED,
                reason="ExpectationFailed",
                rto_seconds=12.0,
                time_to_correct_seconds=12.5,
                wrong_answer_ratio=0.0,
                error_ratio=0.3,
                requests=800,
                failed_requests=240,
                active_cluster="standby",
                message="RTO 12 s > max 10 s (measured: ...)",
            ),
            step("primary-recovers", 60, 75, error_ratio=0.0, active_cluster="standby"),
            step(
                "failback",
                75,
                105,
                Phase.FAILED,
                reason="ExpectationFailed",
                error_ratio=0.0,
                active_cluster="standby",
                message="activeCluster primary not reached: standby served at the end",
            ),
        ],
        gates=[
            GateStatus(
                name="standby-answers",
                phase=Phase.INCONCLUSIVE,
                reason="MetricsMissing",
                message="an empty result",
                successful=3,
                inconclusive=1,
                measurements=[
                    Measurement(phase="Successful", measured_at=at(30), value="[3.2]"),
                    Measurement(phase="Inconclusive", measured_at=at(35), message="empty result"),
                ],
            )
        ],
        model_checks=[
            ModelCheckStatus(
                name="baseline",
                cluster="primary",
                phase=Phase.PASSED,
                agreement=1.0,
                accuracy=0.98,
                f1=0.97,
                examples=48,
            )
        ],
        faults=[
            FaultRecord(
                id="f-1",
                step="kill-a-pod",
                type="PodKill",
                cluster="primary",
                targets=["tiny-bert-abc"],
                state="Undone",
                provider="member-api",
                applied_at=at(6),
                undone_at=at(20),
            ),
            FaultRecord(
                id="f-2",
                step="primary-outage",
                type="ClusterOutage",
                cluster="primary",
                targets=["primary"],
                state="Abandoned",
                provider="webhook",
                applied_at=at(21),
            ),
        ],
    )


def timeline() -> list[Point]:
    points = []
    for i in range(120):
        down = 22 <= i < 34
        cluster = None if down else ("standby" if 34 <= i < 78 else "primary")
        points.append(
            Point(T0.timestamp() + i, 1.0, 20, 0 if down else 20, None if down else 15.0, cluster)
        )
    return points


HISTORY = [
    {
        "name": f"primary-outage-{k}",
        "phase": phase,
        "rtoSeconds": rto,
        "startedAt": (T0 - timedelta(days=4 - k)).isoformat(),
        "finishedAt": (T0 - timedelta(days=4 - k, seconds=-120)).isoformat(),
    }
    for k, (phase, rto) in enumerate([("Passed", 3.1), ("Passed", 2.9), ("Failed", 12.0)])
]


def data(
    status: DrillRunStatus | None = None,
    points: list[Point] | None = None,
    history: list[dict[str, Any]] | None = None,
    replicas: list[ReplicaPoint] | None = None,
) -> ReportData:
    doc = report.document(
        RunRef("modeldr-demo", "primary-outage-3", "uid"),
        "primary-outage",
        PLAN,
        status or failed_run(),
        {"primary": "primary", "standby": "standby"},
        timeline() if points is None else points,
        HISTORY if history is None else history,
        replicas or [],
    )
    # Through the ConfigMap's JSON, as the CLI reads it.
    return parse_document(json.loads(report.encode(doc)))


def dry_run() -> DrillRunStatus:
    return DrillRunStatus(
        phase=Phase.PLANNED,
        reason="DryRun",
        message="dry run: 2 steps resolved",
        started_at=T0,
        finished_at=at(1),
        active_cluster="primary",
        dry_run=DryRunStatus(
            active_cluster="primary",
            steps=[
                PlannedStep(
                    step="kill-a-pod",
                    kind="fault",
                    type="PodKill",
                    cluster="primary",
                    role="primary",
                    provider="member-api",
                    targets=["tiny-bert-abc"],
                ),
                PlannedStep(
                    step="primary-outage",
                    kind="fault",
                    type="ClusterOutage",
                    reason="NoProvider",
                    message="member cluster primary has none",
                ),
            ],
            preflight=[PreflightFinding(check="traffic-entry", ok=True, message="2 endpoints")],
        ),
    )


# ---------------------------------------------------------------------- report data


def test_switches_are_where_the_answering_cluster_changed() -> None:
    switches = data().switches()
    assert [(s.kind, s.from_cluster, s.to_cluster, s.at - T0.timestamp()) for s in switches] == [
        ("failover", "primary", "standby", 34.0),
        ("failback", "standby", "primary", 78.0),
    ]


def test_each_expectation_is_judged_with_its_measured_value() -> None:
    checks = {(c.group, c.name): c for c in data().checks()}
    rto = checks[("steps.primary-outage", "maxRTOSeconds")]
    assert (rto.outcome, rto.message) == ("failed", "measured 12 s, max 10 s")
    ratio = checks[("steps.kill-a-pod", "maxErrorRatio")]
    assert ratio.outcome == "passed" and "3 of 300 requests failed" in ratio.message
    assert checks[("steps.failback", "activeCluster")].outcome == "failed"
    assert checks[("steps.primary-outage", "activeCluster")].outcome == "passed"
    correct = checks[("steps.primary-outage", "maxTimeToCorrectSeconds")]
    assert (correct.outcome, correct.message) == ("failed", "measured 12.5 s, max 10 s")
    gate = checks[("gates", "standby-answers")]
    assert gate.outcome == "error" and "Inconclusive empty result" in gate.message
    assert checks[("modelChecks", "baseline")].message.startswith("primary: agreement 1.000")


def test_a_limit_with_nothing_measured_never_passes() -> None:
    status = failed_run()
    status.steps[2] = step("primary-recovers", 60, 75)  # no error ratio, no p99
    checks = {(c.group, c.name): c for c in data(status).checks()}
    assert checks[("steps.primary-recovers", "maxErrorRatio")].outcome == "error"


SEVERITY = ("passed", "skipped", "error", "failed")
GROUPS = {
    PartKind.STEADY_STATE: "steadyState",
    PartKind.GATE: "gates",
    PartKind.ABORT_CONDITION: "abortConditions",
    PartKind.MODEL_CHECK: "modelChecks",
}


def checks_of(part: Part, checks: list[Check]) -> list[Check]:
    if part.kind is PartKind.STEP:
        return [c for c in checks if c.group == f"steps.{part.name}"]
    return [c for c in checks if (c.group, c.name) == (GROUPS[part.kind], part.name)]


def observed_failure() -> DrillRunStatus:
    """A step that met its expectations but failed on its fault's own observation (a
    corrupted replica turned Ready), and an abort condition that could not be evaluated."""
    status = failed_run()
    status.steps[0].phase, status.steps[0].reason = Phase.FAILED, "CorruptedReplicaReady"
    status.steps[0].message = "corrupted replica x turned Ready"
    status.abort_conditions = [
        AbortConditionStatus(
            name="everything-failing",
            phase=Phase.INCONCLUSIVE,
            reason="MetricsMissing",
            message="never evaluated",
        )
    ]
    return status


@pytest.mark.parametrize("status", [failed_run(), observed_failure()], ids=["failed", "observed"])
def test_the_checks_show_each_part_with_the_outcome_the_verdict_counted(
    status: DrillRunStatus,
) -> None:
    read = data(status)
    checks = read.checks()
    parts = [p for p in parts_of(read.status) if p.kind is not PartKind.RUN]
    # 2 steady states, 4 steps, 1 gate, 1 model check, the abort conditions.
    assert len(parts) == 8 + len(status.abort_conditions)
    for part in parts:
        shown = [c.outcome for c in checks_of(part, checks)]
        assert shown, part
        assert max(shown, key=SEVERITY.index) == OUTCOME_OF_PHASE[part.phase], (part, shown)


def test_a_step_failed_on_more_than_its_expectations_is_a_failed_check() -> None:
    checks = [c for c in data(observed_failure()).checks() if c.group == "steps.kill-a-pod"]
    assert [(c.name, c.outcome) for c in checks] == [
        ("activeCluster", "passed"),
        ("maxErrorRatio", "passed"),
        ("step", "failed"),
    ]
    assert checks[-1].message == "CorruptedReplicaReady: corrupted replica x turned Ready"


# ------------------------------------------------------------------------------ JUnit


def test_junit_validates_and_carries_the_measured_values() -> None:
    xml = junit.render(data())
    SCHEMA.validate(xml)
    assert 'name="rtoSeconds" value="12.000"' in xml
    assert 'name="activeCluster" value="primary"' in xml
    assert 'name="phase" value="Failed"' in xml
    assert re.search(r'<failure message="measured 12 s, max 10 s" type="DrillFailure">', xml)
    assert 'tests="14" errors="1" failures="4" skipped="0" time="120.0"' in xml
    assert "ClusterOutage f-2 in primary on primary: Abandoned" in xml and "NOT UNDONE" in xml


@pytest.mark.parametrize(
    "status",
    [
        dry_run(),
        DrillRunStatus(phase=Phase.ERROR, reason="TargetNotFound", message="no such model"),
    ],
    ids=["dry-run", "refused"],
)
def test_junit_of_runs_without_steps_validates(status: DrillRunStatus) -> None:
    xml = junit.render(data(status, points=[], history=[]))
    SCHEMA.validate(xml)
    if status.phase is Phase.PLANNED:
        assert 'classname="dryRun"' in xml and 'type="NoProvider"' in xml
    else:  # refused before any step: the verdict is an error in CI, not a skipped suite
        assert re.search(r'<error message="Error \(TargetNotFound\): no such model"', xml)


# --------------------------------------------------------------------- Markdown, HTML


def test_markdown_has_the_verdict_tables_and_loud_faults() -> None:
    md = render.markdown(data())
    assert md.startswith("## Drill `modeldr-demo/primary-outage-3`: **Failed** (ExpectationFailed)")
    assert "| `primary-outage` | 12.00 s | primary | 120 s | 9 / 14 | 2 |" in md
    assert "| steps.primary-outage / maxRTOSeconds | ❌ failed | measured 12 s, max 10 s |" in md
    assert "| ClusterOutage | primary | primary | 2026-12-01 10:00:21 UTC | **NOT UNDONE** |" in md
    assert "- 2026-12-01 10:00:34 UTC: failover primary → standby" in md
    assert "| primary-outage-2 | Failed | 12.00 | 120 | 2026-11-29 10:00:00 UTC |" in md
    # Every table row has as many cells as its header.
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, re.M):
        widths = {row.count(" | ") for row in block.strip().split("\n")}
        assert len(widths) == 1, block


def test_markdown_of_a_dry_run_says_what_it_would_do() -> None:
    md = render.markdown(data(dry_run(), points=[], history=[]))
    assert "**Planned** (DryRun)" in md and "nothing was touched" in md
    assert "| kill-a-pod | PodKill | primary | member-api | tiny-bert-abc |" in md
    assert "NoProvider: member cluster primary has none" in md


FETCHES = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?https?:|@import|<link""")


def test_html_is_self_contained_with_the_chart_and_its_markers() -> None:
    page = render.html(data())
    assert not FETCHES.search(page)
    assert "<script" not in page
    gids = ["success-rate", "p99-latency", "fault-window-0", "fault-window-1", "failover-0"]
    gids += ["failback-0", "step-kill-a-pod", "step-failback", "trend", "trend-runs"]
    for gid in gids:
        assert f'id="{gid}"' in page, gid
    assert 'id="rto">12.00 s<' in page
    assert '<span class="not-undone">NOT UNDONE</span>' in page
    assert "agreement" in page and "0.970" in page  # the model check's F1
    assert page.count("<svg") == 2  # the timeline and the trend (no replicas were read)
    assert 'id="replicas-chart"' not in page


def scaled_replicas() -> list[ReplicaPoint]:
    """Every 2 s: the primary at 2 until it fails at 22 s (unknown then), the standby at 1
    taking 2 at 24 s, the primary back at 2 from 34 s."""
    out = []
    for i in range(0, 120, 2):
        primary = None if 22 <= i < 34 else 2
        out.append(ReplicaPoint(T0.timestamp() + i, primary, 2 if 24 <= i < 90 else 1))
    return out


def test_the_report_draws_ready_replicas_per_cluster_with_gaps_where_unknown() -> None:
    replicas = scaled_replicas()
    got = data(replicas=replicas)
    assert got.replicas == replicas  # through the ConfigMap's JSON
    page = render.html(got)
    assert page.count("<svg") == 3 and 'id="replicas-chart"' in page
    for gid in ("replicas-primary", "replicas-standby", "replicas-fault-window-0"):
        assert f'id="{gid}"' in page, gid
    primary_line = page.split('id="replicas-primary"', 1)[1].split("</g>", 1)[0]
    # The unknown stretch is a gap (two segments), never a drop to 0.
    path = re.search(r' d="([^"]+)"', primary_line)
    assert path is not None and path.group(1).count("M") == 2
    # A report written before replicas were kept has none: no chart, no error.
    doc = json.loads(
        report.encode(
            report.document(
                RunRef("n", "r", "u"), "p", PLAN, failed_run(), {}, timeline(), [], replicas
            )
        )
    )
    del doc["replicas"]
    assert parse_document(doc).replicas == []


def test_html_draws_correct_answers_beside_answered_requests_when_judged() -> None:
    """A standby answering wrongly: the dashed correct-answers line parts from the success
    rate; a timeline without judged answers (six columns, an older report) has no such line."""
    judged = [replace(p, correct=p.ok // 2 if p.cluster == "standby" else p.ok) for p in timeline()]
    page = render.html(data(points=judged))
    assert 'id="correct-answers"' in page and "correct answers (%)" in page
    assert 'id="correct-answers"' not in render.html(data())
    assert Point.from_row([1.0, 1.0, 2, 2, 5.0, "p"]).correct is None
    assert Point.from_row(judged[40].to_row()).correct_ratio == 0.5


def test_the_trend_draws_a_missing_value_as_a_gap_and_the_new_figures_when_measured() -> None:
    """A run without an RTO (refused before traffic) is a gap in the line, not 0 s (the best
    value); time to correct answers, error ratio, p99 and F1 get their series once a run
    measured them, with gaps where one did not."""
    from modeldr.client.chart import trend_svg

    history = [dict(h) for h in HISTORY]
    history[1]["rtoSeconds"] = None
    history[0] |= {"timeToCorrectSeconds": 4.0, "errorRatio": 0.1, "p99LatencyMs": 40, "f1": 0.96}
    history[2] |= {"timeToCorrectSeconds": 14.0, "errorRatio": 0.3, "f1": 0.7}
    svg = trend_svg(data(history=history)) or ""
    for gid in ("trend", "trend-time-to-correct", "trend-error-ratio", "trend-p99", "trend-f1"):
        assert f'id="{gid}"' in svg, gid
    rto_line = svg.split('id="trend"', 1)[1].split("</g>", 1)[0]
    # Two separate segments (a move, then a move again after the gap), never a line through 0.
    path = re.search(r' d="([^"]+)"', rto_line)
    assert path is not None and path.group(1).count("M") == 2, rto_line[:300]
    plain = trend_svg(data()) or ""
    assert 'id="trend"' in plain and 'id="trend-f1"' not in plain


def test_html_without_a_timeline_says_why() -> None:
    page = render.html(data(dry_run(), points=[], history=[]))
    assert 'id="no-timeline"' in page and "a dry run sends no traffic" in page
    assert 'id="dry-run"' in page and 'id="preflight"' in page and "<svg" not in page


def test_html_escapes_what_the_cluster_wrote() -> None:
    status = failed_run()
    status.message = "<script>alert(1)</script>"
    page = render.html(data(status))
    assert "<script>alert" not in page and "&lt;script&gt;" in page


# ------------------------------------------------------------------------------ display


def run_object(status: DrillRunStatus, abort: bool = False) -> dict[str, Any]:
    spec = PLAN.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        "metadata": {"name": "primary-outage-3"},
        "spec": {"planRef": {"name": "primary-outage"}, "plan": spec, "abort": abort},
        "status": status.dump(),
    }


def running(seconds: float) -> DrillRunStatus:
    status = failed_run()
    status.phase, status.reason, status.message, status.finished_at = (
        Phase.RUNNING,
        None,
        None,
        None,
    )
    status.current_step = "primary-outage"
    status.steps[1] = step("primary-outage", 20, 60, Phase.RUNNING)
    status.steps[1].finished_at = None
    status.steps[2:] = [StepStatus(name="primary-recovers"), StepStatus(name="failback")]
    status.faults[1].state = "Applied"
    status.probe = ProbeLiveStatus(
        at=at(seconds),
        window_seconds=10,
        sent=200,
        succeeded=150,
        success_ratio=0.75,
        p99_latency_ms=812.0,
        cluster="standby",
    )
    return status


MD = {"status": {"activeCluster": "standby"}}


def test_live_view_shows_step_time_left_cluster_probe_gates_and_faults() -> None:
    snap = display.snapshot(run_object(running(30)), MD, at(30))
    assert snap.step_left_seconds == 30.0 and snap.step_index == 1
    console = Console(record=True, width=140)
    console.print(display.live_view(snap))
    text = console.export_text()
    assert "primary-outage (2/4), 30 s left" in text
    assert "active cluster  standby" in text
    assert "75.0% ok (150/200 in the last 10 s), p99 812 ms, answered by standby" in text
    assert "standby-answers" in text and "Inconclusive empty result" in text
    assert "ClusterOutage" in text and "2026-12-01T10:00:21Z" in text
    assert "kill-a-pod" in text  # steps ended


def test_probe_text_does_not_say_a_cluster_answers_when_none_did() -> None:
    probe = ProbeLiveStatus(
        sent=120, succeeded=0, success_ratio=0.0, window_seconds=10, cluster="primary"
    )
    assert display.probe_text(probe) == (
        "0.0% ok (0/120 in the last 10 s), p99 -, none answered (last answer from primary)"
    )


def test_plain_lines_say_each_change_once_with_a_timestamp() -> None:
    first = display.snapshot(run_object(running(30)), MD, at(30))
    lines = display.changes(None, first, None)
    assert lines[0] == "2026-12-01T10:00:30Z run primary-outage-3: Running"
    assert "2026-12-01T10:00:30Z step primary-outage (2/4) started for 40 s" in lines
    assert "2026-12-01T10:00:30Z active cluster: standby" in lines
    assert any("fault in force: ClusterOutage in primary on primary" in line for line in lines)
    # One second later nothing moved: no line (the probe repeats only every 10 s).
    same = display.snapshot(run_object(running(31)), MD, at(31))
    assert display.changes(first, same, at(30)) == []
    later = display.snapshot(run_object(running(41)), MD, at(41))
    assert display.changes(same, later, at(30)) == [
        "2026-12-01T10:00:41Z probe: 75.0% ok (150/200 in the last 10 s), p99 812 ms, "
        "answered by standby"
    ]
    # The verdict, the fault undone, the abort.
    ended = failed_run()
    ended.faults[1].state, ended.faults[1].undone_at = "Undone", at(62)
    end = display.snapshot(run_object(ended, abort=True), MD, at(120))
    assert end.step is None and end.step_left_seconds is None  # a finished run has no step
    lines = display.changes(later, end, at(41))
    assert "2026-12-01T10:02:00Z run primary-outage-3: Failed (ExpectationFailed)" in lines
    assert "2026-12-01T10:02:00Z fault f-2 undone" in lines
    assert any("abort requested" in line for line in lines)
    assert lines[-1].endswith(
        "verdict: Failed (ExpectationFailed): step primary-outage: RTO 12 s > max 10 s"
    )


# -------------------------------------------------------------------- exit codes, args


def test_exit_codes_follow_drills_md() -> None:
    assert {p: app.exit_code(p) for p in Phase} == {
        Phase.PASSED: 0,
        Phase.PLANNED: 0,
        Phase.FAILED: 1,
        Phase.ABORTED: 1,
        Phase.ERROR: 2,
        Phase.INCONCLUSIVE: 2,
        Phase.PENDING: 2,
        Phase.RUNNING: 2,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["drill", "nosuch"],
        ["drill", "run"],
        ["drill", "run", "/no/such/plan.yaml"],
        ["drill", "run", "examples/sandbox/drillplan.yaml", "--wait", "--timeout", "soon"],
        ["drill", "run", "examples/sandbox/drillplan.yaml", "--junit", "x.xml"],
        ["drill", "list", "--kubeconfig", "/no/such/kubeconfig"],
    ],
    ids=["command", "no-plan", "missing-file", "duration", "junit-without-wait", "kubeconfig"],
)
def test_usage_errors_exit_3(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert app.main(argv) == 3


def test_an_invalid_plan_is_refused_before_the_hub_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = yaml.safe_load((ROOT / "examples/sandbox/drillplan.yaml").read_text())
    body["spec"]["steps"][0]["fault"]["mode"] = "fixed"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(body))
    assert app.main(["drill", "run", str(path), "--kubeconfig", "/no/such"]) == 3
    assert "spec.steps[0].fault.value" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2m30s", 150)]
)
def test_durations(text: str, seconds: float) -> None:
    assert app.parse_duration(text) == seconds


def test_fault_windows_start_at_the_journal_entry_and_stay_open_when_not_undone() -> None:
    status = failed_run()
    status.faults[0].recorded_at = at(5.5)  # journaled just before the inject call
    windows = data(status).fault_windows()
    assert [(w.record.id, w.start, w.end) for w in windows] == [
        ("f-1", at(5.5), at(20)),  # not appliedAt (6): the fault can bite from 5.5 on
        ("f-2", at(21), None),  # no journal time kept: appliedAt; never undone: open
    ]
