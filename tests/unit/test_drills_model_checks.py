"""Model re-evaluation on a golden set: parsing, scores, the check's verdict (pure)."""

from __future__ import annotations

import json

import pytest

from modeldr.api.phase import Phase
from modeldr.drills.model_checks import assess_model_check
from modeldr.kube.golden import GoldenItem, GoldenSetError, parse_golden_set, score

POS, NEG = "positive", "negative"
GOLDEN = tuple(
    GoldenItem(text=f"review {i}", label=label)
    for i, label in enumerate([POS, POS, POS, NEG, NEG, NEG, NEG, POS, NEG, POS])
)
LABELS = [item.label for item in GOLDEN]
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


# --- parsing ----------------------------------------------------------------------------


def test_parse_reads_text_and_label_per_line_and_skips_blank_lines() -> None:
    text = '{"text": "great", "label": "positive"}\n\n  \n{"text": "bad", "label": "negative"}\n'
    assert parse_golden_set(text) == (
        GoldenItem("great", "positive"),
        GoldenItem("bad", "negative"),
    )


def test_parse_keeps_integer_labels_as_strings_and_ignores_other_keys() -> None:
    items = parse_golden_set('{"text": "ok", "label": 1, "source": "held-out"}')
    assert items == (GoldenItem("ok", "1"),)


def test_parse_of_nothing_is_empty() -> None:
    assert parse_golden_set("\n\n") == ()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ('["text", "label"]', "not a JSON object"),
        ('{"label": "positive"}', "'text' must be"),
        ('{"text": "  ", "label": "positive"}', "'text' must be"),
        ('{"text": "ok"}', "'label' must be"),
        ('{"text": "ok", "label": true}', "'label' must be"),
        ('{"text": "ok", "label": ""}', "'label' must be"),
        ('{"text": "ok", "label": ["a"]}', "'label' must be"),
    ],
)
def test_bad_lines_name_their_line_number(line: str, problem: str) -> None:
    text = '{"text": "fine", "label": "positive"}\n\n' + line + "\n"
    with pytest.raises(GoldenSetError, match=f"line 3: {problem}"):
        parse_golden_set(text)


def test_parse_refuses_too_many_items() -> None:
    text = "\n".join(json.dumps({"text": f"t{i}", "label": "a"}) for i in range(6))
    assert len(parse_golden_set(text, max_items=6)) == 6
    with pytest.raises(GoldenSetError, match="more than 5 items"):
        parse_golden_set(text, max_items=5)


def test_parse_refuses_too_many_bytes() -> None:
    text = json.dumps({"text": "x" * 200, "label": "a"})
    with pytest.raises(GoldenSetError, match="bytes, more than 100"):
        parse_golden_set(text, max_bytes=100)


def test_parse_refuses_absurd_nesting() -> None:
    with pytest.raises(GoldenSetError, match="line 1"):
        parse_golden_set("[" * 100_000)


# --- scores -----------------------------------------------------------------------------


def test_perfect_predictions_score_one_everywhere() -> None:
    scores = score(GOLDEN, LABELS, baseline=LABELS)
    assert (scores.agreement, scores.accuracy, scores.precision, scores.recall, scores.f1) == (
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    )


def test_scores_match_a_hand_computed_confusion_matrix() -> None:
    # Labels: 5 positive, 5 negative. Predictions: 4 of the positives right, 1 as negative;
    # 3 negatives right, 2 as positive.
    predictions = [POS, POS, POS, NEG, NEG, NEG, POS, NEG, POS, POS]
    scores = score(GOLDEN, predictions)
    assert scores.accuracy == pytest.approx(0.7)
    # positive: tp 4, predicted 6, actual 5; negative: tp 3, predicted 4, actual 5
    p_pos, r_pos, p_neg, r_neg = 4 / 6, 4 / 5, 3 / 4, 3 / 5
    f1_pos = 2 * p_pos * r_pos / (p_pos + r_pos)
    f1_neg = 2 * p_neg * r_neg / (p_neg + r_neg)
    assert scores.precision == pytest.approx((p_pos + p_neg) / 2)
    assert scores.recall == pytest.approx((r_pos + r_neg) / 2)
    assert scores.f1 == pytest.approx((f1_pos + f1_neg) / 2)
    assert scores.agreement is None


def test_a_model_that_answers_one_label_has_a_low_macro_f1() -> None:
    # The random-weights model of the examples: 50 % accuracy, macro F1 1/3.
    scores = score(GOLDEN, [POS] * len(GOLDEN))
    assert scores.accuracy == pytest.approx(0.5)
    assert scores.f1 == pytest.approx((2 * 0.5 * 1.0 / 1.5 + 0.0) / 2)
    # The class it never predicts has precision 0 (not 1, not skipped).
    assert scores.precision == pytest.approx((0.5 + 0.0) / 2)


def test_agreement_is_with_the_baseline_not_with_the_labels() -> None:
    baseline = [POS] * len(GOLDEN)
    scores = score(GOLDEN, [POS] * 9 + [NEG], baseline=baseline)
    assert scores.agreement == pytest.approx(0.9)


def test_unanswered_items_disagree_and_are_wrong() -> None:
    predictions: list[str | None] = [*LABELS[:-2], None, None]
    scores = score(GOLDEN, predictions, baseline=LABELS)
    assert scores.unanswered == 2
    assert scores.agreement == pytest.approx(0.8)
    assert scores.accuracy == pytest.approx(0.8)


