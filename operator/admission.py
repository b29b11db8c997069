"""The grants the chart's ValidatingAdmissionPolicy reads, kept by the leader: the TenantPolicies
compiled into one ConfigMap in the operator's namespace (modeldr.api.tenancy.admission_grants),
rewritten within PUBLISH_EVERY_S of a policy change. So a ModelDeployment outside its
namespace's policy is refused at `kubectl apply` already; the operator's own check at every
reconcile stays the authority (a stale or missing ConfigMap never lets the operator act)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from kubernetes import client

from modeldr.api.tenancy import ADMISSION_CONFIGMAP, admission_grants
from modeldr.kube.constants import MANAGED_BY, MANAGER
from modeldr.kube.tenancy import Tenancy

log = logging.getLogger(__name__)

PUBLISH_EVERY_S: Final = 1.0
FIELD_MANAGER: Final = "modeldr-tenancy"
TIMEOUT: Final = (2.0, 10.0)


class AdmissionGrants:
    """Writes the compiled grants when they differ from what it wrote last."""

    def __init__(self, hub: client.ApiClient, tenancy: Tenancy, namespace: str) -> None:
        self._hub, self._tenancy, self._namespace = hub, tenancy, namespace
        self._written: dict[str, str] | None = None

    def publish(self) -> bool:
        """Blocking: compile and write; True when it wrote."""
        grants = admission_grants(self._tenancy.policies(fresh=True))
        if grants == self._written:
            return False
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": ADMISSION_CONFIGMAP,
                "namespace": self._namespace,
                "labels": {MANAGED_BY: MANAGER},
            },
            "data": grants,
        }
        # Server-side apply: the keys of namespaces no longer covered go with the next write.
        client.CoreV1Api(self._hub).patch_namespaced_config_map(
            ADMISSION_CONFIGMAP,
            self._namespace,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
            _request_timeout=TIMEOUT,
        )
        self._written = grants
        log.info("admission grants written for %d hub namespaces", len(grants))
        return True


async def publish_forever(grants: AdmissionGrants) -> None:
    """Until cancelled (the operator stops or loses the lead); a failed round is retried."""
    while True:
        try:
            await asyncio.to_thread(grants.publish)
        except Exception as exc:
            log.warning("admission grants not written (retrying): %s", exc)
        await asyncio.sleep(PUBLISH_EVERY_S)
