"""Whether the probe's answers were *correct*, not only answered. Pure, and thread-safe where
the probe's worker threads call it.

An HTTP 200 is not a correct answer: a standby that truncates its inputs, serves another
model or returns an empty prediction list answers every request and serves wrong labels.
When a plan has model checks, the drill probe sends the golden set's texts (request i sends
text i mod n) and records the label each answer gave. Every answer is judged twice:

- against the *baseline*: the label the active cluster gave that text in the baseline model
  check before the first fault (`AnswerKey`). An answer that differs is a *wrong answer*;
  this is what a failover must not change. Until the baseline exists nothing is judged.
- against the golden label: the step's `answerAccuracy`, reported beside the baseline's own
  accuracy (the model is not perfect, so a label mismatch alone is not a failover's fault).

Per step (the window of `probe_stats.measure_step`):

- wrongAnswerRatio: answers that differ from the baseline / successful answers judged.
  None when nothing could be judged (no baseline, no answer in the window): no evidence.
- timeToCorrectSeconds: from the step's start to the start of the first whole second from
  which every second of the window is *correct*: its requests (failed ones included, by
  when their failure arrived) agree with the baseline at least at the plan's minAgreement.
  0 when every second was correct; the whole window when no correct second followed the
  last incorrect one (every request failing included); None without a baseline or without
  requests. A second in which no answer arrived neither breaks nor restores it.
  Unlike rtoSeconds (answers of any kind), a standby that answers wrongly keeps it running.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from modeldr.drills.probe_stats import ProbeSample, in_window


class AnswerKey:
    """The baseline's label per golden index, set once the baseline model check answered;
    None until then (set from the engine's task, read from the probe's threads)."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)  # the golden labels, in the probe's input order
        self._lock = threading.Lock()
        self._baseline: tuple[str | None, ...] | None = None

    def set_baseline(self, answers: Sequence[str | None]) -> None:
        if len(answers) != len(self.labels):
            raise ValueError(f"{len(answers)} baseline answers for {len(self.labels)} inputs")
        with self._lock:
            self._baseline = tuple(answers)

    @property
    def baseline(self) -> tuple[str | None, ...] | None:
        with self._lock:
            return self._baseline

    def agrees(self, sample: ProbeSample) -> bool | None:
        """The sample's answer is the baseline's for its input: True/False; None when it
        cannot be judged (no baseline yet, a failed request, an answer without a label)."""
        baseline = self.baseline
        index = sample.input_index
        if baseline is None or not sample.ok or index is None or sample.answer is None:
            return None
        expected = baseline[index % len(baseline)]
        return expected is not None and sample.answer == expected

    def correct(self, sample: ProbeSample) -> bool | None:
        """For the timeline: once the baseline exists, every request either answered as the
        baseline did (True) or not (False: failed, no label, another label); None before."""
        if self.baseline is None:
            return None
        return self.agrees(sample) is True


@dataclass(frozen=True)
class AnswersMeasured:
    judged: int  # successful answers judged against the baseline
    wrong: int  # of those, answers that differ from the baseline's
    wrong_answer_ratio: float | None
    answer_accuracy: float | None  # answers equal to the golden label / answers with a label
    time_to_correct_seconds: float | None


NOT_JUDGED = AnswersMeasured(0, 0, None, None, None)


def measure_answers(
    key: AnswerKey | None,
    samples: Iterable[ProbeSample],
    start: float,
    end: float,
    min_agreement: float,
) -> AnswersMeasured:
    """The answers of the requests sent in [start, end), judged with `key` (None: the plan
    has no model checks, nothing is judged)."""
    if key is None:
        return NOT_JUDGED
    window = in_window(samples, start, end)
    verdicts = [(s, key.agrees(s)) for s in window]
    judged = [agrees for _, agrees in verdicts if agrees is not None]
    labelled = [s for s in window if s.ok and s.answer is not None and s.input_index is not None]
    accuracy = None
    if labelled and key.labels:
        right = sum(
            1 for s in labelled if s.answer == key.labels[(s.input_index or 0) % len(key.labels)]
        )
        accuracy = right / len(labelled)
    if key.baseline is None or not window:
        return AnswersMeasured(0, 0, None, accuracy, None)
    wrong = sum(1 for agrees in judged if not agrees)
    return AnswersMeasured(
        judged=len(judged),
        wrong=wrong,
        # No answer at all (every request failed): no wrong answer, and no right one; the
        # time to correct answers is then the whole window, as the RTO is.
        wrong_answer_ratio=wrong / len(judged) if judged else None,
        answer_accuracy=accuracy,
        time_to_correct_seconds=time_to_correct(verdicts, start, end, min_agreement),
    )


def time_to_correct(
    verdicts: Sequence[tuple[ProbeSample, bool | None]],
    start: float,
    end: float,
    min_agreement: float,
) -> float:
    """Seconds from `start` until answers are correct for good (the module's definition).
    `verdicts`: the window's samples with their judgement (None: failed or not judged)."""
    seconds: dict[int, list[bool]] = {}
    for sample, agrees in verdicts:
        arrived = sample.answered_at
        if arrived > end:
            continue  # arrived after the window: it belongs to no second of it
        second = max(0, math.floor(arrived - start))
        # A failed request is an incorrect answer; a success that could not be judged (no
        # label) is not evidence either way.
        if not sample.ok:
            seconds.setdefault(second, []).append(False)
        elif agrees is not None:
            seconds.setdefault(second, []).append(agrees)
    correct = {
        second: sum(marks) / len(marks) >= min_agreement - 1e-12
        for second, marks in seconds.items()
    }
    incorrect = [second for second, ok in correct.items() if not ok]
    if not incorrect:
        return 0.0
    # Correct again from the first correct second after the last incorrect one; none after
    # it (answers still wrong, or none arrived since): no evidence of recovery, whole window.
    recovered = [second for second, ok in correct.items() if ok and second > max(incorrect)]
    if not recovered:
        return end - start
    return min(float(min(recovered)), end - start)
