"""The agent's second duty: the drill faults made on its own Node through the member API (a
NodeDrain's cordon, a GPULoss taint) expire here, on the member side. The agent watches its
Node; when an annotation of api/nodefault.py says a fault's expiry has passed (the operator
stopped renewing it: dead, cut off, or its hub gone), it removes the cordon or the taint and
the annotations itself. The patch names the resourceVersion read: a change meanwhile is a
conflict, read again, never a lost write.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client, watch

from modeldr.api import nodefault

log = logging.getLogger("modeldr.agent.nodes")

WATCH_SECONDS = 240
REQUEST_TIMEOUT = (3.0, WATCH_SECONDS + 10.0)
PATCH_TIMEOUT = (3.0, 10.0)
RETRY_S = 1.0


class NodeWatch:
    """The agent's own Node, kept current by a LIST + WATCH on its name; `changed` is set
    on every event (the agent's loop wakes on it)."""

    def __init__(self, core: client.CoreV1Api, node: str, changed: threading.Event) -> None:
        self.core = core
        self.node = node
        self.changed = changed
        self._latest: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def latest(self) -> Any:
        with self._lock:
            return self._latest

    def offer(self, node: Any) -> None:
        """The node as this agent's own patch returned it (newer than the watch, for now)."""
        with self._lock:
            self._latest = node

    def _run(self) -> None:
        selector = f"metadata.name={self.node}"
        while not self._stop.is_set():
            try:
                listing = self.core.list_node(
                    field_selector=selector, _request_timeout=REQUEST_TIMEOUT
                )
                with self._lock:
                    self._latest = listing.items[0] if listing.items else None
                self.changed.set()
                stream = watch.Watch()
                for event in stream.stream(
                    self.core.list_node,
                    field_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=REQUEST_TIMEOUT,
                ):
                    if self._stop.is_set():
                        stream.stop()
                        return
                    if event["type"] in ("ADDED", "MODIFIED"):
                        with self._lock:
                            self._latest = event["object"]
                        self.changed.set()
            except Exception as exc:  # the API away, a 410, RBAC: list again shortly
                log.info("node watch: %s; listing again in %.0fs", exc, RETRY_S)
                self._stop.wait(RETRY_S)


def taints_of(node: Any) -> list[dict[str, Any]]:
    return [
        {"key": t.key, "value": t.value, "effect": t.effect}
        | ({"timeAdded": t.time_added.isoformat()} if t.time_added else {})
        for t in (node.spec.taints or [])
    ]


def reap(core: client.CoreV1Api, node: Any, now: datetime) -> tuple[datetime | None, Any]:
    """Undo every drill fault on `node` whose expiry has passed. Returns when to look again
    (the next expiry; a second on after a failed patch; None: no fault left) and the node
    as the last patch left it."""
    while node is not None:
        found = nodefault.marks(dict(node.metadata.annotations or {}))
        due = nodefault.due(found, now)
        if not due:
            return nodefault.next_due(found), node
        mark = due[0]
        patch = nodefault.repair(mark, taints_of(node))
        patch["metadata"]["resourceVersion"] = node.metadata.resource_version
        name = node.metadata.name
        started = time.monotonic()
        try:
            node = core.patch_node(name, patch, _request_timeout=PATCH_TIMEOUT)
        except client.ApiException as exc:
            # 409: the node changed since it was read; the watch brings it, and the next
            # look decides again. Anything else: said, and tried again then too.
            log.warning("undoing %s %s on %s: %s", mark.kind, mark.fault_id, name, exc.reason)
            return now + timedelta(seconds=RETRY_S), node
        expired = mark.expires_at.isoformat() if mark.expires_at else "unreadable"
        log.info(
            "%s of fault %s on node %s expired (%s): undone in %.0f ms, no operator involved",
            mark.kind,
            mark.fault_id or "?",
            name,
            expired,
            (time.monotonic() - started) * 1000,
        )
    return None, node
