"""The entry point of a ModelCorruption replica, run inside the model's own image:

    python3 -m modeldr.drills.faults.tamper --source DIR --copy DIR [--file NAME] -- CMD...

It copies the model directory (read-only where it is mounted; for an s3:// source, the model
fetched and verified from its store first) to a scratch directory of the pod (the `/tmp`
emptyDir), flips one byte in the middle of one artifact file (by default the
first safetensors weights the manifest lists; the size stays, so only the digest can tell),
then runs CMD (the model server) on the copy and exits with its exit code. The copy is removed
when the server exits and on SIGTERM, so nothing is left where the scratch directory outlives
the pod (the sandbox's process runtime has no emptyDir of its own).

Standard library only: the server image needs nothing else, and the server's own
verification is what the drill tests, untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

MANIFEST = "modeldr-manifest.json"
MODEL_DIR_ENV = "MODELDR_SERVE_MODEL_DIR"
# An s3:// source: the server would fetch it itself. The wrapper fetches it first (with the
# server's own `modeldr-serve fetch`, verified), corrupts the copy and serves that instead.
MODEL_SOURCE_ENV = "MODELDR_SERVE_MODEL_SOURCE"
DIGEST_ENV = "MODELDR_SERVE_EXPECTED_DIGEST"


def fetched_source(scratch: Path) -> Path | None:
    """With an s3:// source, the model fetched from its store into `scratch`; else None."""
    source = os.environ.get(MODEL_SOURCE_ENV)
    if not source:
        return None
    argv = [sys.executable, "-m", "modeldr.serving.cli", "fetch", source, str(scratch)]
    if os.environ.get(DIGEST_ENV):
        argv += ["--expected-digest", os.environ[DIGEST_ENV]]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    return Path(done.stdout.strip().splitlines()[-1])


def weights_file(directory: Path) -> str:
    """The file to corrupt by default: the first safetensors file the manifest lists."""
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        files = {}
    weights = sorted(str(name) for name in files if str(name).endswith(".safetensors"))
    if weights:
        return weights[0]
    found = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.safetensors"))
    if not found:
        raise SystemExit(f"modeldr tamper: no safetensors file in {directory} to corrupt")
    return found[0]


def corrupt_copy(source: Path, copy: Path, name: str | None) -> Path:
    """Copy `source` to `copy` and flip one byte of one file; returns the corrupted file."""
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(source, copy, symlinks=False)
    target = copy / (name or weights_file(source))
    data = bytearray(target.read_bytes())
    if not data:
        raise SystemExit(f"modeldr tamper: {target} is empty; nothing to flip")
    middle = len(data) // 2
    data[middle] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modeldr-tamper", description=__doc__)
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--copy", required=True, type=Path)
    parser.add_argument("--file", help="the artifact file to corrupt (relative to the model)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] if args.command else []
    if not command:
        parser.error("the server's command must follow --")
    copy: Path = args.copy
    fetched: Path | None = None
    try:
        fetched = fetched_source(copy.parent)
        target = corrupt_copy(fetched or args.source, copy, args.file)
        print(f"modeldr drill: corrupted {target} (one byte flipped)", file=sys.stderr, flush=True)
        env = {k: v for k, v in os.environ.items() if k != MODEL_SOURCE_ENV}
        server = subprocess.Popen(command, env={**env, MODEL_DIR_ENV: str(copy)})

        def forward(signum: int, frame: FrameType | None) -> None:
            server.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return server.wait()
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        if fetched is not None:
            shutil.rmtree(fetched, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
