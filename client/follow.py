"""Following a run until its verdict (`modeldr drill run --wait`, `abort --wait`).

Polls the DrillRun and its ModelDeployment every second and shows what changed (client.
display): a live view on a terminal, plain timestamped lines otherwise. SIGINT or SIGTERM
asks the operator to abort the run (spec.abort: true) and keeps following until the run has
ended and every fault of its journal is undone (or abandoned), then reports `interrupted`;
a second signal stops following at once (the operator still undoes the faults: the abort
was sent). A timeout aborts the run the same way. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live

from modeldr.api.drillstatus import OUTSTANDING
from modeldr.client.display import Snapshot, changes, live_view, snapshot
from modeldr.client.hub import Hub, HubUnavailable

POLL_S = 1.0
# After an abort (by signal or timeout): how long to wait for the rollback to finish.
ROLLBACK_WAIT_S = 420.0
# How long the hub may stay unreachable while following before we give up (exit 3).
HUB_PATIENCE_S = 60.0
# The timeout when none is given and the run has no deadline yet.
DEFAULT_TIMEOUT_S = 7200.0
# Beyond the run's own status.deadline, before the CLI gives up on it.
DEADLINE_MARGIN_S = 120.0
# A run no operator picked up (still Pending, no status written) by then: give up on it.
PENDING_PATIENCE_S = 120.0


class Stop:
    """Set by SIGINT/SIGTERM; a second signal makes `hard` true."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals = 0

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def hard(self) -> bool:
        return self.signals >= 2

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stop]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@dataclass
class Followed:
    run: dict[str, Any]
    interrupted: bool = False  # SIGINT/SIGTERM: the run was aborted
    timed_out: bool = False  # the timeout passed: the run was aborted
    settled: bool = True  # no fault in force: every one undone, abandoned or forged


def faults_settled(run: dict[str, Any]) -> bool:
    """No fault in force (a Forged entry was never acted on: nothing to wait for)."""
    faults = (run.get("status") or {}).get("faults") or []
    return all(f.get("state") not in OUTSTANDING for f in faults)


def _deadline(run: dict[str, Any]) -> float | None:
    raw = (run.get("status") or {}).get("deadline")
    if not raw:
        return None
    at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return time.monotonic() + (at - datetime.now(UTC)).total_seconds() + DEADLINE_MARGIN_S


class Follower:
    def __init__(self, hub: Hub, namespace: str, console: Console, *, live: bool) -> None:
        self.hub = hub
        self.namespace = namespace
        self.console = console
        self.live = live

    def _read(self, run_name: str, md_name: str | None) -> tuple[dict[str, Any], Any]:
        """The run and its ModelDeployment, retried while the hub is unreachable."""
        given_up = time.monotonic() + HUB_PATIENCE_S
        while True:
            try:
                run = self.hub.get_run(self.namespace, run_name)
                md = self.hub.get_modeldeployment(self.namespace, md_name) if md_name else None
            except HubUnavailable:
                if time.monotonic() > given_up:
                    raise
                time.sleep(POLL_S)
                continue
            if run is None:
                raise HubUnavailable(f"DrillRun {self.namespace}/{run_name} is gone (deleted?)")
            return run, md

    def follow(
        self, run_name: str, md_name: str | None, stop: Stop, timeout_s: float | None
    ) -> Followed:
        started = time.monotonic()
        deadline = started + timeout_s if timeout_s else None
        aborted_at: float | None = None
        orphan = False  # no operator picked the run up: nothing to wait for after the abort
        result = Followed(run={})
        prev: Snapshot | None = None
        last_probe: datetime | None = None
        view = Live(console=self.console, refresh_per_second=4) if self.live else None
        with view if view is not None else contextlib.nullcontext():
            while True:
                run, md = self._read(run_name, md_name)
                result.run = run
                if deadline is None and timeout_s is None:
                    deadline = _deadline(run)
                never_started = not (run.get("status") or {}).get("startedAt")
                unpicked = never_started and time.monotonic() - started > PENDING_PATIENCE_S
                # Abort once (the first signal, the timeout, or no operator), then keep
                # following: the verdict and the undoing of the faults are still to come.
                if aborted_at is None and (
                    stop.requested or unpicked or self._past(deadline, started)
                ):
                    orphan = self._abort(run_name, result, stop, unpicked=unpicked)
                    aborted_at = time.monotonic()
                    continue
                now = datetime.now(UTC)
                snap = snapshot(run, md, now)
                last_probe = self._show(view, prev, snap, last_probe, now)
                prev = snap
                settled = faults_settled(run)
                if self._done(snap, settled, aborted_at, stop, orphan and never_started):
                    result.settled = settled
                    return result
                stop.event.wait(POLL_S) if aborted_at is None else time.sleep(POLL_S)

    def _abort(self, run_name: str, result: Followed, stop: Stop, *, unpicked: bool) -> bool:
        """Ask the operator to abort the run, saying why; `result` records why. True when the
        abort is for want of an operator (the run stayed Pending): an orphan, whose abort
        need not be waited for while it has not started."""
        result.interrupted = stop.requested
        result.timed_out = not stop.requested
        why = "interrupted" if stop.requested else "timed out"
        orphan = False
        # With a signal the abort is the user's, even of a run still Pending: interrupted.
        if unpicked and not stop.requested:
            orphan = True
            why = (
                f"still Pending after {PENDING_PATIENCE_S:.0f} s (is the modeldr operator running?)"
            )
        self._say(
            f"{why}: aborting DrillRun {run_name} (spec.abort: true); waiting "
            "until its faults are undone (Ctrl-C again to stop waiting)"
        )
        self.hub.abort_run(self.namespace, run_name)
        return orphan

    def _show(
        self,
        view: Live | None,
        prev: Snapshot | None,
        snap: Snapshot,
        last_probe: datetime | None,
        now: datetime,
    ) -> datetime | None:
        """Show the run now: redraw the live view, or print the lines of what changed since
        `prev`. Returns when a probe line was last printed (changes() repeats the probe's
        figures only now and then, not every poll)."""
        if view is not None:
            view.update(live_view(snap))
            return last_probe
        lines = changes(prev, snap, last_probe)
        if any(" probe: " in line for line in lines):
            last_probe = now
        for line in lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return last_probe

    @staticmethod
    def _done(
        snap: Snapshot,
        settled: bool,
        aborted_at: float | None,
        stop: Stop,
        orphan_unstarted: bool,
    ) -> bool:
        """Whether to stop following: the run has its verdict (and, after our abort, every
        fault is undone or abandoned); or, after our abort, a second signal, the rollback
        wait ran out, or the run no operator picked up never started (nothing was touched:
        nothing to wait for)."""
        if snap.final and (settled or aborted_at is None):
            return True
        return aborted_at is not None and (
            stop.hard or time.monotonic() - aborted_at > ROLLBACK_WAIT_S or orphan_unstarted
        )

    def _past(self, deadline: float | None, started: float) -> bool:
        if deadline is None:
            return time.monotonic() - started > DEFAULT_TIMEOUT_S
        return time.monotonic() > deadline

    def _say(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)
