"""Two more versions of the sandbox's model for the rollout examples (docs/models.md), from
committed files so their digests are the same on every machine:

- `tiny-bert-v2`: a copy of tests/fixtures/models/tiny-review-bert-v2, the same recipe
  trained twice as long (`tiny-review-seed0-epochs20`): held-out F1 0.968 against the
  serving version's 0.962, 0.979 on the golden set (which holds reviews the serving version
  answers right); a verified rollout that allows maxF1Drop 0.05 promotes it;
- `tiny-bert-swapped`: the serving version (tests/fixtures/models/tiny-review-bert) with the
  labels of config.json swapped (`tiny-review-seed0-swapped`): a deliberately worse version
  that answers the opposite label; a verified rollout rolls it back on the standby.

examples/sandbox/rollout-good.yaml and rollout-bad.yaml pin their digests
(tests/unit/test_model_versions.py checks them against what this module writes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Final

from modeldr.serving.manifest import MANIFEST_NAME, verify_model_dir, write_manifest
from sandbox.operator_up import TINY_MODEL, TINY_MODEL_FIXTURE, install_model

MODELS = TINY_MODEL.parent
GOOD = MODELS / "tiny-bert-v2"
SWAPPED = MODELS / "tiny-bert-swapped"
GOOD_FIXTURE = TINY_MODEL_FIXTURE.parent / "tiny-review-bert-v2"
SWAPPED_REVISION = "tiny-review-seed0-swapped"
TASK: Final = "sequence-classification"


def write_good(directory: Path) -> str:
    shutil.copytree(GOOD_FIXTURE, directory)
    digest = hashlib.sha256((GOOD_FIXTURE / MANIFEST_NAME).read_bytes()).hexdigest()
    verify_model_dir(directory, digest)
    return digest


def write_swapped(directory: Path) -> str:
    shutil.copytree(TINY_MODEL_FIXTURE, directory)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    swapped = list(reversed(labels))
    config["id2label"] = {str(i): label for i, label in enumerate(swapped)}
    config["label2id"] = {label: i for i, label in enumerate(swapped)}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return write_manifest(directory, TASK, SWAPPED_REVISION)


def ensure_model_versions() -> dict[str, str]:
    """Write both versions beside the sandbox's model; their manifest digests by name."""
    return {
        target.name: install_model(target, write)
        for target, write in ((GOOD, write_good), (SWAPPED, write_swapped))
    }
