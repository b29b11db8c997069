"""Judging the probe's answers against the baseline (drills/answers.py) and the step's
answer expectations (probe_stats.assess_step)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from modeldr.api.drillplan import DrillPlanSpec, Msg
from modeldr.api.phase import Phase
from modeldr.drills.answers import AnswerKey, measure_answers, time_to_correct
from modeldr.drills.probe_stats import (
    ProbeSample,
    Roles,
    StepExpectation,
    StepMeasured,
    assess_step,
    measure_step,
)

LABELS = ("positive", "negative", "positive", "negative")
ROLES = Roles("primary", "standby", "primary")


def key(baseline: tuple[str | None, ...] | None = LABELS) -> AnswerKey:
    k = AnswerKey(LABELS)
    if baseline is not None:
        k.set_baseline(baseline)
    return k


def answer(at: float, index: int, label: str | None, cluster: str = "primary") -> ProbeSample:
    return ProbeSample(at, 0.01, True, cluster, None, index, label)


def failed(at: float, index: int) -> ProbeSample:
    return ProbeSample(at, 0.5, False, None, "connection refused", index)


def right(at: float, index: int, cluster: str = "standby") -> ProbeSample:
    return answer(at, index, LABELS[index], cluster)


def wrong(at: float, index: int, cluster: str = "standby") -> ProbeSample:
    flipped = "negative" if LABELS[index] == "positive" else "positive"
    return answer(at, index, flipped, cluster)


def every(step: float, start: float, end: float) -> list[float]:
    n = round((end - start) / step)
    return [start + i * step for i in range(n)]


def test_nothing_is_judged_before_the_baseline_or_for_a_failed_request() -> None:
    k = key(None)
    assert k.agrees(right(0, 0)) is None and k.correct(right(0, 0)) is None
    k.set_baseline(LABELS)
    assert k.agrees(right(0, 0)) is True and k.agrees(wrong(0, 0)) is False
    assert k.agrees(failed(0, 0)) is None and k.correct(failed(0, 0)) is False
    assert k.agrees(answer(0, 0, None)) is None and k.correct(answer(0, 0, None)) is False
    with pytest.raises(ValueError, match="3 baseline answers for 4 inputs"):
        k.set_baseline(LABELS[:3])


def test_answers_are_judged_against_the_baseline_not_the_label() -> None:
    """The baseline got input 1 wrong (as the model does); the same wrong answer during the
    step is not a wrong answer, but it does lower the step's accuracy against the labels."""
    k = key(("positive", "positive", "positive", "negative"))
    samples = [
        answer(t, i % 4, k.baseline[i % 4] if k.baseline else None)
        for i, t in enumerate(every(0.25, 0, 4))
    ]
    measured = measure_answers(k, samples, 0, 4, 0.99)
    assert measured.wrong_answer_ratio == 0 and measured.time_to_correct_seconds == 0
    assert measured.answer_accuracy == 0.75 and measured.judged == 16


def test_a_standby_answering_wrongly_keeps_the_time_to_correct_running() -> None:
    """Outage 0-2 s (failures), then the standby answers every request, but wrongly for
    inputs 1 and 3 until second 6, then correctly: RTO ends near 2 s, correct answers at 6."""
    samples = [failed(t, 0) for t in every(0.25, 0, 2)]
    for i, t in enumerate(every(0.25, 2, 6)):
        samples.append(wrong(t, i % 4) if i % 4 in (1, 3) else right(t, i % 4))
    samples += [right(t, i % 4) for i, t in enumerate(every(0.25, 6, 10))]
    measured = measure_step(samples, 0, 10)
    answers = measure_answers(key(), samples, 0, 10, 0.99)
    assert measured.rto_seconds is not None and measured.rto_seconds < 2.6
    assert answers.time_to_correct_seconds == 6.0
    assert answers.wrong == 8 and answers.judged == 32
    assert answers.wrong_answer_ratio == 0.25


def test_time_to_correct_uses_min_agreement_and_the_whole_window_without_recovery() -> None:
    one_wrong_in_four = [
        (wrong(t, 1) if i % 4 == 1 else right(t, i % 4)) for i, t in enumerate(every(0.25, 0, 4))
    ]
    verdicts = [(s, key().agrees(s)) for s in one_wrong_in_four]
    assert time_to_correct(verdicts, 0, 4, 0.99) == 4.0  # never correct: the whole window
    assert time_to_correct(verdicts, 0, 4, 0.75) == 0.0  # 3 of 4 is enough at 0.75
    only_failures = [(failed(t, 0), None) for t in every(0.25, 0, 3)]
    assert time_to_correct(only_failures, 0, 3, 0.5) == 3.0


