"""Leader election on a coordination.k8s.io/v1 Lease, like client-go's leaderelection.

Only the holder runs kopf. The holder renews every retry period; if it cannot renew for the
renew deadline it must stop (the caller exits non-zero and Kubernetes restarts it), because by
then a peer may take the Lease over. On a clean shutdown the holder releases the Lease so a
peer takes over at once instead of waiting for it to expire. Uses get/create/update on one
named Lease only (what the chart's Role grants); blocking calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from modeldr.operator import metrics

log = logging.getLogger(__name__)


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def may_acquire(spec: dict[str, Any], identity: str, now: datetime) -> bool:
    """Whether `identity` may take or renew a Lease with this spec at `now`."""
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == identity:
        return True
    renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    if renewed is None:
        return True
    return now >= renewed + timedelta(seconds=duration)


def _micro(moment: datetime) -> str:
    # MicroTime: RFC 3339 with microseconds.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    api: client.ApiClient
    namespace: str
    name: str
    identity: str
    lease_duration_s: int = 15
    renew_deadline_s: int = 10
    retry_period_s: int = 2
    is_leader: bool = False

    def _coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking). True when this process holds the Lease afterwards."""
        api = self._coordination()
        now = datetime.now(UTC)
        timeout = (2.0, float(self.retry_period_s) + 2)
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": self.lease_duration_s,
                    "acquireTime": _micro(now),
                    "renewTime": _micro(now),
                    "leaseTransitions": 0,
                },
            }
            try:
                api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            except client.ApiException as create_exc:
                if create_exc.status == 409:
                    return False  # a peer created it first
                raise
            return True
        spec = self.api.sanitize_for_serialization(lease.spec) or {}
        if not may_acquire(spec, self.identity, now):
            return False
        holder = spec.get("holderIdentity") or ""
        new_spec = dict(spec)
        new_spec.update(
            {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_duration_s,
                "renewTime": _micro(now),
            }
        )
        if holder != self.identity:
            new_spec["acquireTime"] = _micro(now)
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": new_spec,
        }
        try:
            api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=timeout)
        except client.ApiException as exc:
            if exc.status == 409:
                return False  # someone else wrote it meanwhile
            raise
        return True

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except Exception as exc:
            log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the Lease (True) or `stop` is set (False)."""
        log.info("leader election: waiting for Lease %s/%s as %s", self.namespace, self.name,
                 self.identity)  # fmt: skip
        while not stop.is_set():
            if await self._attempt():
                self.is_leader = True
                metrics.LEADER.set(1)
                log.info("leader election: acquired Lease %s/%s", self.namespace, self.name)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period_s)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew until `stop`; returns early (leadership lost) if renewals fail too long."""
        last_renewed = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period_s)
                return
            except TimeoutError:
                pass
            if await self._attempt():
                last_renewed = time.monotonic()
            elif time.monotonic() - last_renewed > self.renew_deadline_s:
                log.error("leader election: could not renew Lease %s/%s for %ds: leadership lost",
                          self.namespace, self.name, self.renew_deadline_s)  # fmt: skip
                self.is_leader = False
                metrics.LEADER.set(0)
                return

    async def release(self) -> None:
        """Give the Lease up so that a peer takes over at once."""
        if not self.is_leader:
            return

        def _release() -> None:
            api = self._coordination()
            lease = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=(2, 5))
            if (lease.spec.holder_identity or "") != self.identity:
                return
            api.patch_namespaced_lease(
                self.name, self.namespace,
                {"spec": {"holderIdentity": None, "leaseDurationSeconds": 1}},
                _request_timeout=(2, 5),
            )  # fmt: skip

        try:
            await asyncio.to_thread(_release)
            log.info("leader election: released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("leader election: release failed (%s); it expires by itself", exc)
        self.is_leader = False
        metrics.LEADER.set(0)
