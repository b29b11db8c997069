"""The model re-evaluated after every switch of the active cluster (`spec.evaluation`).

A failover proves that something answers; it does not prove that the model now serving is
the model that served before. After every switch (automatic failover, a switch by hand, a
failback) the operator sends the golden set to the newly active cluster and scores its
answers: accuracy and macro precision, recall and F1 against the labels, and agreement with
the *reference*, the answers of the cluster that served before (kube/golden.py). It also asks
every server of that cluster which model it serves (V2 model metadata, `parameters.digest`:
the digest of the files it verified and loaded, not a Deployment's annotation).

The reference is taken from the active cluster when the operator starts serving a
ModelDeployment with `spec.evaluation` (the *baseline*, also assessed against the minimums
and the digest), and replaced by the answers of each verified evaluation; it is dropped when
`spec.model.expectedDigest` or the golden set changes (a new model answers differently on
purpose). Without a reference (the active cluster failed before the baseline could be taken)
agreement is unknown and the evaluation is `Unknown`, never `Verified`.

Outcomes: `Verified`; `NotVerified` (reason ModelMismatch: a minimum missed, a digest other
than spec.model.expectedDigest, servers of one cluster that disagree); `Unknown` (the golden
set unreadable, the cluster not answering it, a server not saying its digest, no reference).
`assess` is pure; `evaluate` does the I/O on the event loop (aiohttp).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import aiohttp
from kubernetes import client

from modeldr.api.modeldeployment import Evaluation
from modeldr.kube.golden import (
    GoldenItem,
    GoldenSetError,
    ModelScores,
    describe_scores,
    parse_golden_set,
    score,
)
from modeldr.kube.times import iso

BATCH = 32  # golden texts per request
TIMEOUT_S = 10.0  # per request
MAX_DIGEST_SERVERS = 16  # servers asked for their digest, at most
MAX_BODY_BYTES = 8 * 1024 * 1024
# A baseline that could not be taken is tried again this much later.
BASELINE_RETRY_S = 30.0


class Outcome(StrEnum):
    RUNNING = "Running"
    VERIFIED = "Verified"
    NOT_VERIFIED = "NotVerified"
    UNKNOWN = "Unknown"


class EvaluationError(Exception):
    """The evaluation could not be made (the message says why): its outcome is Unknown."""


@dataclass(frozen=True)
class Reference:
    """The answers the next evaluation is compared with, and what they are valid for."""

    cluster: str
    answers: tuple[str | None, ...]
    model_digest: str  # spec.model.expectedDigest when they were given
    golden_digest: str  # of the golden set they answer


@dataclass(frozen=True)
class Evaluated:
    cluster: str
    outcome: Outcome
    reason: str
    message: str
    at: datetime
    scores: ModelScores | None = None
    digests: tuple[tuple[str, str], ...] = ()  # (server, digest) as reported
    answers: tuple[str | None, ...] | None = None
    golden_digest: str = ""

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "cluster": self.cluster,
            "phase": str(self.outcome),
            "reason": self.reason,
            "message": self.message[:1024],
            "evaluatedTime": iso(self.at, precise=True),
            "servedDigests": dict(self.digests) or None,
        }
        if self.scores is not None:
            status |= self.scores.to_status()
        return status


def running(cluster: str) -> dict[str, Any]:
    """status.lastFailover.evaluation while the evaluation of a switch is under way."""
    return {"cluster": cluster, "phase": str(Outcome.RUNNING), "reason": "Evaluating"}


def golden_digest(golden: Sequence[GoldenItem]) -> str:
    text = json.dumps([[item.text, item.label] for item in golden])
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ pure


def assess(
    settings: Evaluation,
    cluster: str,
    golden: Sequence[GoldenItem],
    answers: Sequence[str | None],
    reference: Sequence[str | None] | None,
    digests: dict[str, str | None],
    expected_digest: str,
    *,
    baseline: bool = False,
) -> tuple[Outcome, str, str, ModelScores]:
    """(outcome, reason, message, scores) of `cluster`'s answers. A baseline has no
    reference to agree with; any other evaluation without one is Unknown."""
    scores = score(golden, answers, reference)
    misses: list[str] = []
    unknown: list[str] = []
    for name, value, minimum in (
        ("agreement", scores.agreement, None if baseline else settings.min_agreement),
        ("accuracy", scores.accuracy, settings.min_accuracy),
        ("F1", scores.f1, settings.min_f1),
    ):
        if minimum is not None and value is not None and value < minimum:
            misses.append(f"{name} {value:.4f} < min {minimum:g}")
    if reference is None and not baseline:
        unknown.append("no reference answers to agree with (no baseline was taken)")
    known = {server: d for server, d in digests.items() if d is not None}
    silent = sorted(server for server, d in digests.items() if d is None)
    wrong = sorted(server for server, d in known.items() if d != expected_digest)
    if wrong:
        shown = ", ".join(f"{server} serves {short(known[server])}" for server in wrong[:3])
        misses.append(f"{shown}, expected {short(expected_digest)}")
    if silent:
        unknown.append(f"the served digest of {', '.join(silent[:3])} is unknown")
    if not digests:
        unknown.append("no server was asked for its digest")
    figures = describe_scores(cluster, scores, lambda value: f"{value:.4f}")
    if misses:
        return Outcome.NOT_VERIFIED, "ModelMismatch", f"{'; '.join(misses)} ({figures})", scores
    if unknown:
        return Outcome.UNKNOWN, "EvaluationIncomplete", f"{'; '.join(unknown)} ({figures})", scores
    return Outcome.VERIFIED, "Baseline" if baseline else "ModelVerified", figures, scores


def short(digest: str) -> str:
    algorithm, _, hexdigits = digest.rpartition(":")
    shown = hexdigits[:12] + ("…" if len(hexdigits) > 12 else "")
    return f"{algorithm}:{shown}" if algorithm else shown


# ------------------------------------------------------------------------------ I/O


def load_golden_set(
    hub: client.ApiClient, namespace: str, settings: Evaluation
) -> tuple[GoldenItem, ...]:
    """Blocking: the golden set from its ConfigMap in the ModelDeployment's namespace."""
    ref = settings.golden_set.config_map_ref
    where = f"ConfigMap {namespace}/{ref.name} key {ref.key}"
    try:
        config_map = client.CoreV1Api(hub).read_namespaced_config_map(
            ref.name, namespace, _request_timeout=(2, 10)
        )
    except client.ApiException as exc:
        raise EvaluationError(f"golden set {where}: {exc.status} {exc.reason}") from None
    text = (config_map.data or {}).get(ref.key)
    if text is None:
        raise EvaluationError(f"golden set {where}: no such key")
    try:
        golden = parse_golden_set(text)
    except GoldenSetError as exc:
        raise EvaluationError(f"golden set {where}: {exc}") from None
    if not golden:
        raise EvaluationError(f"golden set {where} has no items")
    return golden


