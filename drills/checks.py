"""Model re-evaluation: the golden set answered by the active cluster before the first fault
(the baseline), and again wherever traffic is served after each step, compared with the
baseline and the labels, and the digests the servers say they serve (asked of each, through
the V2 model metadata, not read from a Deployment's annotation) with the one the spec pins."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kubernetes import client

from modeldr.api.base import truncate
from modeldr.api.drillplan import ModelChecks
from modeldr.api.drillstatus import ModelCheckStatus
from modeldr.api.phase import Phase
from modeldr.drills.model_checks import assess_model_check
from modeldr.drills.probe import Endpoints, ProbeError, Resolver, classify, served_digest
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import now
from modeldr.drills.verdict import Part, PartKind
from modeldr.kube.golden import GoldenItem, GoldenSetError, parse_golden_set, score

if TYPE_CHECKING:
    from modeldr.drills.engine import Drill

TIMEOUT = (2, 10)
# The servers of the serving cluster asked for their digest: a bounded number of reads.
MAX_DIGEST_ADDRESSES = 16


def load_golden_set(
    hub: client.ApiClient, namespace: str, checks: ModelChecks
) -> tuple[GoldenItem, ...]:
    """Blocking: the golden set from its ConfigMap; Refusal(GoldenSetInvalid) when it is
    missing or unreadable (the drill cannot check what it was asked to)."""
    ref = checks.golden_set.config_map_ref
    where = f"ConfigMap {namespace}/{ref.name} key {ref.key}"
    try:
        config_map = client.CoreV1Api(hub).read_namespaced_config_map(
            ref.name, namespace, _request_timeout=TIMEOUT
        )
    except client.ApiException as exc:
        raise Refusal("GoldenSetInvalid", f"{where}: {exc.status} {exc.reason}") from None
    text = (config_map.data or {}).get(ref.key)
    if text is None:
        raise Refusal("GoldenSetInvalid", f"{where}: no such key")
    try:
        return parse_golden_set(text)
    except GoldenSetError as exc:
        raise Refusal("GoldenSetInvalid", f"{where}: {exc}") from None


class ModelChecker:
    def __init__(
        self, drill: Drill, checks: ModelChecks, golden: tuple[GoldenItem, ...], resolver: Resolver
    ) -> None:
        self.drill = drill
        self.checks = checks
        self.golden = golden
        self.resolver = resolver
        self.baseline_labels: list[str | None] | None = None

    async def baseline(self) -> Part:
        return await self._check("baseline", None)

    async def after(self, step: str) -> Part:
        return await self._check(step, step)

    async def _check(self, name: str, step: str | None) -> Part:
        d = self.drill
        entry = ModelCheckStatus(name=name, step=step, phase=Phase.RUNNING, checked_at=now())
        d.state.status.model_checks.append(entry)
        texts = [item.text for item in self.golden]
        endpoints: Endpoints = await asyncio.to_thread(self.resolver)
        entry.cluster = endpoints.cluster
        try:
            labels: list[str | None] = list(await asyncio.to_thread(classify, endpoints, texts))
        except ProbeError as exc:
            return await self._end(entry, Phase.INCONCLUSIVE, "ModelUnreachable", str(exc))
        if step is None:
            self.baseline_labels = labels
            if d.answers is not None:  # from now on the probe's answers are judged
                d.answers.set_baseline(labels)
        served, expected, unknown = await self._digests(endpoints)
        checks = self.checks
        assessment = assess_model_check(
            endpoints.cluster or "the serving cluster",
            self.golden,
            labels,
            baseline=self.baseline_labels if step is not None else None,
            min_agreement=checks.min_agreement if step is not None else None,
            min_accuracy=checks.min_accuracy,
            min_f1=checks.min_f1,
            served_digests=served,
            expected_digest=expected,
        )
        scores = score(self.golden, labels, self.baseline_labels if step is not None else None)
        entry.examples, entry.agreement, entry.accuracy = (
            scores.items,
            scores.agreement,
            scores.accuracy,
        )
        entry.precision, entry.recall, entry.f1 = scores.precision, scores.recall, scores.f1
        entry.served_digest = next(iter(served.values()), None)
        entry.expected_digest = expected
        message = assessment.message
        if unknown and assessment.reason == "DigestUnknown":
            message += f": {'; '.join(unknown[:3])}"
        return await self._end(entry, assessment.phase, assessment.reason, message)

    async def _digests(
        self, endpoints: Endpoints
    ) -> tuple[dict[str, str | None], str | None, list[str]]:
        """The digests the serving cluster's servers say they serve (each asked, V2 model
        metadata), the one the spec pins (None: the clusters must agree), and why a digest
        could not be had."""
        d = self.drill
        asked, errors = await asyncio.to_thread(ask_digests, endpoints, d.target.spec.model.name)
        served = served_by(endpoints.cluster or "the serving cluster", asked)
        return served, d.target.spec.model.expected_digest, errors

    async def _end(self, entry: ModelCheckStatus, phase: Phase, reason: str, message: str) -> Part:
        entry.phase, entry.reason, entry.message = phase, reason, truncate(message)
        await self.drill.state.write()
        return Part(PartKind.MODEL_CHECK, entry.name, phase, reason, message)


def ask_digests(
    endpoints: Endpoints, model: str, *, timeout_s: float = 5.0
) -> tuple[dict[str, str | None], list[str]]:
    """Blocking: the digest each of the first MAX_DIGEST_ADDRESSES addresses says it serves
    (None where it could not be had), and why not, one line per address."""
    digests: dict[str, str | None] = {}
    errors: list[str] = []
    for address in endpoints.addresses[:MAX_DIGEST_ADDRESSES]:
        try:
            digests[address] = served_digest(endpoints, address, model, timeout_s)
        except ProbeError as exc:
            digests[address] = None
            errors.append(str(exc))
    return digests, errors


def served_by(cluster: str, by_address: dict[str, str | None]) -> dict[str, str | None]:
    """The cluster's served digest as the model check compares it: one entry when every
    server agrees; None when one could not say (unknown is not a match); when the servers
    disagree (a rollout half done, a stale replica), one entry per server, so the check
    fails naming each."""
    if not by_address:
        return {cluster: None}
    values = set(by_address.values())
    if None in values:
        return {cluster: None}
    if len(values) == 1:
        return {cluster: next(iter(values))}
    return {f"{cluster} {address}": digest for address, digest in sorted(by_address.items())}
