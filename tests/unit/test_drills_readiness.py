"""Whether a drill's target serves yet (drills/readiness.py): both the ModelDeployment's Ready
condition and answers to the drill's own probe, and words that say what is missing."""

from __future__ import annotations

from modeldr.drills.probe_stats import ProbeSample
from modeldr.drills.readiness import probe_answers, ready_condition, target_serving
from tests.unit.drill_fakes import serving_status

NOW = 100.0


def samples(*oks: bool, error: str = "HTTP 503") -> list[ProbeSample]:
    """One request every 0.1 s up to NOW, the last ones as given."""
    return [
        ProbeSample(NOW - 0.1 * (len(oks) - 1 - i), 0.01, ok, None, None if ok else error)
        for i, ok in enumerate(oks)
    ]


def test_the_ready_condition_and_its_words() -> None:
    assert ready_condition(serving_status()) == (True, "Serving: primary: ok")
    ready, words = ready_condition(serving_status(ready=False))
    assert not ready and words.startswith("ServersNotAnswering: ")
    assert ready_condition({}) == (
        False,
        "no Ready condition yet (the operator has not reported on it)",
    )


def test_the_probe_must_have_answers_in_the_last_two_seconds() -> None:
    assert probe_answers(samples(True, True), NOW)[0]
    assert probe_answers(samples(False, True, False, True), NOW)[0]  # badly, but it serves
    assert not probe_answers(samples(True), NOW)[0]  # one answer is not enough
    old = [ProbeSample(NOW - 5, 0.01, True), ProbeSample(NOW - 4, 0.01, True)]
    assert not probe_answers(old, NOW)[0]  # answers from before the window do not count
    ok, words = probe_answers(samples(False, False, False, error="connection refused"), NOW)
    assert not ok and words == "0 of 3 answered in the last 2 s; connection refused x3"


def test_serving_needs_both_views_and_says_which_one_is_missing() -> None:
    answering = samples(*([True] * 10))
    assert target_serving("bert", serving_status(), answering, NOW).serving
    loading = target_serving("bert", serving_status(ready=False), answering, NOW)
    assert not loading.serving and "Ready False (ServersNotAnswering" in loading.message
    silent = target_serving("bert", serving_status(), samples(False, False), NOW)
    assert not silent.serving and "Ready True" in silent.message
    assert "0 of 2 answered" in silent.message and "HTTP 503 x2" in silent.message
