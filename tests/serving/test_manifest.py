"""Manifest writing and verification: every refusal names the file at fault."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modeldr.serving.manifest import (
    MANIFEST_NAME,
    ArtifactError,
    normalize_digest,
    read_manifest,
    verify_model_dir,
    write_manifest,
)

pytestmark = pytest.mark.serving


def make_dir(root: Path, weights: str = "model.safetensors") -> Path:
    """A directory shaped like a model; verification only hashes, so bytes are arbitrary."""
    root.mkdir()
    (root / "config.json").write_text('{"hidden_size": 8}')
    (root / weights).write_bytes(b"\x00weights" * 100)
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (root / "tokenizer.json").write_text("{}")
    return root


def test_roundtrip_and_digest_is_manifest_hash(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    digest = write_manifest(directory, "sequence-classification", "r1")
    assert digest == hashlib.sha256((directory / MANIFEST_NAME).read_bytes()).hexdigest()
    verified = verify_model_dir(directory, expected_digest=f"sha256:{digest}")
    assert verified.digest == digest
    assert verified.weight_files == ("model.safetensors",)
    assert set(verified.manifest.files) == {
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer.json",
    }


def test_manifest_is_reproducible(tmp_path: Path) -> None:
    first = write_manifest(make_dir(tmp_path / "a"), "feature-extraction", "r1")
    second = write_manifest(make_dir(tmp_path / "b"), "feature-extraction", "r1")
    assert first == second


def test_tampered_weights_named(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[3] ^= 0xFF  # same size, different bytes: only the sha256 can tell
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for .*model\.safetensors") as info:
        verify_model_dir(directory)
    assert info.value.path == weights


def test_size_mismatch_named(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    (directory / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(ArtifactError, match=r"size mismatch for .*vocab\.txt"):
        verify_model_dir(directory)


def test_missing_file_named(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match=r"missing artifact file .*tokenizer\.json"):
        verify_model_dir(directory)


def test_missing_manifest(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    with pytest.raises(ArtifactError, match="missing manifest"):
        verify_model_dir(directory)


def test_expected_digest_mismatch(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    with pytest.raises(ArtifactError, match=r"manifest digest mismatch .*expected sha256:0{64}"):
        verify_model_dir(directory, expected_digest="0" * 64)


def test_edited_manifest_changes_digest(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    digest = write_manifest(directory, "sequence-classification", "r1")
    path = directory / MANIFEST_NAME
    path.write_text(path.read_text().replace('"r1"', '"r2"'))
    with pytest.raises(ArtifactError, match="manifest digest mismatch"):
        read_manifest(directory, digest)


def test_unlisted_file_refused(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    (directory / "extra.safetensors").write_bytes(b"sneaky")
    with pytest.raises(ArtifactError, match=r"extra\.safetensors is not covered"):
        verify_model_dir(directory)


def test_hidden_entries_ignored(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    (directory / "..data").mkdir()  # what a Kubernetes ConfigMap/projected mount adds
    (directory / "..data" / "x").write_text("y")
    verify_model_dir(directory)


def test_pickle_only_checkpoint_refused(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m", weights="pytorch_model.bin")
    write_manifest(directory, "sequence-classification", "r1")
    with pytest.raises(ArtifactError, match=r"pickle-only checkpoint .*pytorch_model\.bin"):
        verify_model_dir(directory)


def test_path_traversal_refused(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    write_manifest(directory, "sequence-classification", "r1")
    path = directory / MANIFEST_NAME
    document = json.loads(path.read_text())
    document["files"]["../outside"] = document["files"]["vocab.txt"]
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactError, match="not a plain relative path"):
        verify_model_dir(directory)


def test_invalid_manifest(tmp_path: Path) -> None:
    directory = make_dir(tmp_path / "m")
    (directory / MANIFEST_NAME).write_text('{"task": "translation"}')
    with pytest.raises(ArtifactError, match="invalid manifest"):
        verify_model_dir(directory)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("sha256:" + "A" * 64, "a" * 64), ("b" * 64, "b" * 64), (" sha256:" + "c" * 64, "c" * 64)],
)
def test_normalize_digest(value: str, expected: str) -> None:
    assert normalize_digest(value) == expected


@pytest.mark.parametrize("value", ["sha256:abc", "g" * 64, "md5:" + "a" * 32])
def test_normalize_digest_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="not a sha256 digest"):
        normalize_digest(value)
