"""The drills' model check of the cluster serving now: its golden-set scores (kube/golden.py)
against the plan's minimums and the baseline, and the served digests against the pinned one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modeldr.api.phase import Phase
from modeldr.drills.probe_stats import fmt
from modeldr.kube.golden import GoldenItem, describe_scores, score


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

    figures = describe_scores(cluster, scores, fmt)
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
