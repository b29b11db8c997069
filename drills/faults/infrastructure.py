"""Faults only the infrastructure can make: NodeFailure (a node dies), ClusterOutage (a
whole member cluster goes dark) and ModelStoreOutage (a region's object store, where its pods
load the model from, unreachable). Asked of the member's infrastructure provider (a webhook;
docs/infrastructure-webhook.md), idempotent by the journal id, every call authenticated with
the member Secret's bearer token. Each inject carries an expiry that the step renews (a
separate `/renew`, which never re-creates an undone fault; drills/renewal.py), so the provider
puts things back by itself within one expiry period if the operator dies mid-drill."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes import client

from modeldr.api.drillstatus import FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills.faults.base import TIMEOUT, Aim, Choice, Observation, choose_pods, member_api
from modeldr.drills.faults.nodes import plan_node
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.infra import InfrastructureError, InfrastructureProvider
from modeldr.drills.refusal import Refusal
from modeldr.drills.renewal import FAULT_LAPSED, recorded_expiry
from modeldr.kube import k8s
from modeldr.kube.errors import MemberError
from modeldr.kube.members import INFRASTRUCTURE_TOKEN_KEY, MemberRegistry

PROVIDER = "webhook"
# The provider's request timeout (drills.infra): an inject may take this long.
INJECT_TIMEOUT_S = 90.0
# A renewal (the inject again) gives up after this; the next one is a third of a period on.
RENEW_TIMEOUT_S = 5.0


def provider_for(members: MemberRegistry, cluster: str) -> InfrastructureProvider:
    """The cluster's provider; NoProvider (nothing injected) when its Secret names none, or
    gives no token for it (every call is authenticated)."""
    try:
        member = members.get(cluster)
    except MemberError as exc:
        raise Refusal("NoProvider", str(exc)) from None
    url, token = member.infrastructure_url, member.infrastructure_token
    if not url:
        raise Refusal(
            "NoProvider",
            f"member cluster {cluster!r} has no infrastructure provider: its Secret has no "
            "key infrastructure-webhook-url (docs/infrastructure-webhook.md)",
        )
    if not token:
        raise Refusal(
            "NoProvider",
            f"member cluster {cluster!r}: its Secret names an infrastructure provider but no "
            f"key {INFRASTRUCTURE_TOKEN_KEY}: every call to a provider is authenticated "
            "(docs/infrastructure-webhook.md#security)",
        )
    try:
        return InfrastructureProvider(url, token)
    except InfrastructureError as exc:  # a malformed URL in the Secret
        raise Refusal("NoProvider", f"member cluster {cluster!r}: {exc}") from None


def call_inject(
    members: MemberRegistry,
    record: FaultRecord,
    node: str | None,
    model: dict[str, Any] | None = None,
) -> None:
    provider = provider_for(members, record.cluster)
    expires = recorded_expiry(record)
    if expires is None:  # the step records one before every inject (drills/renewal.py)
        raise Refusal("InjectFailed", f"{record.type} {record.id} has no expiry recorded")
    try:
        provider.inject(
            record.id, record.type, record.cluster, node=node, expires_at=expires, model=model
        )
    except InfrastructureError as exc:
        raise Refusal("InjectFailed", f"{record.type} of {record.cluster}: {exc}") from None


def restart_pods(members: MemberRegistry, record: FaultRecord) -> None:
    """Delete the record's pods at once (grace 0): their replacements start into the fault."""
    core = client.CoreV1Api(member_api(members, record.cluster))
    namespace = FaultParameters.of(record).member_namespace
    for pod in record.targets:
        k8s.call(
            core.delete_namespaced_pod,
            pod,
            namespace,
            grace_period_seconds=0,
            _request_timeout=TIMEOUT,
            absent=k8s.DONE,
        )


def call_renew(members: MemberRegistry, record: FaultRecord, expires: datetime) -> None:
    """The provider's `/renew`: pushes the expiry of the fault in force, never re-creates
    it (docs/infrastructure-webhook.md). Bounded by a short timeout, so a hung provider
    cannot hold the step's undo for the full inject timeout."""
    provider = provider_for(members, record.cluster).with_timeout(RENEW_TIMEOUT_S)
    try:
        provider.renew(record.id, expires)
    except InfrastructureError as exc:
        if exc.status == 404:  # the provider has it no more (undone, expired): not in force
            raise Refusal(FAULT_LAPSED, f"{record.type} of {record.cluster}: {exc}") from None
        raise


