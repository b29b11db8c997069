"""A run's verdict: precedence, reason and message from its parts (pure)."""

from __future__ import annotations

import pytest

from modeldr.api.phase import Phase
from modeldr.drills.verdict import Part, PartKind, run_verdict


def step(name: str, phase: Phase, reason: str = "ExpectationsMet", message: str = "ok") -> Part:
    return Part(PartKind.STEP, name, phase, reason, message)


PASSED_RUN = [
    Part(PartKind.STEADY_STATE, "before", Phase.PASSED, "SteadyStateMet", "error ratio 0"),
    step("kill-a-pod", Phase.PASSED),
    step("primary-outage", Phase.PASSED),
    Part(PartKind.GATE, "standby-answers", Phase.PASSED, "GatePassed", "4 measurements"),
    Part(PartKind.MODEL_CHECK, "standby", Phase.PASSED, "ModelMatches", "agreement 1"),
]


def test_every_part_passed_is_passed() -> None:
    verdict = run_verdict(PASSED_RUN)
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (Phase.PASSED, "AllPassed", 0)
    assert verdict.message == ("every part passed: 1 steady state, 2 steps, 1 gate, 1 model check")


def test_a_failed_step_fails_the_run_with_its_reason_and_figures() -> None:
    failed = step("primary-outage", Phase.FAILED, "ExpectationFailed", "RTO 14.2 s > max 10 s")
    verdict = run_verdict([*PASSED_RUN, failed])
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (
        Phase.FAILED,
        "ExpectationFailed",
        1,
    )
    assert verdict.message == "step primary-outage: RTO 14.2 s > max 10 s"


def test_the_first_worst_part_names_the_verdict_and_the_others_are_listed() -> None:
    parts = [
        step("a", Phase.FAILED, "ExpectationFailed", "error ratio 0.5 > max 0"),
        Part(PartKind.GATE, "g", Phase.FAILED, "GateFailed", "2 of 4 failed"),
        Part(PartKind.MODEL_CHECK, "standby", Phase.FAILED, "ModelMismatch", "F1 0.3 < min 0.8"),
    ]
    verdict = run_verdict(parts)
    assert verdict.reason == "ExpectationFailed"
    assert verdict.message == (
        "step a: error ratio 0.5 > max 0; also Failed: gate g, model check standby"
    )


def test_abort_wins_over_everything() -> None:
    parts = [
        step("a", Phase.FAILED, "ExpectationFailed", "x"),
        Part(PartKind.GATE, "g", Phase.ERROR, "GateError", "y"),
        Part(PartKind.GATE, "h", Phase.INCONCLUSIVE, "MetricsMissing", "z"),
        Part(
            PartKind.ABORT_CONDITION,
            "everything-failing",
            Phase.ABORTED,
            "AbortConditionMet",
            "error ratio 1 (20 of 20 failed) over the last 10 s > max 0.9",
        ),
    ]
    verdict = run_verdict(parts)
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (
        Phase.ABORTED,
        "AbortConditionMet",
        1,
    )
    assert verdict.message.startswith("abort condition everything-failing: error ratio 1")


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ([Phase.PASSED, Phase.INCONCLUSIVE], Phase.INCONCLUSIVE),
        ([Phase.INCONCLUSIVE, Phase.ERROR], Phase.ERROR),
        ([Phase.ERROR, Phase.FAILED], Phase.FAILED),
        ([Phase.FAILED, Phase.ABORTED], Phase.ABORTED),
    ],
)
def test_precedence(phases: list[Phase], expected: Phase) -> None:
    parts = [step(f"s{i}", p, f"Reason{i}", f"m{i}") for i, p in enumerate(phases)]
    assert run_verdict(parts).phase is expected


def test_missing_evidence_keeps_the_run_from_passing() -> None:
    gate = Part(PartKind.GATE, "standby-answers", Phase.INCONCLUSIVE, "MetricsMissing", "empty")
    verdict = run_verdict([*PASSED_RUN, gate])
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (
        Phase.INCONCLUSIVE,
        "MetricsMissing",
        2,
    )


def test_a_part_without_a_name_is_titled_by_its_kind() -> None:
    part = Part(PartKind.RUN, "", Phase.ABORTED, "StoppedByHand", "stopped by alice")
    assert run_verdict([part]).message == "run: stopped by alice"


def test_a_part_still_running_is_refused() -> None:
    gate = Part(PartKind.GATE, "g", Phase.RUNNING, "Measuring", "1 of 4")
    with pytest.raises(ValueError, match=r"gate g \(Running\)"):
        run_verdict([*PASSED_RUN, gate])


def test_no_parts_is_inconclusive_not_passed() -> None:
    verdict = run_verdict([])
    assert (verdict.phase, verdict.reason) == (Phase.INCONCLUSIVE, "NothingAssessed")
