"""Train the tiny review classifier: generate, train from random weights, evaluate, write it.

The seeds' loop at toy scale, on a CPU in seconds: a review data set generated from a seed
(serving/reviews.py) is split into train and held-out texts; a BERT-class sequence
classifier built from a BertConfig (about 110 thousand parameters, with a WordPiece
vocabulary of the training texts' words from serving/vocab.py) is trained on the first
and scored on the second (accuracy, macro precision, recall and F1, the drills' model
check definitions); the result is written like every generated model (serving/tiny.py
save_model_dir: config.json, model.safetensors, tokenizer files, the digest manifest), so
the server loads it through its one loading path.

Reproducible: the same seed gives the same bytes, hence the same digest, with the pinned
torch and transformers (constraints.txt). Training runs on one CPU thread with
deterministic algorithms, a seeded generator for the batch order and dropout seeded by
torch.manual_seed. A different CPU or library version may round differently and change
the weights' last bits; the committed fixture (tests/fixtures/models/tiny-review-bert) is
what the sandbox serves, so its digest never depends on where it is rebuilt.

    modeldr-serve train-tiny OUT_DIR [--seed N] [--golden-set golden.jsonl]
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modeldr.serving.reviews import LABELS, Review, golden_set, split, words
from modeldr.serving.tiny import save_model_dir
from modeldr.serving.vocab import build_vocabulary

log = logging.getLogger(__name__)

REVISION = "tiny-review-seed{seed}"
MAX_POSITIONS = 128  # reviews are under 50 tokens; the server answers 413 above this


@dataclass(frozen=True)
class TrainSettings:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_grad_norm: float = 1.0
    reviews: int = 4000


@dataclass(frozen=True)
class Metrics:
    """Held-out figures; precision, recall and F1 are macro averages over both labels."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    examples: int


@dataclass(frozen=True)
class TrainResult:
    seed: int
    settings: TrainSettings
    digest: str
    metrics: Metrics
    parameters: int
    train_examples: int
    seconds: float
    golden: tuple[Review, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "digest": f"sha256:{self.digest}",
            "revision": REVISION.format(seed=self.seed),
            "seed": self.seed,
            "settings": asdict(self.settings),
            "parameters": self.parameters,
            "trainExamples": self.train_examples,
            "heldOut": asdict(self.metrics),
            "trainSeconds": round(self.seconds, 2),
        }


def score(labels: Sequence[str], predictions: Sequence[str]) -> Metrics:
    """Accuracy and macro precision, recall and F1 (drills/model_checks.py's definitions)."""
    if len(labels) != len(predictions) or not labels:
        raise ValueError("need as many predictions as labels, and at least one")
    correct = sum(1 for label, guess in zip(labels, predictions, strict=True) if label == guess)
    classes = sorted(set(labels) | set(predictions))
    precisions, recalls, f1s = [], [], []
    for name in classes:
        tp = sum(1 for lab, guess in zip(labels, predictions, strict=True) if lab == guess == name)
        predicted = sum(1 for guess in predictions if guess == name)
        actual = sum(1 for lab in labels if lab == name)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return Metrics(
        accuracy=correct / len(labels),
        precision=sum(precisions) / len(classes),
        recall=sum(recalls) / len(classes),
        f1=sum(f1s) / len(classes),
        examples=len(labels),
    )


def _batches(tokenizer: Any, reviews: Sequence[Review], order: Sequence[int], size: int) -> Any:
    import torch

    for start in range(0, len(order), size):
        chunk = [reviews[i] for i in order[start : start + size]]
        encoded = tokenizer(
            [review.text for review in chunk], padding=True, return_tensors="pt", verbose=False
        )
        targets = torch.tensor([LABELS.index(review.label) for review in chunk])
        yield encoded, targets


def _predict(model: Any, tokenizer: Any, reviews: Sequence[Review]) -> list[str]:
    import torch

    guesses: list[str] = []
    model.eval()
    with torch.inference_mode():
        for encoded, _ in _batches(tokenizer, reviews, range(len(reviews)), 128):
            logits = model(**encoded).logits
            guesses.extend(LABELS[int(i)] for i in logits.argmax(dim=-1))
    return guesses


def _empty_directory(directory: Path) -> None:
    """Create directory if need be; refuse one with files, never to mix two models."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty")


def _tokenizer(tokens: Sequence[str]) -> Any:
    """A WordPiece tokenizer of exactly these tokens, lower-casing like the reviews' words."""
    from transformers import BertTokenizer

    return BertTokenizer(
        vocab={token: index for index, token in enumerate(tokens)},
        do_lower_case=True,
        model_max_length=MAX_POSITIONS,
    )


