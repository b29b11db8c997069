"""A golden set and the scores of a model's answers on it: agreement with a reference's
answers, accuracy and macro precision, recall and F1 against the labels. Pure; shared by the
drills' model checks and the operator's evaluation after a failover.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def describe_scores(cluster: str, scores: ModelScores, number: Callable[[float], str]) -> str:
    """The scores as a message reads them: "standby on 48 golden items: agreement 1,
    accuracy 0.96, ..." with each figure written by `number`."""
    parts = [f"{cluster} on {scores.items} golden items:"]
    if scores.agreement is not None:
        parts.append(f"agreement {number(scores.agreement)},")
    parts.append(
        f"accuracy {number(scores.accuracy)}, precision {number(scores.precision)},"
        f" recall {number(scores.recall)}, F1 {number(scores.f1)}"
    )
    if scores.unanswered:
        parts.append(f"({scores.unanswered} unanswered)")
    return " ".join(parts)