async def evaluate(
    settings: Evaluation,
    golden: Sequence[GoldenItem],
    cluster: str,
    urls: Sequence[str],
    model: str,
    expected_digest: str,
    reference: Reference | None,
    *,
    baseline: bool = False,
) -> Evaluated:
    """Ask `cluster`'s servers (base URLs) the golden set and their digests, and assess."""
    now = datetime.now(UTC)
    digest_of_golden = golden_digest(golden)
    if reference is not None and reference.golden_digest != digest_of_golden:
        reference = None  # answers to another golden set compare with nothing
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            answers = await classify(session, urls, [item.text for item in golden])
            digests = await ask_digests(session, urls[:MAX_DIGEST_SERVERS], model)
    except EvaluationError as exc:
        return Evaluated(cluster, Outcome.UNKNOWN, "ModelUnreachable", str(exc), now)
    outcome, reason, message, scores = assess(
        settings,
        cluster,
        golden,
        answers,
        None if reference is None else reference.answers,
        digests,
        expected_digest,
        baseline=baseline,
    )
    reported = tuple((server, d) for server, d in sorted(digests.items()) if d is not None)
    return Evaluated(
        cluster,
        outcome,
        reason,
        message,
        datetime.now(UTC),
        scores,
        reported,
        tuple(answers),
        digest_of_golden,
    )


