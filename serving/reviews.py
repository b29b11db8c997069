"""A generated product-review data set for the trained tiny classifier (serving/train_tiny.py).

No data set is downloaded: reviews are assembled from templates and word lists, the same
seed giving the same texts in the same order. A review's label is the sentiment of what it
says about the *product* (its sound, screen, battery, ...), after negation. Most reviews
also say something about the *logistics* (delivery, packaging, the courier), usually with
the opposite sentiment and a contrast word, before or after the product clause: "the
parcel arrived on time, but the screen is broken" is negative, "although the delivery was
slow, the sound is excellent" positive. So the deciding words are at no fixed place, and
the first words decide nothing. Some logistics clauses use the product clauses' adjectives
("the box was great, but the screen is terrible" and "the box was terrible, but the screen
is great" hold the same words and opposite labels) and a fifth of the product clauses are
negated ("the battery is not reliable"), so a bag of words cannot decide either.

Labels are ``negative`` and ``positive`` (serving/tiny.py DEFAULT_LABELS). The split is
by text (duplicates dropped first), so no held-out text was ever trained on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Label = Literal["negative", "positive"]
LABELS: tuple[Label, ...] = ("negative", "positive")

PRODUCTS = (
    "headset",
    "speaker",
    "phone",
    "laptop",
    "kettle",
    "blender",
    "camera",
    "keyboard",
    "monitor",
    "charger",
    "watch",
    "lamp",
    "tablet",
    "printer",
    "router",
    "vacuum",
)
# What a review is about: its sentiment decides the label.
PRODUCT_ASPECTS = (
    "the sound",
    "the screen",
    "the battery",
    "the build quality",
    "the motor",
    "the picture",
    "the design",
    "the fit",
    "the product",
    "the device",
    "the quality",
    "the software",
    "the display",
    "the material",
)
# What it is not about: its sentiment never decides.
SIDE_ASPECTS = (
    "the delivery",
    "the shipping",
    "the box",
    "the packaging",
    "the courier",
    "the wrapping",
    "the seller",
    "the manual",
)
SIDE_SUBJECTS = ("the delivery", "the parcel", "the package", "the order", "the courier")
# Adjectives shared by both kinds of clause.
ADJECTIVES: dict[Label, tuple[str, ...]] = {
    "positive": (
        "excellent",
        "great",
        "superb",
        "brilliant",
        "solid",
        "fantastic",
        "wonderful",
        "reliable",
        "perfect",
        "impressive",
        "good",
        "amazing",
        "lovely",
        "fine",
    ),
    "negative": (
        "terrible",
        "awful",
        "poor",
        "broken",
        "useless",
        "disappointing",
        "flimsy",
        "bad",
        "faulty",
        "horrible",
        "dreadful",
        "damaged",
        "shoddy",
        "sloppy",
    ),
}
COPULAS = ("is", "was", "feels", "seems", "looks")
NEGATED_COPULAS = ("is not", "was not", "does not feel", "never felt", "is hardly")
# Predicates that only fit one kind of clause; product ones have "the {product}" or "it"
# for subject, logistics ones one of SIDE_SUBJECTS.
PRODUCT_PREDICATES: dict[Label, tuple[str, ...]] = {
    "positive": (
        "works perfectly",
        "lasts all week",
        "does exactly what it should",
        "exceeded my expectations",
        "has held up well",
        "never lets me down",
    ),
    "negative": (
        "stopped working",
        "died after a week",
        "keeps failing",
        "fell apart",
        "broke on the second day",
        "never worked properly",
    ),
}
SIDE_PREDICATES: dict[Label, tuple[str, ...]] = {
    "positive": (
        "arrived on time",
        "came a day early",
        "was quick",
        "arrived in one piece",
        "was right on schedule",
    ),
    "negative": (
        "arrived late",
        "took three weeks",
        "came dented",
        "was slow",
        "got lost twice",
    ),
}
VERDICTS: dict[Label, tuple[str, ...]] = {
    "positive": (
        "i would buy it again",
        "i would recommend it",
        "worth every penny",
        "five stars",
        "i kept it",
        "happy with it",
    ),
    "negative": (
        "i want a refund",
        "i would not recommend it",
        "i would not buy it again",
        "not worth the money",
        "one star",
        "i returned it",
    ),
}
INTROS = (
    "i bought this {product} for my {who}.",
    "ordered the {product} last {when}.",
    "got this {product} as a gift.",
    "we use the {product} every day.",
    "my {who} picked this {product}.",
    "this is my second {product}.",
    "after a {when} with the {product}:",
)
WHO = ("son", "daughter", "wife", "husband", "mother", "father", "office", "kitchen")
WHEN = ("week", "month", "year", "winter", "summer")
# Join a logistics clause and a product clause of opposite sentiment.
CONTRASTS = (", but ", ", yet ", "; however, ", ", although ", ", though ", ", while ")
PREPOSED = ("although ", "even though ", "while ")  # "although X, Y"
AGREES = (" and ", ", and ", ", and also ")


@dataclass(frozen=True)
class Review:
    text: str
    label: Label


@dataclass(frozen=True)
class Split:
    train: tuple[Review, ...]
    held_out: tuple[Review, ...]


def _other(label: Label) -> Label:
    return "positive" if label == "negative" else "negative"


def _clause(
    rng: random.Random,
    aspects: Sequence[str],
    subjects: Sequence[str],
    predicates: dict[Label, tuple[str, ...]],
    sentiment: Label,
    predicate_p: float,
    negate_p: float,
) -> str:
    """A clause about one aspect with the given sentiment (after negation)."""
    kind = rng.random()
    if kind < predicate_p:
        return f"{rng.choice(subjects)} {rng.choice(predicates[sentiment])}"
    aspect = rng.choice(aspects)
    if kind < predicate_p + negate_p:
        return f"{aspect} {rng.choice(NEGATED_COPULAS)} {rng.choice(ADJECTIVES[_other(sentiment)])}"
    return f"{aspect} {rng.choice(COPULAS)} {rng.choice(ADJECTIVES[sentiment])}"


def _review(rng: random.Random, label: Label) -> str:
    things = ("it", f"the {rng.choice(PRODUCTS)}")
    product = _clause(rng, PRODUCT_ASPECTS, things, PRODUCT_PREDICATES, label, 0.25, 0.2)
    shape = rng.random()
    if shape < 0.2:  # the product clause alone
        body = product
    else:
        agrees = shape >= 0.85
        side_sentiment = label if agrees else _other(label)
        side = _clause(
            rng, SIDE_ASPECTS, SIDE_SUBJECTS, SIDE_PREDICATES, side_sentiment, 0.85, 0.05
        )
        if agrees:
            first, second = (side, product) if rng.random() < 0.5 else (product, side)
            body = first + rng.choice(AGREES) + second
        elif shape < 0.45:  # "the screen is great, although the delivery was slow"
            body = product + rng.choice(CONTRASTS) + side
        elif shape < 0.55:  # "although the delivery was slow, the screen is great"
            body = rng.choice(PREPOSED) + side + ", " + product
        else:  # "the delivery was slow, but the screen is great"
            body = side + rng.choice(CONTRASTS) + product
    parts = [body]
    if rng.random() < 0.35:
        intro = rng.choice(INTROS).format(
            product=rng.choice(PRODUCTS), who=rng.choice(WHO), when=rng.choice(WHEN)
        )
        parts.insert(0, intro)
    text = " ".join(parts)
    if rng.random() < 0.3:
        text += ". " + rng.choice(VERDICTS[label])
    text += "."
    return ". ".join(sentence[0].upper() + sentence[1:] for sentence in text.split(". "))


def generate(seed: int = 0, count: int = 4000) -> list[Review]:
    """count reviews (half of each label, interleaved), then shuffled; duplicates dropped."""
    rng = random.Random(seed)
    reviews: list[Review] = []
    seen: set[str] = set()
    for index in range(count):
        label = LABELS[index % 2]
        text = _review(rng, label)
        if text.lower() not in seen:
            seen.add(text.lower())
            reviews.append(Review(text, label))
    rng.shuffle(reviews)
    return reviews


def split(seed: int = 0, count: int = 4000, held_out_fraction: float = 0.2) -> Split:
    reviews = generate(seed, count)
    cut = int(len(reviews) * (1 - held_out_fraction))
    return Split(tuple(reviews[:cut]), tuple(reviews[cut:]))


def golden_set(held_out: Sequence[Review], size: int = 48) -> list[Review]:
    """The first size // 2 held-out reviews of each label, in held-out order."""
    per_label = size // 2
    chosen: list[Review] = []
    counts = dict.fromkeys(LABELS, 0)
    for review in held_out:
        if counts[review.label] < per_label:
            counts[review.label] += 1
            chosen.append(review)
    if len(chosen) < 2 * per_label:
        raise ValueError(f"the held-out split has fewer than {per_label} reviews of a label")
    return chosen


def words(reviews: Sequence[Review]) -> list[str]:
    """The lower-case words of the reviews, most frequent first (ties alphabetical)."""
    counts: dict[str, int] = {}
    for review in reviews:
        for word in re.findall(r"[a-z0-9]+", review.text.lower()):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda word: (-counts[word], word))
