"""`make bench-backups`: backups and restores between the sandbox's SeaweedFS stores.

On the sandbox (brought up if it is not; its three stores on loopback), for the tiny model
(the committed fixture, 409 KB) and for a generated 400 MB artifact (four 100 MB safetensors
shards of random bytes, the tiny model's config and tokenizer, its manifest):

1. publish (local directory -> the primary store), a full backup, a restore of it to the
   standby store and a verify-only restore: seconds and MB/s each;
2. a realistic change (a fine-tune that rewrites one shard, the config and the manifest),
   then a second one (another shard): the bytes an incremental and a differential backup copy
   after each, against the full backup's.

Writes bench/results/backups.json and prints the figures. Every byte is hashed on its way
(kube/backups.py), so the figures include verification.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from modeldr.kube import backups
from modeldr.serving.manifest import write_manifest
from sandbox.api import Sandbox
from sandbox.objectstores import location

RESULTS = Path(__file__).resolve().parent / "results" / "backups.json"
FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/models/tiny-review-bert"
SHARD_MB = 100
SHARDS = 4


def generated(directory: Path) -> Path:
    """A 400 MB model directory: four random 100 MB shards and the fixture's other files."""
    directory.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(FIXTURE / name, directory / name)
    for index in range(1, SHARDS + 1):
        shard = directory / f"model-{index:05d}-of-{SHARDS:05d}.safetensors"
        with shard.open("wb") as out:
            for _ in range(SHARD_MB):
                out.write(os.urandom(1 << 20))
    write_manifest(directory, "sequence-classification", "generated-400mb")
    return directory


def rewrite_shard(directory: Path, index: int, revision: str) -> None:
    shard = directory / f"model-{index:05d}-of-{SHARDS:05d}.safetensors"
    with shard.open("r+b") as out:
        for _ in range(SHARD_MB):
            out.write(os.urandom(1 << 20))
    config = json.loads((directory / "config.json").read_text())
    config["modeldr_revision"] = revision
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    write_manifest(directory, "sequence-classification", revision)


def timed(action: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    result = action()
    return result, time.monotonic() - t0


def one_model(label: str, directory: Path, tag: str, change: bool) -> dict[str, Any]:
    model = location("primary", f"s3://models/bench-{tag}/{label}")
    store = location("backup", f"s3://modeldr-backups/bench-{tag}/{label}")
    size = sum(p.stat().st_size for p in directory.iterdir())
    out: dict[str, Any] = {"bytes": size}
    _, seconds = timed(lambda: backups.publish(directory, model))
    out["publish"] = rate(size, seconds)
    full, seconds = timed(lambda: backups.run_backup(model, store, "full"))
    out["full_backup"] = {**rate(size, seconds), "copied_bytes": full.manifest.copied_bytes}
    listed, _ = backups.history(store)
    target = location("standby", f"s3://models/bench-{tag}/{label}-restored")
    _, seconds = timed(lambda: backups.restore(store, listed[-1], target))
    out["restore_to_standby"] = rate(size, seconds)
    _, seconds = timed(lambda: backups.restore(store, listed[-1], None))
    out["verify_only_restore"] = rate(size, seconds)
    if change:
        changes = []
        for index, revision in ((SHARDS, "fine-tune-1"), (SHARDS - 1, "fine-tune-2")):
            rewrite_shard(directory, index, revision)
            backups.publish(directory, model)
            incremental = backups.run_backup(model, store, "incremental").manifest
            differential = backups.run_backup(model, store, "differential").manifest
            changes.append(
                {
                    "change": f"shard {index} rewritten, config.json and the manifest",
                    "full_bytes": size,
                    "incremental_bytes": incremental.copied_bytes,
                    "differential_bytes": differential.copied_bytes,
                }
            )
        out["changes"] = changes
    return out


def rate(size: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "mb_per_s": round(size / 1e6 / seconds, 1)}


def main() -> None:
    Sandbox().up()  # idempotent: the stores are part of it
    tag = str(int(time.time()))
    with tempfile.TemporaryDirectory(prefix="modeldr-bench-") as scratch:
        tiny = Path(scratch) / "tiny"
        shutil.copytree(FIXTURE, tiny)
        results = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "stores": "SeaweedFS weed mini on loopback (sandbox/objectstores.py)",
            "tiny_model": one_model("tiny", tiny, tag, change=False),
            "generated_400mb": one_model("big", generated(Path(scratch) / "big"), tag, True),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
