"""Fetch a model directory from an S3-compatible store before serving it.

`spec.model.source: s3://bucket/prefix`: the server reads `modeldr-manifest.json` under the
prefix, checks its digest against the pinned one before trusting anything it lists, then
downloads every listed file into a fresh local directory, which manifest.verify_model_dir
checks byte for byte as for any other source. When its own store does not answer and a
fallback store is configured (the other region's copy, or the backup store), it loads from
that one instead, under the same checks, and says so. A store that answers but lacks the
model is not an outage: the server refuses, naming the missing object.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from modeldr.kube import objectstore
from modeldr.kube.artifact import (
    MANIFEST_NAME,
    Manifest,
    is_plain_relative,
    normalize_digest,
    sha256_bytes,
)
from modeldr.kube.objectstore import S3Url, StoreConfig, StoreUnreachable
from modeldr.serving.manifest import ArtifactError

log = logging.getLogger("modeldr.serving.fetch")


@dataclass(frozen=True)
class Fetched:
    directory: Path
    store: str  # the name of the store the files came from
    files: int
    bytes: int
    seconds: float


def fetch_model(
    source: str,
    stores: list[StoreConfig],
    parent: Path,
    expected_digest: str | None,
) -> Fetched:
    """Download the model at `source` from the first store that answers into a new directory
    under `parent`. Raises ArtifactError (refuse to start) with every store's reason."""
    url = S3Url.parse(source)
    if not stores:
        raise ArtifactError(
            f"model source {source} needs a store: set MODELDR_STORE_ENDPOINT, "
            "MODELDR_STORE_REGION and the credentials (the ModelDeployment's store Secret)"
        )
    reasons: list[str] = []
    for index, store in enumerate(stores):
        try:
            fetched = _fetch_from(url, store, parent, expected_digest)
        except StoreUnreachable as exc:
            reasons.append(str(exc))
            if index + 1 < len(stores):
                log.warning("%s; trying the fallback store %s", exc, stores[index + 1].name)
            continue
        except objectstore.StoreError as exc:
            raise ArtifactError(f"cannot fetch the model: {exc}") from exc
        if index:
            log.warning("model loaded from the fallback store %s (%s)", store.name, store.endpoint)
        return fetched
    raise ArtifactError("cannot fetch the model, no store answered: " + "; ".join(reasons))


def _fetch_from(
    url: S3Url, store: StoreConfig, parent: Path, expected_digest: str | None
) -> Fetched:
    t0 = time.monotonic()
    s3 = objectstore.client(store)
    raw = objectstore.get_bytes(s3, store, url, MANIFEST_NAME)
    digest = sha256_bytes(raw)
    if expected_digest is not None and digest != normalize_digest(expected_digest):
        raise ArtifactError(
            f"manifest digest mismatch for {url.child(MANIFEST_NAME)} in store {store.name}: "
            f"expected sha256:{normalize_digest(expected_digest)}, the store has sha256:{digest}"
        )
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"invalid manifest {url.child(MANIFEST_NAME)}: {first}") from exc
    for name in manifest.files:
        if not is_plain_relative(name):
            raise ArtifactError(f"{url.child(MANIFEST_NAME)} lists {name!r}: not a plain path")
    parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="model-", dir=parent))
    try:
        (directory / MANIFEST_NAME).write_bytes(raw)
        for name in sorted(manifest.files):
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            objectstore.download(s3, store, url, name, target)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    total = sum(entry.size for entry in manifest.files.values())
    seconds = time.monotonic() - t0
    log.info(
        "fetched %d files (%d bytes) of %s from store %s in %.2f s",
        len(manifest.files),
        total,
        url,
        store.name,
        seconds,
    )
    return Fetched(directory, store.name, len(manifest.files), total, seconds)
