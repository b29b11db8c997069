"""The model artifact's digest manifest (`modeldr-manifest.json`): its schema and digest rules.

Shared by the server (which verifies a model directory against it before serving), the
object-store fetch and the backups (which diff manifests to decide what to copy). The
manifest's own sha256 is the model's digest: pinning it pins every byte the server loads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "modeldr-manifest.json"
MANIFEST_SCHEMA = "modeldr.manifest/v1"
Task = Literal["sequence-classification", "feature-extraction"]
TASKS: tuple[Task, ...] = ("sequence-classification", "feature-extraction")


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["modeldr.manifest/v1"] = Field(default="modeldr.manifest/v1", alias="schema")
    task: Task
    revision: str = Field(min_length=1, max_length=200)
    files: dict[str, FileEntry]

    def to_bytes(self) -> bytes:
        """The canonical file bytes (what write_manifest writes and the digest covers)."""
        payload = json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=True) + "\n"
        return payload.encode("utf-8")


def normalize_digest(value: str) -> str:
    """Accept ``sha256:<hex>`` or bare hex, as image references and CRDs spell it."""
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a sha256 digest: {value!r} (want 64 hex digits, optionally sha256:)")
    return text


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_plain_relative(name: str) -> bool:
    """A manifest entry must stay inside the model directory: no absolute path, no '..'."""
    pure = PurePosixPath(name)
    return bool(pure.parts) and not pure.is_absolute() and ".." not in pure.parts


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
