"""The hub's tenancy facts, read for the operator and the drills (blocking; call from worker
threads): the TenantPolicies, the freeze on the operator's namespace, and the member
Secrets' labels (consent to cluster faults, the freeze of one member).

Policies are cached for POLICY_TTL_S: one list serves every ModelDeployment's tick, and a
changed policy acts within that (TENANCY.md asks a freeze to act within 10 s). A policy that
does not parse is skipped and said so in the log: it allows nothing, as if absent."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

from kubernetes import client

from modeldr.api.tenancy import Grants, NamedPolicy
from modeldr.api.tenantpolicy import FROZEN_LABEL, PLURAL, TRUE, TenantPolicySpec
from modeldr.kube import k8s
from modeldr.kube.constants import GROUP, VERSION
from modeldr.kube.errors import OperatorError

log = logging.getLogger(__name__)

POLICY_TTL_S: Final = 2.0
TIMEOUT: Final = (2.0, 10.0)


class PoliciesUnreadable(OperatorError):
    """The TenantPolicies cannot be read: nothing is allowed meanwhile (secure by default)."""


def read_policies(hub: client.ApiClient) -> list[NamedPolicy]:
    """Every TenantPolicy that parses (one that does not allows nothing: it is skipped);
    PoliciesUnreadable when the CRD is missing or the read is forbidden."""
    try:
        listed = client.CustomObjectsApi(hub).list_cluster_custom_object(
            GROUP, VERSION, PLURAL, _request_timeout=TIMEOUT
        )
    except client.ApiException as exc:
        if exc.status == 404:
            raise PoliciesUnreadable(
                "the TenantPolicy CRD is not installed in the hub: nothing is allowed until it "
                "is (kubectl apply --server-side -f crds/)"
            ) from None
        if exc.status == 403:
            raise PoliciesUnreadable(
                "the operator may not list TenantPolicies (its chart's ClusterRole is older "
                "than this operator): nothing is allowed until it may"
            ) from None
        raise
    policies = []
    for item in listed.get("items") or []:
        name = str((item.get("metadata") or {}).get("name") or "")
        try:
            policies.append(NamedPolicy(name, TenantPolicySpec.parse(item.get("spec") or {})))
        except Exception as exc:  # the CRD validates; this is an older or hand-forced object
            log.warning("TenantPolicy %s is skipped (allows nothing): %s", name, exc)
    return policies


class Tenancy:
    """The policies (cached briefly) and the freeze labels (read when asked)."""

    def __init__(self, hub: client.ApiClient, operator_namespace: str) -> None:
        self._hub = hub
        self._operator_namespace = operator_namespace
        self._lock = threading.Lock()
        self._policies: list[NamedPolicy] = []
        self._loaded_at = float("-inf")

    def policies(self, *, fresh: bool = False) -> list[NamedPolicy]:
        with self._lock:
            if fresh or time.monotonic() - self._loaded_at >= POLICY_TTL_S:
                self._policies = read_policies(self._hub)
                self._loaded_at = time.monotonic()
            return list(self._policies)

    def grants(self, namespace: str, *, fresh: bool = False) -> Grants:
        return Grants.of(namespace, self.policies(fresh=fresh))

    def operator_frozen(self) -> bool:
        """The operator's namespace carries modeldr.io/drills-frozen=true."""
        ns: Any = k8s.call(
            client.CoreV1Api(self._hub).read_namespace,
            self._operator_namespace,
            _request_timeout=TIMEOUT,
            absent=None,
        )
        labels = (ns.metadata.labels or {}) if ns is not None else {}
        return bool(labels.get(FROZEN_LABEL) == TRUE)

    @property
    def operator_namespace(self) -> str:
        return self._operator_namespace
