"""The trained tiny review classifier as the sandbox serves it: the committed fixture, its
digest in the examples, the golden set drawn from its held-out split, the generated data set
(torch-free; training itself is tested in tests/serving/test_train_tiny.py) and the sandbox
copy of the fixture that every ModelDeployment example reads."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from modeldr.kube.golden import parse_golden_set
from modeldr.kube.golden import score as drill_score
from modeldr.serving.manifest import MANIFEST_NAME, read_manifest, verify_model_dir
from modeldr.serving.reviews import LABELS, generate, golden_set, split
from sandbox.operator_up import TINY_MODEL_FIXTURE, ensure_tiny_model

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/models/tiny-review-bert"
SUMMARY = json.loads((ROOT / "tests/fixtures/models/tiny-review-bert.json").read_text())
EXAMPLE = yaml.safe_load((ROOT / "examples/sandbox/modeldeployment.yaml").read_text())
GOLDEN = yaml.safe_load((ROOT / "examples/sandbox/golden-set.yaml").read_text())
PLAN = yaml.safe_load((ROOT / "examples/sandbox/drillplan.yaml").read_text())


def golden_rows() -> list[dict[str, str]]:
    text = GOLDEN["data"]["golden.jsonl"]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_fixture_verifies_against_the_example_digest() -> None:
    model = EXAMPLE["spec"]["model"]
    verified = verify_model_dir(FIXTURE, model["expectedDigest"])
    assert f"sha256:{verified.digest}" == SUMMARY["digest"] == model["expectedDigest"]
    assert verified.manifest.revision == SUMMARY["revision"] == model["revision"]
    assert verified.manifest.task == model["task"] == "sequence-classification"
    assert TINY_MODEL_FIXTURE == FIXTURE
    # Served from the sandbox's object stores, where operator_up publishes this fixture.
    assert model["source"] == "s3://models/tiny-bert"


def test_fixture_is_small_and_shaped_like_the_summary() -> None:
    size = sum(path.stat().st_size for path in FIXTURE.iterdir())
    assert size < 450_000, f"the fixture grew to {size} bytes"
    config = json.loads((FIXTURE / "config.json").read_text())
    settings = SUMMARY["settings"]
    assert config["hidden_size"] == settings["hidden_size"] == 64
    assert config["num_hidden_layers"] == settings["num_hidden_layers"] == 2
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert SUMMARY["parameters"] < 1_000_000
    assert SUMMARY["heldOut"]["accuracy"] >= 0.9 and SUMMARY["heldOut"]["f1"] >= 0.9


def test_no_test_asserts_the_old_random_digest() -> None:
    old = "c892ebf9d1b1cb3fbbff5e9ba92bf4bc650714428d033ac198ce88adf44cf4ce"
    for folder in ("examples", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".yaml", ".md"}:
                assert old not in path.read_text(), f"{path} still pins the random model"


def test_data_set_is_deterministic_balanced_and_split_by_text() -> None:
    assert generate(3, 300) == generate(3, 300)
    assert generate(3, 300) != generate(4, 300)
    data = split(0)
    assert len(data.train) > 3000 and len(data.held_out) > 700
    assert not {r.text.lower() for r in data.train} & {r.text.lower() for r in data.held_out}
    counts = Counter(r.label for r in data.held_out)
    assert min(counts.values()) / max(counts.values()) > 0.8, counts


def test_the_first_words_do_not_decide() -> None:
    """The majority label of a review's first three words, learned on the training split,
    is little better than a coin on the held-out one."""
    data = split(0)

    def key(text: str) -> str:
        return " ".join(text.lower().replace(",", " ").split()[:3])

    votes: dict[str, Counter[str]] = {}
    for review in data.train:
        votes.setdefault(key(review.text), Counter())[review.label] += 1
    fallback = Counter(r.label for r in data.train).most_common(1)[0][0]
    guesses = [
        votes[key(r.text)].most_common(1)[0][0] if key(r.text) in votes else fallback
        for r in data.held_out
    ]
    correct = sum(g == r.label for g, r in zip(guesses, data.held_out, strict=True))
    assert correct / len(data.held_out) < 0.7


def test_a_bag_of_words_stays_below_the_trained_model() -> None:
    """Naive Bayes over word counts: word order (which clause, negated or not) matters."""
    data = split(0)
    counts: dict[str, Counter[str]] = {label: Counter() for label in LABELS}
    priors: Counter[str] = Counter(r.label for r in data.train)
    for review in data.train:
        counts[review.label].update(re.findall(r"[a-z]+", review.text.lower()))
    vocabulary = len(set().union(*counts.values()))

    def log_odds(label: str, words: list[str]) -> float:
        total = float(sum(counts[label].values()) + vocabulary)
        odds = math.log(priors[label])
        for word in words:
            odds += math.log((counts[label][word] + 1) / total)
        return odds

    def guess(text: str) -> str:
        words = re.findall(r"[a-z]+", text.lower())
        return max(LABELS, key=lambda label: log_odds(label, words))

    correct = sum(guess(r.text) == r.label for r in data.held_out) / len(data.held_out)
    assert 0.7 < correct < SUMMARY["heldOut"]["accuracy"] - 0.05


def test_golden_set_is_the_held_out_draw() -> None:
    rows = golden_rows()
    assert GOLDEN["metadata"]["name"] == "tiny-bert-golden"
    assert PLAN["spec"]["modelChecks"]["goldenSet"]["configMapRef"] == {
        "name": "tiny-bert-golden",
        "key": "golden.jsonl",
    }
    data = split(0)
    drawn = golden_set(data.held_out, 48)
    assert rows == [{"text": r.text, "label": r.label} for r in drawn]
    assert Counter(row["label"] for row in rows) == dict.fromkeys(LABELS, 24)
    assert not {row["text"] for row in rows} & {r.text for r in data.train}
    assert len({row["text"] for row in rows}) == len(rows)


@pytest.mark.parametrize("label", LABELS)
def test_one_label_everywhere_fails_the_example_bar(label: str) -> None:
    golden = parse_golden_set(GOLDEN["data"]["golden.jsonl"])  # as the drill reads it
    scores = drill_score(golden, [label] * len(golden))
    assert scores.f1 == pytest.approx(1 / 3)
    assert scores.f1 < PLAN["spec"]["modelChecks"]["minF1"] == 0.8


def test_ensure_tiny_model_copies_keeps_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny-bert"
    digest = ensure_tiny_model(target)
    assert f"sha256:{digest}" == EXAMPLE["spec"]["model"]["expectedDigest"]
    assert verify_model_dir(target, digest).digest == digest
    weights = target / "model.safetensors"

    # A good copy is kept as it is.
    before = weights.stat().st_mtime_ns
    os.utime(weights, ns=(before - 10**9, before - 10**9))
    kept = weights.stat().st_mtime_ns
    assert ensure_tiny_model(target) == digest
    assert weights.stat().st_mtime_ns == kept

    # A damaged copy is replaced.
    weights.write_bytes(b"\0" * 16)
    assert ensure_tiny_model(target) == digest
    verify_model_dir(target, digest)

    # So is another model (the random-weight tiny-model of old): a different manifest.
    shutil.rmtree(target)
    target.mkdir()
    (target / MANIFEST_NAME).write_text("{}")
    (target / "stray.bin").write_bytes(b"pickle")
    assert ensure_tiny_model(target) == digest
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in FIXTURE.iterdir())
    assert read_manifest(target)[1] == digest
    assert [p.name for p in target.parent.iterdir()] == ["tiny-bert"]  # no staging left
