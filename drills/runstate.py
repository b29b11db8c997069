"""A DrillRun's status as the engine keeps it: the pydantic model in memory, written to the
hub through the status subresource after every change that matters (one writer: the
engine). The status is the whole record of the run, the fault journal included, so a new
leader can undo what this one did."""

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


class RunState:
    """The status and its writer; `write()` is awaited after each change."""

    def __init__(
        self,
        hub: client.ApiClient,
        ref: RunRef,
        status: DrillRunStatus,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.hub = hub
        self.ref = ref
        self.status = status
        self._lock = asyncio.Lock()
        self._sleep = sleep

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
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    await asyncio.to_thread(
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
                    return
                except Exception as exc:
                    log.warning(
                        "%s/%s: status write failed (attempt %d): %s",
                        self.ref.namespace,
                        self.ref.name,
                        attempt + 1,
                        exc,
                    )
                    await self._sleep(min(0.5 * 2**attempt, 4.0))
        raise StatusWriteError(f"the hub did not take the status of DrillRun {self.ref.name}")
