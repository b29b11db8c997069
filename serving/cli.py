"""``modeldr-serve``: run the model server, generate or train a tiny model, write/verify manifests.

Exit codes: 0 clean exit (including a drained shutdown), 1 runtime failure
(model load, bind), 2 bad configuration, 3 untrusted or unusable model artifacts.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modeldr.serving.config import ServeConfig, add_config_arguments, describe_error, load_config
from modeldr.serving.manifest import (
    TASKS,
    ArtifactError,
    VerifiedModel,
    verify_model_dir,
    write_manifest,
)

EXIT_CONFIG = 2
EXIT_ARTIFACT = 3

log = logging.getLogger("modeldr.serving")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldr-serve",
        description="BERT/Transformer model server (Open Inference Protocol V2, dynamic batching)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="serve a model directory",
        description="Serve a verified model directory. Every option can also be set from "
        "the environment variable named in its help.",
    )
    add_config_arguments(run)

    tiny = commands.add_parser(
        "tiny-model", help="write a random-weight BERT (tiny or BERT-base shaped) and manifest"
    )
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--task", choices=TASKS, default="sequence-classification")
    tiny.add_argument("--preset", choices=("tiny", "bert-base"), default="tiny")
    tiny.add_argument("--labels", default="negative,positive", help="comma-separated labels")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--revision", default=None, help="revision recorded in the manifest")

    trained = commands.add_parser(
        "train-tiny",
        help="train the tiny review classifier on a generated data set; print held-out metrics",
        description="Generate a review data set from the seed, train a tiny BERT "
        "classifier (about 100k parameters) on one CPU thread, score it on the held-out "
        "split and write the model directory with its manifest. Same seed on the same machine "
        "(CPU, torch version): same bytes; another CPU may differ (docs/sandbox.md).",
    )
    trained.add_argument("directory", type=Path)
    trained.add_argument("--seed", type=int, default=0)
    trained.add_argument("--epochs", type=int, default=None, help="default: 10")
    trained.add_argument("--reviews", type=int, default=None, help="generated, default: 4000")
    trained.add_argument(
        "--golden-set", type=Path, default=None, help="also write held-out golden set JSON lines"
    )
    trained.add_argument("--golden-size", type=int, default=48)

    _add_artifact_commands(commands)
    return parser


def _add_artifact_commands(commands: Any) -> None:
    """manifest, fetch, verify: the model artifact's own commands."""
    manifest = commands.add_parser(
        "manifest", help="write modeldr-manifest.json for an existing model directory"
    )
    manifest.add_argument("directory", type=Path)
    manifest.add_argument("--task", choices=TASKS, required=True)
    manifest.add_argument("--revision", required=True)

    fetch = commands.add_parser(
        "fetch",
        help="fetch a model from its store (MODELDR_STORE_*, else MODELDR_FALLBACK_STORE_*) "
        "into a new directory under PARENT, verified; prints the directory",
    )
    fetch.add_argument("source", help="s3://bucket/prefix")
    fetch.add_argument("parent", type=Path)
    fetch.add_argument("--expected-digest", default=None)

    verify = commands.add_parser("verify", help="check a model directory against its manifest")
    verify.add_argument("directory", type=Path)
    verify.add_argument("--expected-digest", default=None)


