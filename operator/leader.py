"""Leader election on a coordination.k8s.io/v1 Lease, like client-go's leaderelection.

Only the holder runs kopf. The holder renews every retry period; if it cannot renew for the
renew deadline it must stop (the caller exits non-zero and Kubernetes restarts it), because by
then a peer may take the Lease over. On a clean shutdown the holder releases the Lease so a
peer takes over at once instead of waiting for it to expire. Uses get/create/update on one
named Lease only (what the chart's Role grants). The blocking Kubernetes calls run in worker
threads of the elector's own, which reconcile work (asyncio.to_thread's shared pool) can never
saturate: under load a renewal must not queue behind hundreds of member-cluster calls.

As in client-go, a peer's Lease counts as valid until its duration has passed since this
process last saw the Lease record change, measured on the local monotonic clock: replicas need
no synchronised wall clocks, only clocks that tick at about the same rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client

from modeldr.kube import k8s
from modeldr.operator import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


def record_key(spec: dict[str, Any]) -> tuple[str, str, int, int]:
    """What identifies one version of a Lease record: a change means its holder is alive."""
    return (
        str(spec.get("holderIdentity") or ""),
        str(spec.get("renewTime") or ""),
        int(spec.get("leaseDurationSeconds") or 0),
        int(spec.get("leaseTransitions") or 0),
    )


def may_acquire(spec: dict[str, Any], identity: str, observed_at: float, now: float) -> bool:
    """Whether `identity` may take or renew a Lease with this spec.

    `observed_at` is when (monotonic seconds) this process first saw the record as it is now,
    `now` the monotonic time: a peer's Lease is free once it is released (no holder) or once
    its duration has passed without the holder renewing it.
    """
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == identity:
        return True
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return now >= observed_at + duration


def _micro(moment: datetime) -> str:
    # MicroTime: RFC 3339 with microseconds.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    api: client.ApiClient
    namespace: str
    name: str
    identity: str
    lease_duration_s: float = 15
    renew_deadline_s: float = 10
    retry_period_s: float = 2
    is_leader: bool = False
    # The Lease record as last read, when it was first seen so (monotonic), and its holder.
    observed_key: tuple[str, str, int, int] | None = field(default=None, repr=False)
    observed_at: float = field(default=0.0, repr=False)
    observed_holder: str = ""
    # Two threads: a renewal cut short at the deadline may still hang in one of them.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="lease"),
        repr=False,
    )

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def _coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)

    def _observe(self, spec: dict[str, Any]) -> None:
        key = record_key(spec)
        if key != self.observed_key:
            self.observed_key = key
            self.observed_at = time.monotonic()
        self.observed_holder = key[0]

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking). True when this process holds the Lease afterwards."""
        api = self._coordination()
        now = datetime.now(UTC)
        timeout = (2.0, float(self.retry_period_s) + 2)
        lease = k8s.call(
            api.read_namespaced_lease,
            self.name,
            self.namespace,
            _request_timeout=timeout,
            absent=None,
        )
        if lease is None:
            return self._create(api, now, timeout)
        spec = self.api.sanitize_for_serialization(lease.spec) or {}
        self._observe(spec)
        if not may_acquire(spec, self.identity, self.observed_at, time.monotonic()):
            return False
        return self._take_or_renew(api, lease, spec, now, timeout)

    def _create(
        self, api: client.CoordinationV1Api, now: datetime, timeout: tuple[float, float]
    ) -> bool:
        """No Lease yet: create it held by this process; False when a peer created it first."""
        created: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, int(self.lease_duration_s)),
            "acquireTime": _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": 0,
        }
        body = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": created}
        create = api.create_namespaced_lease
        if (
            k8s.call(create, self.namespace, body, _request_timeout=timeout, conflict=k8s.LOST)
            is k8s.LOST
        ):
            return False
        self._observe(created)
        return True

    def _take_or_renew(
        self,
        api: client.CoordinationV1Api,
        lease: Any,
        spec: dict[str, Any],
        now: datetime,
        timeout: tuple[float, float],
    ) -> bool:
        """Write this process into the Lease (a renewal, or a takeover counted as a
        transition) at the version read; False when someone else wrote it meanwhile (the
        next read tells who)."""
        holder = spec.get("holderIdentity") or ""
        new_spec = dict(spec)
        new_spec.update(
            {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, int(self.lease_duration_s)),
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
        replace = api.replace_namespaced_lease
        lost = k8s.call(
            replace, self.name, self.namespace, body, _request_timeout=timeout, conflict=k8s.LOST
        )
        if lost is k8s.LOST:
            return False
        self._observe(new_spec)
        return True

    async def _attempt(self) -> bool:
        try:
            return await self._in_thread(self.try_acquire_or_renew)
        except Exception as exc:
            log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the Lease (True) or `stop` is set (False)."""
        log.info(
            "leader election: waiting for Lease %s/%s as %s",
            self.namespace,
            self.name,
            self.identity,
        )
        reported = ""
        while not stop.is_set():
            if await self._attempt():
                self.is_leader = True
                metrics.LEADER.set(1)
                log.info("leader election: acquired Lease %s/%s", self.namespace, self.name)
                return True
            if self.observed_holder and self.observed_holder != reported:
                reported = self.observed_holder
                log.info(
                    "leader election: Lease %s/%s is held by %s",
                    self.namespace,
                    self.name,
                    reported,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period_s)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew every retry period until `stop`. Returns early, leadership lost, when a
        peer holds the Lease or when no renewal succeeded for the renew deadline (each attempt
        is cut short at the deadline, like client-go's).

        The loop runs in a thread of its own, not on the event loop: with hundreds of
        ModelDeployments the loop can be busy for seconds, and a renewal must not wait for it.
        """
        loop = asyncio.get_running_loop()
        stopping = threading.Event()
        done: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def run() -> None:
            try:
                self._hold_blocking(stopping)
            finally:
                # The loop may be gone already (hold returned on `stop`, then the loop closed).
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(finished)

        threading.Thread(target=run, name="lease-renewal", daemon=True).start()
        waiter: asyncio.Future[None] = asyncio.ensure_future(self._until(stop))
        try:
            await asyncio.wait({done, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.set()
            waiter.cancel()

    @staticmethod
    async def _until(stop: asyncio.Event) -> None:
        await stop.wait()

    def _hold_blocking(self, stopping: threading.Event) -> None:
        last_renewed = time.monotonic()
        while not stopping.wait(self.retry_period_s):
            started = time.monotonic()
            remaining = self.renew_deadline_s - (started - last_renewed)
            renewed = False
            if remaining > 0:
                future = self.executor.submit(self.try_acquire_or_renew)
                try:
                    renewed = future.result(timeout=remaining)
                except FutureTimeout:
                    renewed = False
                except Exception as exc:
                    log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, exc)
            if stopping.is_set():
                return
            if renewed:
                last_renewed = time.monotonic()
                if last_renewed - started > self.renew_deadline_s / 2:
                    log.warning(
                        "leader election: renewing Lease %s/%s took %.1fs",
                        self.namespace,
                        self.name,
                        last_renewed - started,
                    )
                continue
            if self.observed_holder not in ("", self.identity):
                reason = f"it is now held by {self.observed_holder}"
            elif time.monotonic() - last_renewed >= self.renew_deadline_s:
                reason = f"could not renew it for {self.renew_deadline_s}s"
            else:
                continue
            log.error(
                "leader election: Lease %s/%s: %s: leadership lost",
                self.namespace,
                self.name,
                reason,
            )
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
                self.name,
                self.namespace,
                {"spec": {"holderIdentity": None, "leaseDurationSeconds": 1}},
                _request_timeout=(2, 5),
            )

        try:
            await self._in_thread(_release)
            log.info("leader election: released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("leader election: release failed (%s); it expires by itself", exc)
        self.is_leader = False
        metrics.LEADER.set(0)
