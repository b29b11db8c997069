"""The agent's view of the NetworkFaults of its cluster: LIST, then WATCH from the list's
resourceVersion, relisting after an expired watch (410) or an error. A background thread
keeps the cache; `changed` is set on every event, so the agent's loop wakes at once."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kubernetes import client, watch
from pydantic import ValidationError

from modeldr.api.networkfault import GROUP, PLURAL, VERSION, Order

log = logging.getLogger("modeldr.agent.watch")

WATCH_SECONDS = 30  # the server ends each watch after this; then it is resumed
REQUEST_TIMEOUT = (3.0, WATCH_SECONDS + 10.0)
RETRY_S = 1.0


def parse(obj: dict[str, Any]) -> Order | str:
    """The order, or why it is not one (an invalid spec is reported, not applied)."""
    meta = obj.get("metadata") or {}
    try:
        return Order.model_validate(
            {
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
                "deleting": bool(meta.get("deletionTimestamp")),
                "spec": obj.get("spec") or {},
                "status": obj.get("status") or {},
            }
        )
    except ValidationError as exc:
        return f"invalid NetworkFault: {exc.errors()[0].get('msg', exc)}"


class OrderCache:
    def __init__(self, api: client.CustomObjectsApi) -> None:
        self.api = api
        self.changed = threading.Event()
        self.synced = threading.Event()  # set after the first successful LIST
        self._objects: dict[str, dict[str, Any]] = {}  # uid -> object
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="order-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                self._watch(version)
            except Exception as exc:  # the API away, a 410, a timeout: list again shortly
                log.info("order watch: %s; listing again in %.0fs", exc, RETRY_S)
                self._stop.wait(RETRY_S)

    def _list(self) -> str:
        listing = self.api.list_cluster_custom_object(
            GROUP, VERSION, PLURAL, _request_timeout=REQUEST_TIMEOUT
        )
        with self._lock:
            self._objects = {o["metadata"]["uid"]: o for o in listing.get("items") or []}
        self.synced.set()
        self.changed.set()
        return str(listing["metadata"].get("resourceVersion") or "")

    def _watch(self, version: str) -> None:
        stream = watch.Watch()
        started = time.monotonic()
        for event in stream.stream(
            self.api.list_cluster_custom_object,
            GROUP,
            VERSION,
            PLURAL,
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
            allow_watch_bookmarks=True,
            _request_timeout=REQUEST_TIMEOUT,
        ):
            if self._stop.is_set():
                stream.stop()
                return
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":
                raise RuntimeError(f"watch error: {obj.get('message', obj)}")
            if kind == "BOOKMARK":
                continue
            uid = obj["metadata"]["uid"]
            with self._lock:
                if kind == "DELETED":
                    self._objects.pop(uid, None)
                else:
                    self._objects[uid] = obj
            self.changed.set()
        log.debug("watch ended after %.0fs; resuming", time.monotonic() - started)
        # A normal end: the next LIST (cheap for a handful of orders) resynchronises.