def unpinned_digest_warning(directory: Path, digest: str) -> str:
    return (
        f"no expected digest pinned (--expected-digest / MODELDR_SERVE_EXPECTED_DIGEST): "
        f"serving whatever manifest {directory} holds (sha256:{digest}); its files match "
        "that manifest, but nothing proves it is the intended model. Pin the digest "
        "(the ModelDeployment's spec.model.expectedDigest) in production"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(vars(args))
    except ValidationError as exc:
        print(f"modeldr-serve: invalid configuration: {describe_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(config.log_level)
    fetched: Path | None = None
    try:
        directory = config.model_dir
        if config.model_source:
            fetched = directory = _fetch(config)
        verified = verify_model_dir(directory, config.expected_digest)
    except (ArtifactError, ValueError) as exc:
        print(f"modeldr-serve: refusing to start: {exc}", file=sys.stderr)
        _remove(fetched)
        return EXIT_ARTIFACT
    try:
        return _serve(config, verified)
    finally:
        _remove(fetched)


def _fetch(config: ServeConfig) -> Path:
    """The model's files from its store (or the fallback store) into a new directory."""
    assert config.model_source is not None
    return _fetch_to(config.model_source, config.model_dir, config.expected_digest)


def _fetch_to(source: str, parent: Path, expected_digest: str | None) -> Path:
    from modeldr.kube.objectstore import FALLBACK_STORE_ENV, STORE_ENV, StoreConfig
    from modeldr.serving.fetch import fetch_model

    stores = [
        store
        for store in (
            StoreConfig.from_env("own", STORE_ENV),
            StoreConfig.from_env("fallback", FALLBACK_STORE_ENV),
        )
        if store is not None
    ]
    return fetch_model(source, stores, parent, expected_digest).directory


def _fetch_command(args: argparse.Namespace) -> int:
    directory: Path | None = None
    try:
        directory = _fetch_to(args.source, args.parent, args.expected_digest)
        verify_model_dir(directory, args.expected_digest)
    except (ArtifactError, ValueError) as exc:
        print(f"modeldr-serve: fetch failed: {exc}", file=sys.stderr)
        _remove(directory)
        return EXIT_ARTIFACT
    print(directory)
    return 0


def _remove(directory: Path | None) -> None:
    # A fetched copy is this process's own: the next start fetches (and verifies) again.
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _serve(config: ServeConfig, verified: VerifiedModel) -> int:
    log.info(
        "verified %d artifact files of %s (manifest digest sha256:%s)",
        len(verified.manifest.files),
        verified.directory,
        verified.digest,
    )
    if config.expected_digest is None:
        log.warning(unpinned_digest_warning(verified.directory, verified.digest))
    if config.cpu_threads is not None:
        # The numpy backend's BLAS (OpenBLAS in numpy's wheels) reads its thread count once,
        # when numpy is first imported, i.e. below; torch gets set_num_threads in the loader.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(config.cpu_threads))
    # Imported after verification so a refused start stays fast and torch-free.
    from modeldr.serving.runtime import Runtime
    from modeldr.serving.server import serve

    return serve(Runtime(config, verified))


def _train_tiny(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from modeldr.serving.train_tiny import TrainSettings, train, write_golden_set

    settings = TrainSettings()
    if args.epochs is not None:
        settings = dataclasses.replace(settings, epochs=args.epochs)
    if args.reviews is not None:
        settings = dataclasses.replace(settings, reviews=args.reviews)
    try:
        result = train(args.directory, args.seed, settings, args.golden_size)
    except (FileExistsError, ValueError) as exc:
        print(f"modeldr-serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.golden_set is not None:
        write_golden_set(result.golden, args.golden_set)
    print(json.dumps(result.summary(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    _setup_logging("info")
    if args.command == "tiny-model":
        from modeldr.serving.tiny import build_model_dir

        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
        try:
            digest = build_model_dir(
                args.directory,
                args.task,
                preset=args.preset,
                labels=labels,
                seed=args.seed,
                revision=args.revision,
            )
        except (FileExistsError, ValueError) as exc:
            print(f"modeldr-serve: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"sha256:{digest}")
        return 0
    if args.command == "train-tiny":
        return _train_tiny(args)
    if args.command == "manifest":
        digest = write_manifest(args.directory, args.task, args.revision)
        print(f"sha256:{digest}")
        return 0
    if args.command == "fetch":
        return _fetch_command(args)
    try:
        verified = verify_model_dir(args.directory, args.expected_digest)
    except (ArtifactError, ValueError) as exc:
        print(f"modeldr-serve: verification failed: {exc}", file=sys.stderr)
        return EXIT_ARTIFACT
    print(f"sha256:{verified.digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