def _call_undo(members: MemberRegistry, record: FaultRecord) -> None:
    # Transient errors (a provider restarting) propagate: the journal retries the undo.
    provider_for(members, record.cluster).undo(record.id)


class NodeFailure:
    provider = PROVIDER
    needs_infrastructure = True

    def describe(self, fault_type: str) -> str:
        return (
            "the member's infrastructure provider powers a node that runs the model off, "
            "and on again at undo (docs/infrastructure-webhook.md)"
        )

    inject_allowance_s = INJECT_TIMEOUT_S

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        provider_for(members, aim.where.cluster)  # no provider: Error before anything is chosen
        return plan_node(members, aim)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        call_inject(members, record, FaultParameters.of(record).node_name)

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        call_renew(members, record, expires_at)

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        _call_undo(members, record)


class ClusterOutage:
    provider = PROVIDER
    needs_infrastructure = True

    def describe(self, fault_type: str) -> str:
        return (
            "the member's infrastructure provider takes the whole cluster dark, and restores "
            "it at undo"
        )

    inject_allowance_s = INJECT_TIMEOUT_S

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        where = aim.where
        provider_for(members, where.cluster)
        # The whole cluster is the target (its blast radius is the cluster, as asked).
        parameters = FaultParameters(namespace=where.namespace)
        return Choice((where.cluster,), parameters.record(), aim.seed)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        call_inject(members, record, None)

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        call_renew(members, record, expires_at)

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        _call_undo(members, record)


class ModelStoreOutage:
    """The region's object store unreachable for the step, and `mode` of the model's pods
    restarted in it meanwhile: their replacements must load the model elsewhere (the
    ModelDeployment's fallback store) or say why they cannot. The observation at the step's
    end reads the model's pods: all Ready, or the reason a replacement gave."""

    provider = PROVIDER
    needs_infrastructure = True

    def describe(self, fault_type: str) -> str:
        return (
            "the member's infrastructure provider makes the region's object store "
            "unreachable and `mode` of the model's pods are restarted meanwhile; they must "
            "load the model from the fallback store (spec.model.store) or fail with a reason; "
            "the store is back at undo"
        )

    inject_allowance_s = INJECT_TIMEOUT_S

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        where = aim.where
        provider_for(members, where.cluster)  # no provider: Error before anything is chosen
        targets = choose_pods(members, aim)
        parameters = FaultParameters(namespace=where.namespace, selector=where.label_selector)
        return Choice(targets, parameters.record(), aim.seed)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        call_inject(members, record, None)
        # The store refuses connections now: the restarted pods start into the outage.
        restart_pods(members, record)

    def renew(self, members: MemberRegistry, record: FaultRecord, expires_at: datetime) -> None:
        call_renew(members, record, expires_at)

    def observe(self, members: MemberRegistry, record: FaultRecord) -> Observation:
        parameters = FaultParameters.of(record)
        core = client.CoreV1Api(member_api(members, record.cluster))
        pods = core.list_namespaced_pod(
            parameters.member_namespace,
            label_selector=parameters.selector or "",
            _request_timeout=TIMEOUT,
        ).items
        raw = [core.api_client.sanitize_for_serialization(p) for p in pods]
        return assess_restarted(raw, record.cluster)

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        _call_undo(members, record)


def assess_restarted(pods: list[dict[str, Any]], cluster: str) -> Observation:
    """Pure: the model's pods at the step's end, during the store's outage."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    ready = [p for p in live if _ready(p)]
    if live and len(ready) == len(live):
        return Observation(
            Phase.PASSED,
            "LoadedWithoutTheStore",
            f"all {len(live)} model pods in {cluster} Ready while its object store was "
            "unreachable (the restarted ones loaded the model from the fallback store)",
        )
    for pod in live:
        reason = _refusal(pod)
        if reason:
            name = (pod.get("metadata") or {}).get("name")
            return Observation(
                Phase.FAILED,
                "ModelUnavailable",
                f"pod {name} in {cluster} could not load the model while the store was "
                f"unreachable: {reason}",
            )
    return Observation(
        Phase.FAILED,
        "ReplicasNotReady",
        f"{len(ready)} of {len(live)} model pods in {cluster} Ready at the step's end, while "
        "its object store was unreachable (the others still starting)",
    )


def _ready(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("ready") for s in statuses)


def _refusal(pod: dict[str, Any]) -> str | None:
    """The last line a container ended with (its termination message), if it ended."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            message = ((state.get("terminated") or {}).get("message") or "").strip()
            if message:
                return message.splitlines()[-1][:400]
    return None