def test_unanswered_in_both_does_not_count_as_agreement() -> None:
    scores = score(GOLDEN, [None] * 10, baseline=[None] * 10)
    assert scores.agreement == 0.0


def test_a_predicted_label_that_is_not_in_the_golden_set_lowers_precision() -> None:
    predictions = [*LABELS[:-1], "neutral"]
    assert score(GOLDEN, predictions).precision == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_scores_need_aligned_answers() -> None:
    with pytest.raises(ValueError, match="9 predictions for 10"):
        score(GOLDEN, LABELS[:9])
    with pytest.raises(ValueError, match="baseline"):
        score(GOLDEN, LABELS, baseline=LABELS[:3])


def test_scores_to_status() -> None:
    status = score(GOLDEN, LABELS, baseline=LABELS).to_status()
    assert status["f1"] == 1.0 and status["agreement"] == 1.0 and status["items"] == 10


# --- the check --------------------------------------------------------------------------


def test_matching_model_passes_with_its_figures() -> None:
    result = assess_model_check(
        "standby",
        GOLDEN,
        LABELS,
        baseline=LABELS,
        min_agreement=0.99,
        min_f1=0.9,
        served_digests={"primary": DIGEST, "standby": DIGEST},
        expected_digest=DIGEST,
    )
    assert (result.phase, result.reason) == (Phase.PASSED, "ModelMatches")
    assert "standby on 10 golden items: agreement 1, accuracy 1" in result.message


def test_agreement_below_its_min_is_model_mismatch() -> None:
    predictions = [*LABELS[:-1], NEG if LABELS[-1] == POS else POS]
    result = assess_model_check("standby", GOLDEN, predictions, baseline=LABELS, min_agreement=0.99)
    assert (result.phase, result.reason) == (Phase.FAILED, "ModelMismatch")
    assert "agreement 0.9 < min 0.99" in result.message


def test_agreement_just_below_its_min_does_not_read_as_equal() -> None:
    golden = tuple(GoldenItem(f"t{i}", POS) for i in range(1000))
    predictions = [POS] * 989 + [NEG] * 11
    result = assess_model_check(
        "standby", golden, predictions, baseline=[POS] * 1000, min_agreement=0.99
    )
    assert "agreement 0.989 < min 0.99" in result.message


def test_agreement_exactly_at_its_min_passes() -> None:
    golden = tuple(GoldenItem(f"t{i}", POS) for i in range(100))
    predictions = [POS] * 99 + [NEG]
    result = assess_model_check(
        "standby", golden, predictions, baseline=[POS] * 100, min_agreement=0.99
    )
    assert result.phase is Phase.PASSED


def test_accuracy_and_f1_below_their_minimum_are_both_reported() -> None:
    result = assess_model_check("primary", GOLDEN, [POS] * 10, min_accuracy=0.8, min_f1=0.5)
    assert result.phase is Phase.FAILED
    assert "accuracy 0.5 < min 0.8" in result.message
    assert "F1 0.333 < min 0.5" in result.message


def test_a_baseline_check_has_no_agreement_to_fail() -> None:
    result = assess_model_check("primary", GOLDEN, LABELS, min_agreement=0.99)
    assert result.phase is Phase.PASSED
    assert "agreement" not in result.message


def test_a_digest_other_than_the_expected_one_is_model_mismatch() -> None:
    result = assess_model_check(
        "standby",
        GOLDEN,
        LABELS,
        served_digests={"primary": DIGEST, "standby": OTHER},
        expected_digest=DIGEST,
    )
    assert (result.phase, result.reason) == (Phase.FAILED, "ModelMismatch")
    assert "standby serves sha256:cdcdcdcdcdcd…, expected sha256:abababababab…" in result.message


def test_without_an_expected_digest_the_clusters_must_serve_the_same() -> None:
    same = assess_model_check(
        "standby", GOLDEN, LABELS, served_digests={"primary": DIGEST, "standby": DIGEST}
    )
    assert same.phase is Phase.PASSED
    differ = assess_model_check(
        "standby", GOLDEN, LABELS, served_digests={"primary": DIGEST, "standby": OTHER}
    )
    assert differ.phase is Phase.FAILED
    assert "different digests" in differ.message


def test_an_unknown_digest_is_inconclusive() -> None:
    result = assess_model_check(
        "standby",
        GOLDEN,
        LABELS,
        served_digests={"primary": DIGEST, "standby": None},
        expected_digest=DIGEST,
    )
    assert (result.phase, result.reason) == (Phase.INCONCLUSIVE, "DigestUnknown")
    assert "standby" in result.message


def test_a_mismatch_wins_over_an_unknown_digest() -> None:
    result = assess_model_check(
        "standby",
        GOLDEN,
        [POS] * 10,
        min_accuracy=0.9,
        served_digests={"standby": None},
    )
    assert result.phase is Phase.FAILED


def test_an_empty_golden_set_is_error_never_passed() -> None:
    result = assess_model_check("standby", (), [], min_agreement=0.0, min_f1=0.0)
    assert (result.phase, result.reason) == (Phase.ERROR, "GoldenSetEmpty")
