"""The run's probe timeline for its report: per second, the requests sent, how many
succeeded, how many of those answered correctly (as the baseline did, drills/answers.py), their
p99 latency and the cluster that answered most of them.

Fed by the traffic probe's `on_sample` hook (its worker threads, hence the lock). A sample is
filed under the second it was *sent* in (so an outage shows where clients hit it, not where
their timeouts ended) and its answer may arrive up to the probe's timeout later: a second
stays open that long, then is closed into a `Point` and its latencies dropped. Memory is
bounded: at most `max_points` closed points; beyond that neighbours are merged two by two
(the resolution doubles), so a long run keeps its whole span at a coarser grain.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modeldr.drills.probe_stats import ProbeSample

# About 4 hours at one point per second before the resolution coarsens.
MAX_POINTS = 14_400
# Ready replicas are read every couple of seconds: about 4 hours before every other is dropped.
MAX_REPLICA_POINTS = 7_200


@dataclass(frozen=True)
class ReplicaPoint:
    """Ready replicas per role at `t` (Unix seconds), from the ModelDeployment's status;
    None for a role whose count was unknown then (its cluster unreachable)."""

    t: float
    primary: int | None
    standby: int | None

    def to_row(self) -> list[Any]:
        return [round(self.t, 3), self.primary, self.standby]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ReplicaPoint:
        t, primary, standby = row
        return cls(float(t), primary, standby)


@dataclass(frozen=True)
class Point:
    """One bucket: `t` its start (Unix seconds), `width` its length in seconds."""

    t: float
    width: float
    sent: int
    ok: int
    # Of the successful requests; a merged point keeps the larger of its parts' (a
    # conservative p99: the report must not make a slow second look fast).
    p99_ms: float | None
    cluster: str | None
    # Successful answers equal to the baseline's for their text; None: none was judged (no
    # model checks, or before the baseline).
    correct: int | None = None

    @property
    def success_ratio(self) -> float | None:
        return self.ok / self.sent if self.sent else None

    @property
    def correct_ratio(self) -> float | None:
        """Correct answers / requests sent: below success_ratio when answers were wrong."""
        return self.correct / self.sent if self.sent and self.correct is not None else None

    def to_row(self) -> list[Any]:
        p99 = None if self.p99_ms is None else round(self.p99_ms, 1)
        return [round(self.t, 3), self.width, self.sent, self.ok, p99, self.cluster, self.correct]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Point:
        # Six columns: a report written before answers were judged.
        t, width, sent, ok, p99, cluster, *rest = row
        correct = rest[0] if rest else None
        return cls(
            float(t),
            float(width),
            int(sent),
            int(ok),
            None if p99 is None else float(p99),
            cluster,
            None if correct is None else int(correct),
        )


@dataclass
class _Open:
    sent: int = 0
    ok: int = 0
    correct: int | None = None
    latencies: list[float] = field(default_factory=list)
    clusters: Counter[str] = field(default_factory=Counter)

    def point(self, second: float) -> Point:
        return Point(
            second,
            1.0,
            self.sent,
            self.ok,
            _ms(nearest_rank_p99(self.latencies)),
            self.clusters.most_common(1)[0][0] if self.clusters else None,
            self.correct,
        )


def nearest_rank_p99(latencies: Iterable[float]) -> float | None:
    ordered = sorted(latencies)
    if not ordered:
        return None
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def merge(a: Point, b: Point) -> Point:
    """One point spanning `a` (the earlier) and `b`."""
    return Point(
        a.t,
        b.t + b.width - a.t,
        a.sent + b.sent,
        a.ok + b.ok,
        _max(a.p99_ms, b.p99_ms),
        b.cluster or a.cluster,
        _sum(a.correct, b.correct),
    )


def coarsen(points: Sequence[Point]) -> list[Point]:
    """Neighbours merged two by two: half the points, twice the width."""
    out = [merge(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    if len(points) % 2:
        out.append(points[-1])
    return out


class Timeline:
    def __init__(
        self, *, wall_offset: float, open_seconds: float, max_points: int = MAX_POINTS
    ) -> None:
        """`wall_offset`: Unix time minus the probe's clock (sample.sent_at + offset is the
        wall time); `open_seconds`: how long a second waits for late answers (the probe's
        timeout plus a margin)."""
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.wall_offset = wall_offset
        self.open_seconds = open_seconds
        self.max_points = max_points
        self._lock = threading.Lock()
        self._open: dict[int, _Open] = {}
        self._closed: list[Point] = []
        self._width = 1.0
        self._replicas: list[ReplicaPoint] = []

    def add_replicas(self, wall: float, ready: dict[str, int] | None) -> None:
        """File the ready replicas read at `wall` (Unix seconds); None: unreadable."""
        ready = ready or {}
        point = ReplicaPoint(wall, ready.get("primary"), ready.get("standby"))
        with self._lock:
            self._replicas.append(point)
            if len(self._replicas) > MAX_REPLICA_POINTS:
                self._replicas = self._replicas[::2]

    def replicas(self) -> list[ReplicaPoint]:
        with self._lock:
            return list(self._replicas)

    def add(self, sample: ProbeSample, agrees: bool | None = None) -> None:
        """File a sample; `agrees`: its answer judged against the baseline (None: not)."""
        second = math.floor(sample.sent_at + self.wall_offset)
        with self._lock:
            bucket = self._open.get(second)
            if bucket is None:
                if self._closed and second < self._closed[-1].t + self._closed[-1].width:
                    return  # later than open_seconds: its second is closed already
                bucket = self._open[second] = _Open()
            bucket.sent += 1
            if agrees is not None:
                bucket.correct = (bucket.correct or 0) + int(agrees)
            if sample.ok:
                bucket.ok += 1
                bucket.latencies.append(sample.latency)
                if sample.cluster:
                    bucket.clusters[sample.cluster] += 1
            self._close_before(sample.sent_at + self.wall_offset - self.open_seconds)

    def points(self) -> list[Point]:
        """Every point so far, the open seconds included (closed by this call)."""
        with self._lock:
            self._close_before(math.inf)
            return list(self._closed)

    def recent(self, window_s: float, now_wall: float) -> Point:
        """The last `window_s` seconds (to `now_wall`, Unix time) as one point, open seconds
        included: its p99 is the worst second's (for the live display)."""
        start = now_wall - window_s
        with self._lock:
            closed = [p for p in self._closed if p.t >= start]
            opened = [b.point(float(sec)) for sec, b in sorted(self._open.items()) if sec >= start]
        points = closed + opened
        if not points:
            return Point(start, window_s, 0, 0, None, None)
        p99s = [p.p99_ms for p in points if p.p99_ms is not None]
        cluster = next((p.cluster for p in reversed(points) if p.cluster), None)
        return Point(
            start,
            window_s,
            sum(p.sent for p in points),
            sum(p.ok for p in points),
            max(p99s) if p99s else None,
            cluster,
            sum_optional(p.correct for p in points),
        )

    @property
    def resolution_seconds(self) -> float:
        return self._width

    def _close_before(self, wall: float) -> None:
        for second in sorted(s for s in self._open if s + 1 <= wall):
            self._append(self._open.pop(second).point(float(second)))

    def _append(self, point: Point) -> None:
        last = self._closed[-1] if self._closed else None
        if last is not None and point.t < last.t + self._width:
            # The last point's slot at the current resolution is not full yet: fold it in.
            self._closed[-1] = merge(last, point)
            return
        self._closed.append(point)
        if len(self._closed) > self.max_points:
            self._closed = coarsen(self._closed)
            self._width *= 2


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _sum(a: int | None, b: int | None) -> int | None:
    return sum_optional((a, b))


def sum_optional(values: Iterable[int | None]) -> int | None:
    """The sum of the values given; None when none was (nothing judged is not 0 correct)."""
    given = [v for v in values if v is not None]
    return sum(given) if given else None


def _max(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None
