"""The rollout examples' model versions (sandbox/model_versions.py): made from the committed
fixture, the same bytes everywhere, and pinned by examples/sandbox/rollout-*.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from modeldr.serving.manifest import verify_model_dir
from sandbox.model_versions import GOOD, SWAPPED, write_good, write_swapped
from sandbox.objectstores import EXAMPLE_MODELS

ROOT = Path(__file__).resolve().parents[2]


def pinned(example: str) -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "examples/sandbox" / example).read_text())
    return dict(doc["spec"]["model"])


def test_the_examples_pin_what_the_sandbox_writes(tmp_path: Path) -> None:
    for example, directory, write in (
        ("rollout-good.yaml", GOOD, write_good),
        ("rollout-bad.yaml", SWAPPED, write_swapped),
    ):
        model = pinned(example)
        digest = write(tmp_path / directory.name)
        assert model["expectedDigest"] == f"sha256:{digest}", example
        # The sandbox publishes the directory under its name in its object stores.
        assert model["source"] == f"s3://models/{directory.name}"
        assert directory.name in EXAMPLE_MODELS
        verify_model_dir(tmp_path / directory.name, model["expectedDigest"])
        assert (
            json.loads((tmp_path / directory.name / "modeldr-manifest.json").read_text())[
                "revision"
            ]
            == model["revision"]
        )


def test_the_worse_version_answers_the_opposite_label(tmp_path: Path) -> None:
    write_swapped(tmp_path / "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["id2label"] == {"0": "positive", "1": "negative"}
    assert config["label2id"] == {"positive": 0, "negative": 1}


def test_the_better_version_is_recorded_better_on_the_held_out_split() -> None:
    v1 = json.loads((ROOT / "tests/fixtures/models/tiny-review-bert.json").read_text())
    v2 = json.loads((ROOT / "tests/fixtures/models/tiny-review-bert-v2.json").read_text())
    assert v2["heldOut"]["examples"] == v1["heldOut"]["examples"]  # the same split
    assert v2["heldOut"]["f1"] > v1["heldOut"]["f1"]
    assert v2["digest"] == pinned("rollout-good.yaml")["expectedDigest"]
