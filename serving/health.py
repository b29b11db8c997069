"""Liveness and readiness, kept honest.

Live: the process answers HTTP. Ready: the model is loaded, a warm-up batch has
run, the server is not draining, and inference is not failing repeatedly. The
last rule takes a pod whose model broke (CUDA error, corrupted state) out of
the Service so clients fail over instead of collecting 500s; a later good batch
(the recovery probe re-runs the warm-up) makes it ready again.
"""

from __future__ import annotations

import threading


class HealthState:
    def __init__(self, failure_threshold: int) -> None:
        self.failure_threshold = failure_threshold
        self._lock = threading.Lock()
        self.loaded = False
        self.warmed = False
        self.draining = False
        self.consecutive_failures = 0

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= self.failure_threshold

    @property
    def ready(self) -> bool:
        # One rule for the probes, the ready gauge and the 503 reason: they cannot disagree.
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why the server is not ready, in words for the probe's response body."""
        if not self.loaded:
            return "model is loading"
        if not self.warmed:
            return "model is warming up"
        if self.draining:
            return "server is draining for shutdown"
        if self.failing:
            return f"last {self.consecutive_failures} inference batches failed"
        return None

    def mark_loaded(self) -> None:
        self.loaded = True

    def mark_warmed(self) -> None:
        self.warmed = True

    def begin_drain(self) -> None:
        self.draining = True

    def record_success(self) -> None:
        with self._lock:
            self.consecutive_failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self.consecutive_failures += 1
