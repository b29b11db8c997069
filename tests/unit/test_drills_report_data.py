"""The operator's side of run reports: the per-second probe timeline (drills.timeline) and
the bounded report document (drills.report)."""

from __future__ import annotations

import json

from modeldr.api.drillstatus import DrillRunStatus
from modeldr.api.phase import Phase
from modeldr.drills import report
from modeldr.drills.probe_stats import ProbeSample
from modeldr.drills.runstate import RunRef
from modeldr.drills.timeline import Point, Timeline, coarsen

OFFSET = 1_700_000_000.0  # the probe clock's 0 in Unix time


def sample(
    at: float, ok: bool = True, latency: float = 0.01, cluster: str = "primary"
) -> ProbeSample:
    return ProbeSample(at, latency, ok, cluster if ok else None, None if ok else "refused")


def test_seconds_are_filed_by_send_time_and_closed_after_the_timeout() -> None:
    timeline = Timeline(wall_offset=OFFSET, open_seconds=2.0)
    for i in range(10):  # 10 per second for 3 s; the 2nd second fails half its requests
        timeline.add(sample(0.1 * i, latency=0.001 * (i + 1)))
        timeline.add(sample(1 + 0.1 * i, ok=i % 2 == 0))
        timeline.add(sample(2 + 0.1 * i, cluster="standby", latency=0.2))
    points = timeline.points()
    assert [(p.t - OFFSET, p.sent, p.ok, p.cluster) for p in points] == [
        (0.0, 10, 10, "primary"),
        (1.0, 10, 5, "primary"),
        (2.0, 10, 10, "standby"),
    ]
    assert points[0].p99_ms == 10.0  # nearest rank of 1..10 ms
    assert points[1].success_ratio == 0.5


def test_correct_answers_are_counted_once_judged_and_missing_before() -> None:
    """Before the baseline nothing is judged (None, drawn as a gap); after it, a failed
    request or a wrong answer is not correct; merged points add their counts."""
    timeline = Timeline(wall_offset=OFFSET, open_seconds=0.5)
    timeline.add(sample(0.1))
    timeline.add(sample(1.1), True)
    timeline.add(sample(1.2), False)
    timeline.add(sample(1.3, ok=False), False)
    timeline.add(sample(3.0))
    points = timeline.points()
    assert [(p.t - OFFSET, p.sent, p.correct) for p in points] == [
        (0.0, 1, None),
        (1.0, 3, 1),
        (3.0, 1, None),
    ]
    assert points[1].correct_ratio == 1 / 3 and points[0].correct_ratio is None
    assert coarsen(points[:2])[0].correct == 1


def test_an_answer_later_than_its_second_stays_open_is_not_misfiled() -> None:
    timeline = Timeline(wall_offset=OFFSET, open_seconds=1.0)
    timeline.add(sample(0.5))
    timeline.add(sample(5.0))  # closes second 0
    timeline.add(sample(0.6))  # too late for second 0: dropped, not counted in second 5
    assert [(p.t - OFFSET, p.sent) for p in timeline.points()] == [(0.0, 1), (5.0, 1)]


def test_memory_is_bounded_by_coarsening_the_resolution_never_the_span() -> None:
    timeline = Timeline(wall_offset=OFFSET, open_seconds=0.5, max_points=8)
    for second in range(40):
        timeline.add(sample(second + 0.1, latency=0.001 * second))
    points = timeline.points()
    assert len(points) <= 8
    assert points[0].t == OFFSET and points[-1].t + points[-1].width == OFFSET + 40
    assert sum(p.sent for p in points) == 40
    # A merged point keeps the worst p99 of its parts.
    assert points[-1].p99_ms == 39.0


def test_recent_counts_the_open_seconds() -> None:
    timeline = Timeline(wall_offset=OFFSET, open_seconds=3.0)
    for i in range(20):
        timeline.add(sample(0.25 * i, ok=i != 3, latency=0.05))
    recent = timeline.recent(10.0, OFFSET + 5.0)
    assert (recent.sent, recent.ok, recent.p99_ms, recent.cluster) == (20, 19, 50.0, "primary")
    assert timeline.recent(10.0, OFFSET + 100).sent == 0


