"""One poller per member cluster: a fresh snapshot of modeldr's objects every second.

Each tick lists the Deployments, Services, PodDisruptionBudgets and EndpointSlices labelled
`app.kubernetes.io/managed-by=modeldr` in the whole member (four LIST calls per cluster,
whatever the number of ModelDeployments), and every few ticks the GPU nodes and the GPUs pods
request. ModelDeployment daemons read snapshots instead of calling the member's apiserver
themselves, so 200 ModelDeployments cost the same API load as one. A failed LIST is a
snapshot with `error` set: that is how an unreachable cluster shows up.

Daemons register a wake-up callback for their model (`watch`); when a new snapshot changes
the cluster's reachability or the model's ready endpoint addresses (`keys_to_wake`), the
poller calls it, so a failure is checked within about one poll, not one health interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from modeldr.kube.capacity import GpuCapacity, list_items, read_gpu_capacity
from modeldr.kube.constants import (
    MANAGED_BY,
    MANAGER,
    NAME_LABEL,
    NAMESPACE_LABEL,
)
from modeldr.kube.errors import MemberError
from modeldr.kube.members import MemberRegistry
from modeldr.operator import metrics

log = logging.getLogger(__name__)

TICK_S = 1.0
GPU_EVERY_TICKS = 10
SELECTOR = f"{MANAGED_BY}={MANAGER}"
Key = tuple[str, str]  # (namespace, name)
# Called from the poller's thread: must be thread-safe and must not block.
Wake = Callable[[], None]


@dataclass(frozen=True)
class Snapshot:
    cluster: str
    taken_at: float  # time.monotonic()
    time: datetime
    error: str | None = None
    # The apiserver answered 401 or 403: it is up, our credentials are not accepted (never a
    # reason to fail over: the servers behind it may be serving).
    credentials_rejected: bool = False
    deployments: dict[Key, dict[str, Any]] = field(default_factory=dict)
    services: dict[Key, dict[str, Any]] = field(default_factory=dict)
    pdbs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # HorizontalPodAutoscalers (spec.autoscaling); empty where our identity may not list them.
    hpas: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # Ready (not terminating) endpoint addresses by (namespace, service name).
    ready_addresses: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    # The nodes those ready endpoints run on, and the nodes' InternalIPs (refreshed with the
    # GPU capacity): the entry points of a NodePort Service (traffic addresses nodePorts).
    ready_nodes: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    node_addresses: dict[str, str] = field(default_factory=dict)
    gpus: GpuCapacity | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def age(self) -> float:
        return time.monotonic() - self.taken_at

    def owned_namespaces(self, name: str, hub_namespace: str) -> set[str]:
        """Member namespaces holding a Deployment, Service, PodDisruptionBudget or HPA of the
        ModelDeployment `hub_namespace/name` (its owner labels, managed by modeldr)."""
        found = set()
        for objects in (self.deployments, self.services, self.pdbs, self.hpas):
            for (namespace, object_name), obj in objects.items():
                labels = obj.get("metadata", {}).get("labels") or {}
                if (
                    object_name == name
                    and labels.get(MANAGED_BY) == MANAGER
                    and labels.get(NAME_LABEL) == name
                    and labels.get(NAMESPACE_LABEL) == hub_namespace
                ):
                    found.add(namespace)
        return found


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """What the operator reads of an object: managedFields and annotations are most of a
    server-side-applied object's bytes, and 200 ModelDeployments keep 1,200 of them."""
    metadata = obj.get("metadata") or {}
    kept = {k: metadata[k] for k in ("name", "namespace", "labels", "generation") if k in metadata}
    return {"metadata": kept, "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


def _key(obj: dict[str, Any]) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def keys_to_wake(old: Snapshot, new: Snapshot, watched: Iterable[Key]) -> set[Key]:
    """The watched models (namespace, name in the member) whose daemons should check now.

    All of them when the cluster turned unreachable or reachable again; otherwise those
    whose ready endpoint addresses changed (a failed snapshot keeps the old addresses, so
    nothing changes while the cluster stays unreachable).
    """
    if old.ok != new.ok:
        return set(watched)
    if not new.ok:
        return set()
    return {
        key
        for key in watched
        if old.ready_addresses.get(key, ()) != new.ready_addresses.get(key, ())
        or old.ready_nodes.get(key, ()) != new.ready_nodes.get(key, ())
    }


def ready_addresses(slices: list[dict[str, Any]]) -> dict[Key, tuple[str, ...]]:
    return _ready(slices, lambda endpoint: endpoint.get("addresses") or [])


def ready_nodes(slices: list[dict[str, Any]]) -> dict[Key, tuple[str, ...]]:
    return _ready(
        slices, lambda endpoint: [endpoint["nodeName"]] if endpoint.get("nodeName") else []
    )


def _ready(
    slices: list[dict[str, Any]], values: Callable[[dict[str, Any]], list[str]]
) -> dict[Key, tuple[str, ...]]:
    """`values` of the ready (not terminating) endpoints, by (namespace, service name)."""
    out: dict[Key, set[str]] = defaultdict(set)
    for item in slices:
        labels = item["metadata"].get("labels") or {}
        service = labels.get("kubernetes.io/service-name")
        if not service:
            continue
        key = (item["metadata"]["namespace"], service)
        out.setdefault(key, set())
        for endpoint in item.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") and not conditions.get("terminating"):
                out[key].update(values(endpoint))
    return {key: tuple(sorted(found)) for key, found in out.items()}


def node_addresses(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Each node's InternalIP (the address kube-proxy serves NodePorts on)."""
    out = {}
    for node in nodes:
        for address in node.get("status", {}).get("addresses") or []:
            if address.get("type") == "InternalIP" and address.get("address"):
                out[node["metadata"]["name"]] = address["address"]
                break
    return out


class ClusterMonitor:
    def __init__(self, cluster: str, members: MemberRegistry) -> None:
        self.cluster = cluster
        self._members = members
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._watchers: dict[Key, set[Wake]] = {}
        self._hpas_refused = False
        self._snapshot = Snapshot(
            cluster, time.monotonic(), datetime.now(UTC), error="not polled yet"
        )
        self._thread = threading.Thread(target=self._run, name=f"monitor-{cluster}", daemon=True)
        self._thread.start()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def wait_first(self, timeout: float) -> None:
        self._ready.wait(timeout)

    def wake(self) -> None:
        """Poll now (after a write, to see its effect without waiting for the tick)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def watch(self, key: Key, wake: Wake) -> None:
        """Call `wake` when a snapshot changes what a check of `key` would see."""
        with self._lock:
            self._watchers.setdefault(key, set()).add(wake)

    def unwatch(self, key: Key, wake: Wake) -> None:
        with self._lock:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(wake)
                if not watchers:
                    del self._watchers[key]

    def _publish(self, snapshot: Snapshot) -> None:
        previous, self._snapshot = self._snapshot, snapshot
        with self._lock:
            watched = {key: list(wakes) for key, wakes in self._watchers.items()}
        for key in keys_to_wake(previous, snapshot, watched):
            for wake in watched[key]:
                try:
                    wake()
                except Exception:  # a daemon's callback must never stop the poller
                    log.debug("wake-up for %s failed", key, exc_info=True)

    def _run(self) -> None:
        tick = 0
        gpus: GpuCapacity | None = None
        addresses_of_nodes: dict[str, str] = {}
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                api = self._members.get(self.cluster).api
                query = {"labelSelector": SELECTOR}
                deployments = list_items(api, "/apis/apps/v1/deployments", query)
                services = list_items(api, "/api/v1/services", query)
                pdbs = list_items(api, "/apis/policy/v1/poddisruptionbudgets", query)
                hpas = self._list_hpas(api, query)
                slices = list_items(api, "/apis/discovery.k8s.io/v1/endpointslices", query)
                if gpus is None or tick % GPU_EVERY_TICKS == 0:
                    gpus, nodes = read_gpu_capacity(api)
                    addresses_of_nodes = node_addresses(nodes)
                snapshot = Snapshot(
                    self.cluster,
                    time.monotonic(),
                    datetime.now(UTC),
                    deployments={_key(o): slim(o) for o in deployments},
                    services={_key(o): slim(o) for o in services},
                    pdbs={_key(o): slim(o) for o in pdbs},
                    hpas={_key(o): slim(o) for o in hpas},
                    ready_addresses=ready_addresses(slices),
                    ready_nodes=ready_nodes(slices),
                    node_addresses=addresses_of_nodes,
                    gpus=gpus,
                )
                metrics.MEMBER_REACHABLE.labels(self.cluster).set(1)
                self._publish(snapshot)
            except MemberError as exc:
                self._fail(str(exc))
            except client.ApiException as exc:
                rejected = exc.status in (401, 403)
                self._fail(
                    f"{'credentials rejected: ' if rejected else ''}apiserver answered "
                    f"{exc.status} {exc.reason}",
                    credentials_rejected=rejected,
                )
            except Exception as exc:  # connection refused, timeouts, TLS errors
                self._fail(f"apiserver unreachable: {_short(exc)}")
            self._ready.set()
            tick += 1
            self._wake.wait(max(0.0, TICK_S - (time.monotonic() - started)))
            self._wake.clear()

    def _list_hpas(self, api: client.ApiClient, query: dict[str, str]) -> list[dict[str, Any]]:
        """The HPAs, or none where the member identity may not list them (an older
        member-identity chart): a ModelDeployment with spec.autoscaling then reports the
        refused write; nothing else depends on them, so it is no reason to fail over."""
        try:
            return list_items(api, "/apis/autoscaling/v2/horizontalpodautoscalers", query)
        except client.ApiException as exc:
            if exc.status not in (403, 404):
                raise
            if not self._hpas_refused:
                log.warning(
                    "member cluster %s: listing HorizontalPodAutoscalers answered %s; "
                    "spec.autoscaling cannot work there (update the member identity's role)",
                    self.cluster,
                    exc.status,
                )
            self._hpas_refused = True
            return []

    def _fail(self, error: str, *, credentials_rejected: bool = False) -> None:
        previous = self._snapshot
        if previous.ok:
            log.warning("member cluster %s: %s", self.cluster, error)
        metrics.MEMBER_REACHABLE.labels(self.cluster).set(0)
        # Keep the last objects for status display, but mark the snapshot failed.
        self._publish(
            Snapshot(
                self.cluster,
                time.monotonic(),
                datetime.now(UTC),
                error=error,
                credentials_rejected=credentials_rejected,
                deployments=previous.deployments,
                services=previous.services,
                pdbs=previous.pdbs,
                hpas=previous.hpas,
                ready_addresses=previous.ready_addresses,
                ready_nodes=previous.ready_nodes,
                node_addresses=previous.node_addresses,
                gpus=previous.gpus,
            )
        )


def _short(exc: Exception) -> str:
    """urllib3 wraps the cause in MaxRetryError; say the cause in a few words."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("Name or service not known", "host not found"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return words
    return text.splitlines()[0][:200] if text else type(reason).__name__


class Monitors:
    """Starts a ClusterMonitor per member on first use."""

    def __init__(self, members: MemberRegistry) -> None:
        self._members = members
        self._lock = threading.Lock()
        self._monitors: dict[str, ClusterMonitor] = {}

    def get(self, cluster: str) -> ClusterMonitor:
        with self._lock:
            monitor = self._monitors.get(cluster)
            if monitor is None:
                monitor = self._monitors[cluster] = ClusterMonitor(cluster, self._members)
            return monitor

    def unwatch(self, cluster: str, key: Key, wake: Wake) -> None:
        """Like ClusterMonitor.unwatch, without starting a poller that is not running."""
        with self._lock:
            monitor = self._monitors.get(cluster)
        if monitor is not None:
            monitor.unwatch(key, wake)

    def stop(self) -> None:
        with self._lock:
            for monitor in self._monitors.values():
                monitor.stop()
            self._monitors.clear()