def _bert_config(tokens: Sequence[str], settings: TrainSettings) -> Any:
    """The classifier's BertConfig; its labels and architecture are what the server loads."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokens),
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=0,
        id2label={index: str(label) for index, label in enumerate(LABELS)},
        label2id={str(label): index for index, label in enumerate(LABELS)},
        architectures=["BertForSequenceClassification"],
    )


@contextmanager
def _reproducible_torch() -> Iterator[None]:
    """One CPU thread and deterministic algorithms, so a seed gives the same bytes;
    the caller's torch settings come back afterwards, even if training fails."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _optimizer_and_schedule(model: Any, settings: TrainSettings, total: int) -> tuple[Any, Any]:
    """AdamW with a linear warm-up over warmup_fraction of the steps, then linear decay."""
    import torch

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    warmup = max(1, int(total * settings.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total - step) / (total - warmup))),
    )
    return optimizer, schedule


def _fit(
    model: Any, tokenizer: Any, reviews: Sequence[Review], seed: int, settings: TrainSettings
) -> None:
    """settings.epochs passes over reviews, each in an order drawn from the seed."""
    import torch

    steps_per_epoch = -(-len(reviews) // settings.batch_size)
    optimizer, schedule = _optimizer_and_schedule(
        model, settings, steps_per_epoch * settings.epochs
    )
    shuffler = random.Random(seed)
    for epoch in range(settings.epochs):
        model.train()
        order = list(range(len(reviews)))
        shuffler.shuffle(order)
        running = 0.0
        for encoded, targets in _batches(tokenizer, reviews, order, settings.batch_size):
            loss = model(**encoded, labels=targets).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            schedule.step()
            running += float(loss.detach())
        log.info("epoch %d: mean training loss %.4f", epoch + 1, running / steps_per_epoch)


def _log_result(
    directory: Path,
    digest: str,
    metrics: Metrics,
    parameters: int,
    train_examples: int,
    seconds: float,
) -> None:
    log.info(
        "trained %d parameters on %d reviews in %.1fs; held-out (%d): accuracy %.3f, "
        "precision %.3f, recall %.3f, macro F1 %.3f; wrote %s (digest sha256:%s)",
        parameters,
        train_examples,
        seconds,
        metrics.examples,
        metrics.accuracy,
        metrics.precision,
        metrics.recall,
        metrics.f1,
        directory,
        digest,
    )


def train(
    directory: Path,
    seed: int = 0,
    settings: TrainSettings | None = None,
    golden_size: int = 48,
) -> TrainResult:
    """Train on the seed's data set, write the model into directory (must be empty or new)."""
    import torch
    from transformers import BertForSequenceClassification

    settings = settings or TrainSettings()
    _empty_directory(directory)
    started = time.monotonic()
    data = split(seed, settings.reviews)
    tokens = build_vocabulary(words=words(data.train))
    tokenizer = _tokenizer(tokens)
    config = _bert_config(tokens, settings)
    with _reproducible_torch():
        # Seeded right before the model is built: its initial weights and then dropout
        # draw from torch's generator in this order, so nothing may draw in between.
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
        _fit(model, tokenizer, data.train, seed, settings)
        metrics = score(
            [review.label for review in data.held_out], _predict(model, tokenizer, data.held_out)
        )
        parameters = sum(p.numel() for p in model.parameters())
        digest = save_model_dir(
            directory,
            model,
            tokens,
            "sequence-classification",
            REVISION.format(seed=seed),
            MAX_POSITIONS,
        )
    seconds = time.monotonic() - started
    _log_result(directory, digest, metrics, parameters, len(data.train), seconds)
    return TrainResult(
        seed=seed,
        settings=settings,
        digest=digest,
        metrics=metrics,
        parameters=parameters,
        train_examples=len(data.train),
        seconds=seconds,
        golden=tuple(golden_set(data.held_out, golden_size)),
    )


def write_golden_set(reviews: Sequence[Review], path: Path) -> None:
    """JSON lines {"text": ..., "label": ...}, the drills' golden-set format."""
    lines = [json.dumps({"text": r.text, "label": r.label}) + "\n" for r in reviews]
    path.write_text("".join(lines), encoding="utf-8")