def test_coarsen_halves_and_keeps_the_odd_point() -> None:
    points = [Point(float(t), 1.0, 2, 1, float(t), "a") for t in range(5)]
    merged = coarsen(points)
    assert [(p.t, p.width, p.sent, p.ok, p.p99_ms) for p in merged] == [
        (0.0, 2.0, 4, 2, 1.0),
        (2.0, 2.0, 4, 2, 3.0),
        (4.0, 1.0, 2, 1, 4.0),
    ]


def doc(points: list[Point]) -> dict[str, object]:
    status = DrillRunStatus(phase=Phase.PASSED, reason="AllHeld", rto_seconds=1.5)
    ref = RunRef("ns", "plan-1", "uid-1")
    return report.document(ref, "plan", None, status, {"primary": "p"}, points, [])


def test_the_document_fits_its_bound_by_coarsening_the_timeline() -> None:
    points = [Point(OFFSET + t, 1.0, 20, 20, 12.5, "primary") for t in range(4000)]
    full = report.encode(doc(points), max_bytes=10**7)
    small = report.encode(doc(points), max_bytes=40_000)
    assert len(small.encode()) <= 40_000 < len(full.encode())
    data = json.loads(small)
    assert data["timeline"]["truncated"] is True
    assert data["timeline"]["resolutionSeconds"] > 1
    rows = [Point.from_row(r) for r in data["timeline"]["points"]]
    assert sum(p.sent for p in rows) == 4000 * 20  # every request still counted
    assert data["status"]["phase"] == "Passed" and data["status"]["rtoSeconds"] == 1.5


def test_a_document_that_cannot_fit_drops_the_timeline_and_says_so() -> None:
    text = report.encode(doc([Point(OFFSET, 1.0, 1, 1, 1.0, "p")] * 3), max_bytes=10)
    assert json.loads(text)["timeline"] == {
        "columns": ["t", "width", "sent", "ok", "p99Ms", "cluster", "correct"],
        "resolutionSeconds": 1.0,
        "points": [],
        "truncated": True,
    }


def test_the_config_map_is_owned_by_the_run() -> None:
    body = report.manifest(RunRef("ns", "plan-1", "uid-1"), "plan", "{}")
    assert body["metadata"]["name"] == "plan-1-report"
    (owner,) = body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("DrillRun", "plan-1", "uid-1")
    assert body["metadata"]["labels"]["modeldr.io/drill-plan"] == "plan"


def test_a_history_entry_carries_the_worst_step_figures_and_none_when_unmeasured() -> None:
    run = {
        "metadata": {"name": "p-3", "creationTimestamp": "2026-12-05T10:00:00Z"},
        "spec": {},
        "status": {
            "phase": "Failed",
            "rtoSeconds": 3.0,
            "steps": [
                {"name": "a", "timeToCorrectSeconds": 2.0, "errorRatio": 0.1},
                {"name": "b", "timeToCorrectSeconds": 9.5, "errorRatio": 0.02, "p99LatencyMs": 80},
            ],
            "modelChecks": [
                {"name": "baseline", "f1": 1.0},
                {"name": "a", "step": "a", "f1": 0.9},
                {"name": "b", "step": "b", "f1": 0.6},
            ],
        },
    }
    entry = report.history_entry(run)
    assert (entry["timeToCorrectSeconds"], entry["errorRatio"]) == (9.5, 0.1)
    assert (entry["p99LatencyMs"], entry["f1"]) == (80.0, 0.6)
    bare = report.history_entry({"metadata": {"name": "p-1"}, "status": {"phase": "Error"}})
    assert (
        bare["timeToCorrectSeconds"] is None and bare["f1"] is None and bare["rtoSeconds"] is None
    )
