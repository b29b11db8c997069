"""Which DrillRun holds which ModelDeployment: shared by the drill handlers (they claim and
release) and the ModelDeployment's tick (its DrillInProgress condition)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class ActiveDrills:
    """Which DrillRun holds which ModelDeployment (one run per target at a time). Only the
    leader runs drills, and a new leader rolls back every run it finds in flight, so this
    process-wide record is the whole truth. The ModelDeployment's tick reads it for its
    DrillInProgress condition. Used from the event loop and from worker threads."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _holders: dict[tuple[str, str], str] = field(default_factory=dict)

    def claim(self, namespace: str, name: str, run: str) -> str | None:
        """Hold the target for `run`; returns the other run holding it, None when claimed."""
        with self._lock:
            holder = self._holders.setdefault((namespace, name), run)
            return None if holder == run else holder

    def release(self, namespace: str, name: str, run: str) -> None:
        with self._lock:
            if self._holders.get((namespace, name)) == run:
                del self._holders[(namespace, name)]

    def holder(self, namespace: str, name: str) -> str | None:
        with self._lock:
            return self._holders.get((namespace, name))