def test_a_second_without_answers_neither_breaks_nor_restores_correctness() -> None:
    samples = [failed(0.1, 0), right(2.1, 0), right(2.6, 1), right(4.2, 2)]
    verdicts = [(s, key().agrees(s)) for s in samples]
    # Second 0 incorrect (a late failure arrives at 0.6), 1 and 3 empty, 2 and 4 correct.
    assert time_to_correct(verdicts, 0, 5, 0.99) == 2.0


def test_no_baseline_or_no_requests_is_no_evidence() -> None:
    samples = [right(t, 0) for t in every(0.5, 0, 2)]
    assert measure_answers(key(None), samples, 0, 2, 0.99).time_to_correct_seconds is None
    assert measure_answers(None, samples, 0, 2, 0.99).wrong_answer_ratio is None
    empty = measure_answers(key(), [], 0, 2, 0.99)
    assert empty.wrong_answer_ratio is None and empty.time_to_correct_seconds is None


def judged_step(samples: list[ProbeSample], start: float, end: float, k: AnswerKey) -> StepMeasured:
    a = measure_answers(k, samples, start, end, 0.99)
    return replace(
        measure_step(samples, start, end),
        judged=a.judged,
        wrong=a.wrong,
        wrong_answer_ratio=a.wrong_answer_ratio,
        time_to_correct_seconds=a.time_to_correct_seconds,
    )


def test_the_answer_expectations_fail_the_step_with_the_measured_values() -> None:
    samples = [
        wrong(t, i % 4) if i % 2 else right(t, i % 4) for i, t in enumerate(every(0.25, 0, 8))
    ]
    measured = judged_step(samples, 0, 8, key())
    expect = StepExpectation(max_time_to_correct_seconds=5, max_wrong_answer_ratio=0.1)
    got = assess_step(expect, measured, ROLES)
    assert got.phase is Phase.FAILED and got.reason == "ExpectationFailed"
    assert "time to correct answers 8 s > max 5 s" in got.message
    assert "wrong answer ratio 0.5 (16 of 32 answers differ from the baseline) > max 0.1" in (
        got.message
    )
    healthy = judged_step([right(t, i % 4) for i, t in enumerate(every(0.25, 0, 8))], 0, 8, key())
    passed = assess_step(expect, healthy, ROLES)
    assert passed.phase is Phase.PASSED and "time to correct answers 0 s" in passed.message


def test_answer_expectations_without_a_baseline_are_inconclusive_never_passed() -> None:
    samples = [right(t, i % 4) for i, t in enumerate(every(0.25, 0, 4))]
    measured = judged_step(samples, 0, 4, key(None))
    got = assess_step(StepExpectation(max_wrong_answer_ratio=0.1), measured, ROLES)
    assert got.phase is Phase.INCONCLUSIVE and got.reason == "AnswersNotJudged"
    assert "no answer judged against the baseline" in got.message


def plan(expect: dict[str, object], checks: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "target": {"modelDeployment": "m"},
        "steps": [
            {"name": "s", "action": {"type": "Wait"}, "durationSeconds": 5, "expect": expect}
        ],
    }
    if checks:
        body["modelChecks"] = {"goldenSet": {"configMapRef": {"name": "g"}}}
    return body


def test_answer_expectations_need_model_checks() -> None:
    with pytest.raises(ValidationError, match=r"need spec\.modelChecks"):
        DrillPlanSpec.parse(plan({"maxWrongAnswerRatio": 0.01}, checks=False))
    with pytest.raises(ValidationError, match=r"need spec\.modelChecks"):
        DrillPlanSpec.parse(plan({"maxTimeToCorrectSeconds": 3}, checks=False))
    spec = DrillPlanSpec.parse(plan({"maxTimeToCorrectSeconds": 3}, checks=True))
    assert spec.steps[0].expect.max_time_to_correct_seconds == 3
    assert Msg.ANSWER_EXPECTATIONS_NEED_CHECKS.startswith("steps[].expect.maxTimeToCorrect")
