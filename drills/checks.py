"""Model re-evaluation: the golden set answered by the active cluster before the first fault
(the baseline), and again wherever traffic is served after each step, compared with the
baseline and the labels, and the digests the clusters serve with the one the spec pins."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kubernetes import client

from modeldr.api.base import truncate
from modeldr.api.drillplan import ModelChecks
from modeldr.api.drillstatus import ModelCheckStatus
from modeldr.api.phase import Phase
from modeldr.drills.model_checks import (
    GoldenItem,
    GoldenSetError,
    assess_model_check,
    parse_golden_set,
    score,
)
from modeldr.drills.probe import Endpoints, ProbeError, Resolver, classify
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import now
from modeldr.drills.target import target_status
from modeldr.drills.verdict import Part, PartKind

if TYPE_CHECKING:
    from modeldr.drills.engine import Drill

TIMEOUT = (2, 10)


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
        served, expected = await self._digests(endpoints.cluster)
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
        return await self._end(entry, assessment.phase, assessment.reason, assessment.message)

    async def _digests(self, cluster: str | None) -> tuple[dict[str, str | None], str | None]:
        """The digest the serving cluster's ready replicas were started with, and the one
        the spec pins (None: the clusters must agree)."""
        d = self.drill
        status = await asyncio.to_thread(target_status, d.runtime.hub, d.target)
        role = d.target.role_of(cluster)
        served: dict[str, str | None] = {}
        if cluster is not None and role is not None:
            served[cluster] = (status.get(role) or {}).get("observedDigest")
        return served, d.target.spec.model.expected_digest

    async def _end(self, entry: ModelCheckStatus, phase: Phase, reason: str, message: str) -> Part:
        entry.phase, entry.reason, entry.message = phase, reason, truncate(message)
        await self.drill.state.write()
        return Part(PartKind.MODEL_CHECK, entry.name, phase, reason, message)