async def classify(
    session: aiohttp.ClientSession, urls: Sequence[str], texts: Sequence[str]
) -> list[str | None]:
    """The label of each text, asked in batches of one server; a failed batch is asked once
    of the next server. Raises EvaluationError when no answer can be had."""
    if not urls:
        raise EvaluationError("no ready server to ask")
    current, failures = 0, []
    labels: list[str | None] = []
    for start in range(0, len(texts), BATCH):
        chunk = texts[start : start + BATCH]
        while True:
            try:
                labels.extend(await predict(session, urls[current], chunk))
                break
            except EvaluationError as exc:
                failures.append(str(exc))
                if len(failures) > 1 or current + 1 >= len(urls):
                    message = f"golden set not answered: {'; '.join(failures)}"
                    raise EvaluationError(message) from None
                current += 1
    return labels


async def predict(
    session: aiohttp.ClientSession, base: str, texts: Sequence[str]
) -> list[str | None]:
    body = await _request(session, "POST", f"{base}/predict", {"texts": list(texts)})
    predictions = body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(texts):
        raise EvaluationError(f"{base}: not {len(texts)} predictions (a classifier?)")
    labels: list[str | None] = []
    for prediction in predictions:
        label = prediction.get("label") if isinstance(prediction, dict) else None
        usable = isinstance(label, str | int) and not isinstance(label, bool)
        labels.append(str(label) if usable else None)
    return labels


async def ask_digests(
    session: aiohttp.ClientSession, urls: Sequence[str], model: str
) -> dict[str, str | None]:
    """The digest each server says it serves (None where it could not say)."""

    async def one(base: str) -> str | None:
        try:
            body = await _request(session, "GET", f"{base}/v2/models/{model}", None)
        except EvaluationError:
            return None
        parameters = body.get("parameters")
        digest = parameters.get("digest") if isinstance(parameters, dict) else None
        return digest if isinstance(digest, str) and digest else None

    found = await asyncio.gather(*(one(base) for base in dict.fromkeys(urls)))
    return dict(zip(dict.fromkeys(urls), found, strict=True))


async def _request(
    session: aiohttp.ClientSession, method: str, url: str, payload: Any
) -> dict[str, Any]:
    try:
        async with session.request(
            method, url, json=payload, headers={"Accept": "application/json"}
        ) as response:
            content = await response.content.read(MAX_BODY_BYTES)
            if response.status != 200:
                raise EvaluationError(f"{url}: HTTP {response.status}")
    except TimeoutError:
        raise EvaluationError(f"{url}: timed out") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise EvaluationError(f"{url}: {type(exc).__name__}") from None
    try:
        body = json.loads(content)
    except ValueError:
        raise EvaluationError(f"{url}: not JSON") from None
    if not isinstance(body, dict):
        raise EvaluationError(f"{url}: not a JSON object")
    return body


# ------------------------------------------------------------------------------ state


Kind = Literal["baseline", "switch"]


@dataclass
class EvaluationState:
    """One ModelDeployment's evaluations, kept by its daemon between ticks."""

    reference: Reference | None = None
    task: asyncio.Task[Evaluated] | None = None
    kind: Kind | None = None
    # The last evaluation after a switch (status.lastFailover.evaluation), and the baseline.
    last: dict[str, Any] | None = None
    verified: Evaluated | None = None  # the last finished one, baseline included
    next_baseline: float = 0.0
    # onFailure failBack: the role to switch back to once it passes its health check.
    fail_back_to: str | None = None
    failed_back: bool = False

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task, self.kind = None, None
