"""Digest manifest of a model directory, and its verification before serving.

A model directory holds safetensors weights, ``config.json`` and tokenizer files,
plus ``modeldr-manifest.json`` listing the sha256 and size of every one of them.
The server refuses to start unless every file matches, so a truncated copy, a
swapped weight file or a tampered tokenizer never serves traffic. The manifest's
own sha256 is the model's *digest*: pinning it (``--expected-digest``, the
ModelDeployment's artifact digest) pins every byte the server will load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from modeldr.kube.artifact import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    TASKS,
    FileEntry,
    Manifest,
    Task,
    is_plain_relative,
    normalize_digest,
    sha256_path,
)

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "TASKS",
    "ArtifactError",
    "FileEntry",
    "Manifest",
    "Task",
    "VerifiedModel",
    "normalize_digest",
    "read_manifest",
    "sha256_file",
    "verify_model_dir",
    "write_manifest",
]

# Formats that unpickle arbitrary Python objects when loaded: never loaded here.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


class ArtifactError(Exception):
    """The model directory cannot be trusted or used; the message names the file."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class VerifiedModel:
    """What verification established: the manifest, its digest and the weight files."""

    directory: Path
    manifest: Manifest
    digest: str
    weight_files: tuple[str, ...]


def sha256_file(path: Path) -> str:
    return sha256_path(path)


def _artifact_files(directory: Path) -> list[str]:
    """Relative POSIX paths of the files a manifest must cover.

    Hidden entries are skipped: Kubernetes volume mounts (ConfigMap ``..data``
    links) and editors put them there, and nothing is ever loaded from them.
    """
    found: list[str] = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") or part == "lost+found" for part in relative.parts):
            continue
        if path.is_file() and relative.as_posix() != MANIFEST_NAME:
            found.append(relative.as_posix())
    return found


def write_manifest(directory: Path, task: Task, revision: str) -> str:
    """Hash every artifact file of directory into its manifest; return the manifest digest."""
    files = {
        name: FileEntry(
            sha256=sha256_file(directory / name), size=(directory / name).stat().st_size
        )
        for name in _artifact_files(directory)
    }
    payload = Manifest(task=task, revision=revision, files=files).to_bytes()
    (directory / MANIFEST_NAME).write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def _check_relative(name: str, manifest_path: Path) -> None:
    if not is_plain_relative(name):
        raise ArtifactError(
            f"manifest {manifest_path} lists {name!r}, which is not a plain relative path",
            manifest_path,
        )


def read_manifest(directory: Path, expected_digest: str | None = None) -> tuple[Manifest, str]:
    """Parse the manifest and check its own digest (before trusting anything it says)."""
    if not directory.is_dir():
        raise ArtifactError(f"model directory {directory} does not exist", directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ArtifactError(
            f"missing manifest {manifest_path}: refusing to serve unverified weights "
            f"(write one with `modeldr-serve manifest {directory} --task TASK`)",
            manifest_path,
        )
    raw = manifest_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if expected_digest is not None and digest != normalize_digest(expected_digest):
        raise ArtifactError(
            f"manifest digest mismatch for {manifest_path}: expected sha256:"
            f"{normalize_digest(expected_digest)}, file has sha256:{digest}",
            manifest_path,
        )
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        # ValidationError is a ValueError; json.JSONDecodeError too. One line is enough.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"invalid manifest {manifest_path}: {first}", manifest_path) from exc
    for name in manifest.files:
        _check_relative(name, manifest_path)
    return manifest, digest


def verify_model_dir(directory: Path, expected_digest: str | None = None) -> VerifiedModel:
    """Check the manifest and every artifact file; raise ArtifactError naming the culprit."""
    directory = directory.resolve()
    manifest, digest = read_manifest(directory, expected_digest)
    manifest_path = directory / MANIFEST_NAME
    present = _artifact_files(directory)

    weights = tuple(name for name in manifest.files if name.endswith(".safetensors"))
    pickles = [name for name in sorted(set(present) | set(manifest.files)) if _is_pickle(name)]
    if not weights:
        if pickles:
            raise ArtifactError(
                f"pickle-only checkpoint {directory / pickles[0]}: modeldr loads safetensors "
                "weights only (convert the checkpoint to model.safetensors first)",
                directory / pickles[0],
            )
        raise ArtifactError(
            f"no safetensors weights listed in {manifest_path} (expected model.safetensors)",
            manifest_path,
        )
    if "config.json" not in manifest.files:
        raise ArtifactError(f"{manifest_path} does not list config.json", manifest_path)
    if not any(name in manifest.files for name in TOKENIZER_FILES):
        raise ArtifactError(
            f"{manifest_path} lists no tokenizer file (one of {', '.join(TOKENIZER_FILES)})",
            manifest_path,
        )

    for name, entry in sorted(manifest.files.items()):
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"missing artifact file {path} (listed in {MANIFEST_NAME})", path)
        size = path.stat().st_size
        if size != entry.size:
            raise ArtifactError(
                f"size mismatch for {path}: manifest says {entry.size} bytes, file has {size}",
                path,
            )
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise ArtifactError(
                f"sha256 mismatch for {path}: manifest says {entry.sha256}, file has {actual}",
                path,
            )
    unlisted = [name for name in present if name not in manifest.files]
    if unlisted:
        path = directory / unlisted[0]
        raise ArtifactError(
            f"file {path} is not covered by {MANIFEST_NAME}: refusing to load a directory "
            "holding unverified artifacts",
            path,
        )
    return VerifiedModel(
        directory=directory, manifest=manifest, digest=digest, weight_files=tuple(sorted(weights))
    )


def _is_pickle(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in PICKLE_SUFFIXES
