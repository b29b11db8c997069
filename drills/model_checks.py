"""Model re-evaluation on a golden set: does the cluster serving now answer like the baseline,
and as well against the labels? Pure: the engine sends the texts and passes the answers.

Predictions are aligned with the golden items (the i-th answer is for the i-th text), so
duplicate texts are fine; None is a text the cluster did not answer, counted as a
disagreement and as wrong. Precision, recall and F1 are macro averages over every label that
occurs in the golden labels or in the predictions (scikit-learn's `average="macro"`,
`zero_division=0`): a class never predicted has precision 0, a class never labelled that the
model predicts drags precision down, and macro F1 is the mean of per-class F1, not the F1 of
the mean precision and recall.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modeldr.api.phase import Phase
from modeldr.drills.probe_stats import fmt

# A ConfigMap holds at most 1 MiB; a golden set is a few hundred lines.
MAX_GOLDEN_BYTES = 1024 * 1024
MAX_GOLDEN_ITEMS = 10_000


class GoldenSetError(ValueError):
    """The golden set cannot be read; the message names the line."""


@dataclass(frozen=True)
class GoldenItem:
    text: str
    label: str


def parse_golden_set(
    text: str, *, max_items: int = MAX_GOLDEN_ITEMS, max_bytes: int = MAX_GOLDEN_BYTES
) -> tuple[GoldenItem, ...]:
    """JSON lines of {"text": ..., "label": ...}; blank lines skipped, other keys ignored.
    Labels may be strings or integers (class ids) and are compared as strings."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise GoldenSetError(f"golden set is {size} bytes, more than {max_bytes}")
    items: list[GoldenItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenSetError(f"golden set line {number}: not JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise GoldenSetError(f"golden set line {number}: nested too deeply") from exc
        if not isinstance(record, dict):
            raise GoldenSetError(f"golden set line {number}: not a JSON object")
        body, label = record.get("text"), record.get("label")
        if not isinstance(body, str) or not body.strip():
            raise GoldenSetError(f"golden set line {number}: 'text' must be a non-empty string")
        if isinstance(label, bool) or not isinstance(label, str | int) or label == "":
            raise GoldenSetError(
                f"golden set line {number}: 'label' must be a non-empty string or an integer"
            )
        items.append(GoldenItem(text=body, label=str(label)))
        if len(items) > max_items:
            raise GoldenSetError(f"golden set has more than {max_items} items")
    return tuple(items)


@dataclass(frozen=True)
class ModelScores:
    items: int
    unanswered: int
    agreement: float | None  # with the baseline's answers; None when there is no baseline
    accuracy: float
    precision: float  # macro
    recall: float  # macro
    f1: float  # macro

    def to_status(self) -> dict[str, object]:
        return {
            "items": self.items,
            "unanswered": self.unanswered,
            "agreement": self.agreement,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def score(
    golden: Sequence[GoldenItem],
    predictions: Sequence[str | None],
    baseline: Sequence[str | None] | None = None,
) -> ModelScores:
    """Scores of `predictions` against the labels, and against the baseline's answers."""
    if not golden:
        raise ValueError("no golden items to score")
    if len(predictions) != len(golden):
        raise ValueError(f"{len(predictions)} predictions for {len(golden)} golden items")
    if baseline is not None and len(baseline) != len(golden):
        raise ValueError(f"{len(baseline)} baseline answers for {len(golden)} golden items")
    n = len(golden)
    labels = [item.label for item in golden]
    agreement = None
    if baseline is not None:
        pairs = zip(predictions, baseline, strict=True)
        agreement = sum(1 for p, b in pairs if p is not None and p == b) / n
    correct = sum(1 for p, y in zip(predictions, labels, strict=True) if p == y)
    classes = sorted(set(labels) | {p for p in predictions if p is not None})
    precisions, recalls, f1s = [], [], []
    for cls in classes:
        true_positive = sum(
            1 for p, y in zip(predictions, labels, strict=True) if p == cls and y == cls
        )
        predicted = sum(1 for p in predictions if p == cls)
        actual = sum(1 for y in labels if y == cls)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    return ModelScores(
        items=n,
        unanswered=sum(1 for p in predictions if p is None),
        agreement=agreement,
        accuracy=correct / n,
        precision=sum(precisions) / len(classes),
        recall=sum(recalls) / len(classes),
        f1=sum(f1s) / len(classes),
    )


@dataclass(frozen=True)
class ModelCheckAssessment:
    phase: Phase  # Passed, Failed, Inconclusive or Error
    reason: str
    message: str


def assess_model_check(
    cluster: str,
    golden: Sequence[GoldenItem],
    predictions: Sequence[str | None],
    *,
    baseline: Sequence[str | None] | None = None,
    min_agreement: float | None = None,
    min_accuracy: float | None = None,
    min_f1: float | None = None,
    served_digests: Mapping[str, str | None] | None = None,
    expected_digest: str | None = None,
) -> ModelCheckAssessment:
    """The model check of the cluster serving now (or of the baseline, without `baseline`).

    Failed (ModelMismatch) when a score is below its minimum (`>=` passes), or a served digest
    differs from the expected one (spec.model.expectedDigest; without one, the clusters must
    serve the same digest). A cluster whose digest is unknown (None) is Inconclusive
    (DigestUnknown), unless something already failed. An empty golden set is Error
    (GoldenSetEmpty): nothing was checked.
    """
    if not golden:
        return ModelCheckAssessment(
            Phase.ERROR, "GoldenSetEmpty", "the golden set has no items, nothing was checked"
        )
    scores = score(golden, predictions, baseline)
    misses: list[str] = []
    for name, value, minimum in (
        ("agreement", scores.agreement, min_agreement),
        ("accuracy", scores.accuracy, min_accuracy),
        ("F1", scores.f1, min_f1),
    ):
        if minimum is not None and value is not None and value < minimum:
            misses.append(f"{name} {_below(value, minimum)} < min {fmt(minimum)}")
    digests = dict(served_digests or {})
    unknown = sorted(name for name, digest in digests.items() if digest is None)
    known = {name: d for name, d in digests.items() if d is not None}
    if expected_digest is not None:
        misses.extend(
            f"{name} serves {_short(d)}, expected {_short(expected_digest)}"
            for name, d in sorted(known.items())
            if d != expected_digest
        )
    elif len(set(known.values())) > 1:
        served = ", ".join(f"{name} {_short(d)}" for name, d in sorted(known.items()))
        misses.append(f"the clusters serve different digests: {served}")

    figures = _figures(cluster, scores)
    if misses:
        return ModelCheckAssessment(
            Phase.FAILED, "ModelMismatch", f"{'; '.join(misses)} ({figures})"
        )
    if unknown:
        return ModelCheckAssessment(
            Phase.INCONCLUSIVE,
            "DigestUnknown",
            f"the served digest of {', '.join(unknown)} is unknown ({figures})",
        )
    return ModelCheckAssessment(Phase.PASSED, "ModelMatches", figures)


def _figures(cluster: str, scores: ModelScores) -> str:
    parts = [f"{cluster} on {scores.items} golden items:"]
    if scores.agreement is not None:
        parts.append(f"agreement {fmt(scores.agreement)},")
    parts.append(
        f"accuracy {fmt(scores.accuracy)}, precision {fmt(scores.precision)},"
        f" recall {fmt(scores.recall)}, F1 {fmt(scores.f1)}"
    )
    if scores.unanswered:
        parts.append(f"({scores.unanswered} unanswered)")
    return " ".join(parts)


def _below(value: float, minimum: float) -> str:
    """`value` with enough digits that it does not read as `minimum` (0.98999, not 0.99)."""
    for digits in range(3, 10):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        if float(text) < minimum:
            return text
    return repr(value)


def _short(digest: str) -> str:
    # "sha256:0123456789ab…": enough to tell two digests apart in a message.
    algorithm, _, hexdigits = digest.rpartition(":")
    shown = hexdigits[:12] + ("…" if len(hexdigits) > 12 else "")
    return f"{algorithm}:{shown}" if algorithm else shown
