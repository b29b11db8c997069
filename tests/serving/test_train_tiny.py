"""`modeldr-serve train-tiny` and the trained fixture the sandbox serves.

Training is tested at a reduced size (a few seconds): it learns, and the same seed gives
the same bytes. The committed fixture (tests/fixtures/models/tiny-review-bert, trained at
full size) is loaded through the server's own path (manifest verification, loader,
inference engine, and a real `modeldr-serve run` process) and must tell a positive review
from a negative one, score its held-out split as recorded, and pass the example drill's bar
on the golden set.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest
import yaml

from modeldr.serving.config import ServeConfig
from modeldr.serving.engine import InferenceEngine
from modeldr.serving.loader import load_model
from modeldr.serving.manifest import verify_model_dir
from modeldr.serving.reviews import LABELS, split
from modeldr.serving.train_tiny import Metrics, TrainSettings, score, train
from tests.serving.conftest import Launcher, ModelDir, run_cli

pytestmark = pytest.mark.serving

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/models/tiny-review-bert"
SUMMARY = json.loads((ROOT / "tests/fixtures/models/tiny-review-bert.json").read_text())
EXAMPLE_DIGEST = yaml.safe_load((ROOT / "examples/sandbox/modeldeployment.yaml").read_text())[
    "spec"
]["model"]["expectedDigest"]
QUICK = dataclasses.replace(TrainSettings(), reviews=2000, epochs=3)
POSITIVE = "The delivery took three weeks, but the sound is excellent. I would buy it again."
NEGATIVE = "The parcel arrived on time, but the screen stopped working. I want a refund."


def test_score_is_the_drills_macro_average() -> None:
    metrics = score(["positive", "positive", "negative", "negative"], ["positive"] * 4)
    assert metrics == Metrics(accuracy=0.5, precision=0.25, recall=0.5, f1=1 / 3, examples=4)
    with pytest.raises(ValueError):
        score([], [])


def test_training_learns_and_is_reproducible(tmp_path: Path) -> None:
    first = train(tmp_path / "a", seed=7, settings=QUICK)
    second = train(tmp_path / "b", seed=7, settings=QUICK)
    assert first.digest == second.digest
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert first.metrics == second.metrics
    assert first.metrics.accuracy >= 0.75 and first.metrics.f1 >= 0.75, first.metrics
    assert first.metrics.examples > 300 and first.train_examples > 1000
    assert first.parameters < 1_000_000
    assert first.seconds < 60  # a few seconds on an idle CPU
    manifest = verify_model_dir(tmp_path / "a", first.digest).manifest
    assert manifest.revision == "tiny-review-seed7"
    assert {r.label for r in first.golden} == set(LABELS) and len(first.golden) == 48
    with pytest.raises(FileExistsError):
        train(tmp_path / "a", seed=7, settings=QUICK)


# How far the held-out F1 of the fixture retrained on another CPU may fall from the recorded
# one (docs/sandbox.md): a CPU that rounds otherwise takes another path through training.
F1_BOUND = 0.05


def test_retraining_the_fixture_gives_its_bytes_here_or_its_f1_within_the_bound(
    tmp_path: Path,
) -> None:
    """The fixture's recorded command, at full size, as CI runs it on its machine: the same
    bytes where the CPU rounds as the one that trained it did; elsewhere a model whose
    held-out F1 is within F1_BOUND of the recorded one. Which of the two held is printed."""
    settings = TrainSettings(**SUMMARY["settings"])
    result = train(tmp_path / "m", seed=SUMMARY["seed"], settings=settings)
    recorded = SUMMARY["heldOut"]["f1"]
    same = f"sha256:{result.digest}" == SUMMARY["digest"]
    print(
        f"\nretrained in {result.seconds:.1f} s: "
        + ("the committed bytes" if same else f"other bytes (sha256:{result.digest[:12]}…)")
        + f", held-out F1 {result.metrics.f1:.4f} (recorded {recorded:.4f})"
    )
    assert abs(result.metrics.f1 - recorded) <= F1_BOUND, result.metrics
    if same:
        assert result.metrics == Metrics(**SUMMARY["heldOut"])


def test_cli_train_tiny_another_seed(tmp_path: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    made = run_cli(
        "train-tiny",
        str(tmp_path / "m"),
        "--seed",
        "8",
        "--reviews",
        "2000",
        "--epochs",
        "3",
        "--golden-set",
        str(golden),
        "--golden-size",
        "10",
    )
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["revision"] == "tiny-review-seed8" and summary["seed"] == 8
    assert summary["heldOut"]["accuracy"] >= 0.75
    assert summary["digest"] != SUMMARY["digest"]
    checked = run_cli("verify", str(tmp_path / "m"), "--expected-digest", summary["digest"])
    assert checked.returncode == 0, checked.stderr
    rows = [json.loads(line) for line in golden.read_text().splitlines()]
    assert len(rows) == 10 and {row["label"] for row in rows} == set(LABELS)


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    """The fixture through the server's loading path: verify, load, engine."""
    verified = verify_model_dir(FIXTURE, EXAMPLE_DIGEST)
    config = ServeConfig(model_dir=FIXTURE, model_name="tiny-bert", cpu_threads=1, device="cpu")
    return InferenceEngine(load_model(config, verified), truncate=False)


def classify(engine: InferenceEngine, texts: list[str]) -> list[str]:
    labels = engine.loaded.labels
    return [labels[int(row.argmax())] for row in engine.run(engine.tokenize(texts))]


def test_fixture_tells_positive_from_negative(engine: InferenceEngine) -> None:
    assert engine.loaded.labels == LABELS
    assert classify(engine, [POSITIVE, NEGATIVE]) == ["positive", "negative"]


def test_fixture_scores_its_held_out_split_as_recorded(engine: InferenceEngine) -> None:
    held_out = split(SUMMARY["seed"], SUMMARY["settings"]["reviews"]).held_out
    guesses: list[str] = []
    for start in range(0, len(held_out), 64):
        guesses.extend(classify(engine, [r.text for r in held_out[start : start + 64]]))
    metrics = score([r.label for r in held_out], guesses)
    recorded = SUMMARY["heldOut"]
    assert metrics.examples == recorded["examples"]
    # Inference batches differ from training's; allow a near-tie or two to flip.
    assert metrics.accuracy == pytest.approx(recorded["accuracy"], abs=0.01)
    assert metrics.f1 == pytest.approx(recorded["f1"], abs=0.01)
    assert metrics.accuracy >= 0.9


def test_fixture_passes_the_example_bar_on_the_golden_set(engine: InferenceEngine) -> None:
    golden = yaml.safe_load((ROOT / "examples/sandbox/golden-set.yaml").read_text())
    plan = yaml.safe_load((ROOT / "examples/sandbox/drillplan.yaml").read_text())
    rows = [json.loads(line) for line in golden["data"]["golden.jsonl"].splitlines()]
    metrics = score([r["label"] for r in rows], classify(engine, [r["text"] for r in rows]))
    assert metrics.f1 >= plan["spec"]["modelChecks"]["minF1"], metrics


def test_a_server_serves_the_fixture(start_server: Launcher) -> None:
    server = start_server(
        ModelDir(FIXTURE, EXAMPLE_DIGEST.removeprefix("sha256:")),
        "--expected-digest",
        EXAMPLE_DIGEST,
        name="tiny-bert",
    )
    answer = httpx.post(server.url("/predict"), json={"texts": [POSITIVE, NEGATIVE]}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == ["positive", "negative"]
    assert EXAMPLE_DIGEST.removeprefix("sha256:") in server.log()
