"""A DrillRun's status as the engine keeps it: the pydantic model in memory, written to the
hub through the status subresource after every change that matters (one writer: the
engine). The status is the whole record of the run, the fault journal included, so a new
leader can undo what this one did.

Writes are fenced: each names the resourceVersion this writer last saw. A conflict is read
again: when the stored status is still what this writer knows (only metadata changed, e.g.
kopf's annotations), the write goes again on the new version; when someone else wrote the
status (a new leader rolled the run back while this one was paused or cut off), this writer
is deposed: StatusFenced, now and on every later write, and it acts no more (no fault is
injected without a status write first)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from modeldr.api.drillstatus import DrillRunStatus
from modeldr.kube import k8s
from modeldr.kube.constants import DRILLRUNS, GROUP, VERSION

log = logging.getLogger(__name__)
# Status writes retry this often before the engine gives up on the run (a hub that does
# not take the journal must not get a fault injected).
WRITE_ATTEMPTS = 5


def now() -> datetime:
    return datetime.now(UTC)


def status_body(status: DrillRunStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


@dataclass(frozen=True)
class RunRef:
    namespace: str
    name: str
    uid: str

    def body(self) -> dict[str, Any]:
        """Enough of the object for kopf.event."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DrillRun",
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }


class StatusWriteError(RuntimeError):
    """The hub did not take the run's status (so no fault may be injected)."""


class StatusFenced(StatusWriteError):
    """Someone else wrote the run's status since this writer last did: it is deposed."""


class RunState:
    """The status and its writer; `write()` is awaited after each change."""

    def __init__(
        self,
        hub: client.ApiClient,
        ref: RunRef,
        status: DrillRunStatus,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        version: str | None = None,
        known: dict[str, Any] | None = None,
    ) -> None:
        """`version` and `known`: the run's resourceVersion and stored status as this writer
        read them (None: not known, the first write is not fenced)."""
        self.hub = hub
        self.ref = ref
        self.status = status
        self._lock = asyncio.Lock()
        self._sleep = sleep
        self._version = version
        self._known = known
        self.fenced: str | None = None

    async def write(self) -> None:
        """Write the whole status; retried, then StatusWriteError. A run deleted meanwhile
        is not an error here (its deletion handler takes over)."""
        body = {"status": status_body(self.status)}
        if self.status.current_step is None:
            # A merge patch leaves out what is absent: a null removes the last step's name
            # (else a finished run would still show a current step).
            body["status"]["currentStep"] = None
        api = client.CustomObjectsApi(self.hub)
        async with self._lock:
            if self.fenced:
                raise StatusFenced(self.fenced)
            for attempt in range(WRITE_ATTEMPTS):
                if self._version is not None:
                    body["metadata"] = {"resourceVersion": self._version}
                try:
                    answer = await asyncio.to_thread(
                        k8s.call,
                        api.patch_namespaced_custom_object_status,
                        GROUP,
                        VERSION,
                        self.ref.namespace,
                        DRILLRUNS,
                        self.ref.name,
                        body,
                        _request_timeout=(2, 10),
                        absent=k8s.DONE,
                    )
                    if isinstance(answer, dict):  # else DONE: the run is gone
                        version = (answer.get("metadata") or {}).get("resourceVersion")
                        if version:
                            self._version = str(version)
                            self._known = dict(answer.get("status") or {})
                    return
                except client.ApiException as exc:
                    if exc.status == 409 and await self._still_mine(api):
                        continue  # only metadata changed: again, on the version just read
                    self._failed(attempt, exc)
                except StatusFenced:
                    raise
                except Exception as exc:
                    self._failed(attempt, exc)
                await self._sleep(min(0.5 * 2**attempt, 4.0))
        raise StatusWriteError(f"the hub did not take the status of DrillRun {self.ref.name}")

    def _failed(self, attempt: int, exc: Exception) -> None:
        log.warning(
            "%s/%s: status write failed (attempt %d): %s",
            self.ref.namespace,
            self.ref.name,
            attempt + 1,
            exc,
        )

    async def _still_mine(self, api: client.CustomObjectsApi) -> bool:
        """After a conflict: the stored status is still the one this writer knows (then its
        version is taken), else StatusFenced. False when it cannot be read now."""
        try:
            current = await asyncio.to_thread(
                api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.ref.namespace,
                DRILLRUNS,
                self.ref.name,
                _request_timeout=(2, 10),
            )
        except Exception:
            return False
        stored = dict(current.get("status") or {})
        if self._known is not None and stored != self._known:
            self.fenced = (
                f"DrillRun {self.ref.namespace}/{self.ref.name}: its status was written by "
                "someone else (a new leader) since this operator last wrote it: this one is "
                "deposed and writes, injects and undoes nothing more"
            )
            log.error("%s", self.fenced)
            raise StatusFenced(self.fenced)
        self._version = str(current["metadata"]["resourceVersion"])
        self._known = stored
        return True
