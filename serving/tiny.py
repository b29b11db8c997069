"""Generate a BERT model directory from a config: random weights, local vocabulary.

Tests, the sandbox and the benchmark need real model directories without any
download. This writes exactly what a converted production model holds
(``config.json``, ``model.safetensors``, tokenizer files) plus the digest
manifest, so the server loads it through its one and only loading path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modeldr.serving.manifest import Task, write_manifest
from modeldr.serving.vocab import build_vocabulary, write_vocab_file

log = logging.getLogger(__name__)

Preset = Literal["tiny", "bert-base"]
PRESETS: tuple[Preset, ...] = ("tiny", "bert-base")
DEFAULT_LABELS: tuple[str, ...] = ("negative", "positive")


@dataclass(frozen=True)
class Shape:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int | None  # None: exactly the generated vocabulary


SHAPES: dict[Preset, Shape] = {
    # Small enough that a test server loads and answers in well under a second.
    "tiny": Shape(32, 2, 2, 64, None),
    # BERT-base's shape (110M parameters) for benchmarks.
    "bert-base": Shape(768, 12, 12, 3072, 30522),
}


def build_model_dir(
    directory: Path,
    task: Task,
    preset: Preset = "tiny",
    labels: Sequence[str] = DEFAULT_LABELS,
    seed: int = 0,
    revision: str | None = None,
    max_position_embeddings: int = 512,
) -> str:
    """Write a random-weight BERT for task into directory; return the manifest digest."""
    # Imported here so that `modeldr-serve --help` and manifest checks stay fast.
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    if len(labels) < 2 and task == "sequence-classification":
        raise ValueError("a classifier needs at least two labels")
    shape = SHAPES[preset]
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty")

    tokens = build_vocabulary(shape.vocab_size)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=0,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model: Any
    if task == "sequence-classification":
        config.architectures = ["BertForSequenceClassification"]
        model = BertForSequenceClassification(config)
    else:
        config.architectures = ["BertModel"]
        model = BertModel(config)
    digest = save_model_dir(
        directory, model, tokens, task, revision or f"{preset}-seed{seed}", max_position_embeddings
    )
    log.info("wrote %s %s model to %s (digest sha256:%s)", preset, task, directory, digest)
    return digest


def save_model_dir(
    directory: Path,
    model: Any,
    tokens: Sequence[str],
    task: Task,
    revision: str,
    max_position_embeddings: int,
) -> str:
    """Write model (safetensors), its WordPiece tokenizer and the manifest; return the digest.

    The one writer of generated model directories: random (build_model_dir) and trained
    (serving/train_tiny.py) models end up laid out alike and load through the same path.
    """
    from transformers import BertTokenizer

    model.eval()
    model.save_pretrained(directory, safe_serialization=True)

    vocab_path = directory / "vocab.txt"
    write_vocab_file(list(tokens), vocab_path)
    tokenizer = BertTokenizer(
        vocab={token: index for index, token in enumerate(tokens)},
        do_lower_case=True,
        model_max_length=max_position_embeddings,
    )
    tokenizer.save_pretrained(directory)
    if not vocab_path.exists():  # some transformers versions only write tokenizer.json
        write_vocab_file(list(tokens), vocab_path)
    return write_manifest(directory, task, revision)
