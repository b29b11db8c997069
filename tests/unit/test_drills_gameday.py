"""Game days (drills/gameday.py): the Wilson interval, a series' runs and its next run, the
names of repeated runs, and the plan's rules for spec.repeat."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldr.api.drillplan import DrillPlanSpec, Repeat
from modeldr.api.phase import Phase
from modeldr.drills import gameday
from modeldr.drills.gameday import (
    INDEX_LABEL,
    SERIES_LABEL,
    assess_series,
    latest_series,
    repeat_name,
    series_runs,
    wilson,
)


def test_wilson_matches_the_textbook_values() -> None:
    # 95% Wilson score intervals (Newcombe 1998, table I; Agresti-Coull 1998).
    lower, upper = wilson(81, 263) or (0, 0)
    assert (round(lower, 4), round(upper, 4)) == (0.2553, 0.3662)
    lower, upper = wilson(3, 3) or (0, 0)
    # All passed: the lower bound is n / (n + z^2), the upper 1.
    assert lower == pytest.approx(3 / (3 + gameday.Z_95**2)) and upper == 1.0
    lower, upper = wilson(0, 10) or (1, 1)
    assert lower == 0.0 and round(upper, 4) == 0.2775
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(4, 3)


def run(name: str, index: int, phase: Phase, generation: int = 1, series: str = "gd-1") -> Any:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": f"2026-12-05T10:{index:02d}:00Z",
            "labels": {SERIES_LABEL: series, INDEX_LABEL: str(index)},
        },
        "spec": {"planGeneration": generation},
        "status": {"phase": str(phase)},
    }


REPEAT = Repeat.model_validate({"runs": 5, "untilConsecutivePasses": 2})


def state_of(*phases: Phase, generation: int = 1) -> gameday.SeriesState:
    runs = [run(repeat_name("gd-1", i + 1), i + 1, p) for i, p in enumerate(phases)]
    found = series_runs(runs)
    return assess_series("gd-1", found["gd-1"], REPEAT, generation)


def test_a_series_repeats_until_enough_passes_in_a_row() -> None:
    first = state_of(Phase.FAILED)
    assert (first.state, first.next_index) == ("Repeating", 2)
    assert (
        first.message
        == "0 of 1 runs passed, 0 in a row; run 2 of at most 5 next (2 in a row wanted)"
    )
    flight = state_of(Phase.FAILED, Phase.RUNNING)
    assert (flight.state, flight.next_index, flight.ended) == ("Repeating", None, 1)
    one = state_of(Phase.FAILED, Phase.PASSED)
    assert (one.state, one.next_index, one.consecutive) == ("Repeating", 3, 1)
    done = state_of(Phase.FAILED, Phase.PASSED, Phase.PASSED)
    assert (done.state, done.next_index, done.passed, done.ended) == ("Satisfied", None, 2, 3)
    rate = done.pass_rate()
    assert rate["ratio"] == 2 / 3 and rate["lower"] == 0.2077 and rate["upper"] == 0.9385


def test_a_series_stops_after_its_runs_and_only_passed_counts() -> None:
    phases = (Phase.PASSED, Phase.INCONCLUSIVE, Phase.PASSED, Phase.ERROR, Phase.PASSED)
    exhausted = state_of(*phases)
    assert (exhausted.state, exhausted.next_index) == ("Exhausted", None)
    assert (exhausted.passed, exhausted.ended, exhausted.consecutive) == (3, 5, 1)
    assert "5 runs ran without 2 passes in a row" in exhausted.message


def test_a_changed_plan_supersedes_its_series() -> None:
    superseded = state_of(Phase.FAILED, generation=2)
    assert (superseded.state, superseded.next_index) == ("Superseded", None)


def test_runs_outside_a_series_are_ignored_and_the_latest_series_wins() -> None:
    runs = [
        run("gd-1", 1, Phase.PASSED),
        run("gd-2", 1, Phase.FAILED, series="gd-2") | {},
        {"metadata": {"name": "by-hand", "labels": {}}, "status": {"phase": "Passed"}},
    ]
    runs[1]["metadata"]["creationTimestamp"] = "2026-12-05T11:00:00Z"
    found = series_runs(runs)
    assert sorted(found) == ["gd-1", "gd-2"] and latest_series(found) == "gd-2"
    assert latest_series({}) is None


def test_repeated_runs_are_named_after_the_first_and_fit_a_name() -> None:
    assert repeat_name("gd-3", 1) == "gd-3" and repeat_name("gd-3", 2) == "gd-3-2"
    plan = "p" * 52
    first = f"{plan}-29481234"  # a scheduled run: minutes since the epoch
    long = repeat_name(first, 17)
    assert len(long) <= 63 and long.endswith("-17") and long != repeat_name(first, 18)
    assert repeat_name(first, 17) == long  # the same every time: never two runs


def plan(**repeat: Any) -> dict[str, Any]:
    return {
        "target": {"modelDeployment": "m"},
        "steps": [{"name": "s", "action": {"type": "Wait"}, "durationSeconds": 5}],
        "repeat": repeat,
    }


def test_the_plan_rules_for_repeat() -> None:
    spec = DrillPlanSpec.parse(plan(runs=5, untilConsecutivePasses=3))
    assert spec.repeat is not None and spec.repeat.until_consecutive_passes == 3
    with pytest.raises(ValidationError, match=r"at most repeat\.runs"):
        DrillPlanSpec.parse(plan(runs=2, untilConsecutivePasses=3))
    with pytest.raises(ValidationError, match="at most historyLimit"):
        DrillPlanSpec.parse(plan(runs=20, untilConsecutivePasses=3))
    assert DrillPlanSpec.parse(plan(runs=20, untilConsecutivePasses=3) | {"historyLimit": 20})
