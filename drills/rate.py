"""When the drill probe's requests are due, at a rate that a `Load` step changes (pure).

The schedule is piecewise: each change starts a segment at the instant it is made, with the
rate the probe had then, ramping linearly to the new rate over `ramp_s` seconds, then steady.
`count(t)` is the number of requests due by `t` (the integral of the rate), `due(i)` its
inverse: when request i is due. Requests already due before a change keep their times, so a
change never sends a burst to catch up and never skips one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    start: float  # clock time the segment begins
    first: float  # requests due before it (count at `start`)
    rate_from: float
    rate_to: float
    ramp_s: float

    def rate_at(self, t: float) -> float:
        elapsed = max(0.0, t - self.start)
        if self.ramp_s <= 0 or elapsed >= self.ramp_s:
            return self.rate_to
        return self.rate_from + (self.rate_to - self.rate_from) * elapsed / self.ramp_s

    def count(self, t: float) -> float:
        elapsed = max(0.0, t - self.start)
        ramp = min(elapsed, self.ramp_s) if self.ramp_s > 0 else 0.0
        slope = (self.rate_to - self.rate_from) / self.ramp_s if self.ramp_s > 0 else 0.0
        during_ramp = self.rate_from * ramp + slope * ramp * ramp / 2
        return self.first + during_ramp + self.rate_to * (elapsed - ramp)

    def due(self, i: float) -> float:
        """When the count reaches i (i >= first)."""
        need = i - self.first
        ramp_total = self.count(self.start + self.ramp_s) - self.first if self.ramp_s > 0 else 0.0
        if need > ramp_total or self.ramp_s <= 0:
            return self.start + self.ramp_s + (need - ramp_total) / self.rate_to
        slope = (self.rate_to - self.rate_from) / self.ramp_s
        if abs(slope) < 1e-12:
            return self.start + need / self.rate_from
        # rate_from * x + slope * x^2 / 2 = need, the root within the ramp
        root = (-self.rate_from + math.sqrt(self.rate_from**2 + 2 * slope * need)) / slope
        return self.start + root


class RateSchedule:
    """Not thread-safe: the probe holds its lock around every call."""

    def __init__(self, start: float, rate: float) -> None:
        if rate <= 0:
            raise ValueError("the rate must be > 0")
        self._segments = [Segment(start, 0.0, rate, rate, 0.0)]

    def _at(self, t: float) -> Segment:
        for segment in reversed(self._segments):
            if t >= segment.start:
                return segment
        return self._segments[0]

    def rate_at(self, t: float) -> float:
        return self._at(t).rate_at(t)

    def count(self, t: float) -> float:
        return self._at(t).count(t)

    def due(self, i: int) -> float:
        for segment in reversed(self._segments):
            if i >= segment.first:
                return segment.due(i)
        return self._segments[0].due(i)

    def change(self, now: float, rate: float, ramp_s: float = 0.0) -> None:
        """From `now` on, ramp from the rate now to `rate` over `ramp_s` seconds."""
        if rate <= 0 or ramp_s < 0:
            raise ValueError("the rate must be > 0 and the ramp >= 0")
        last = self._segments[-1]
        now = max(now, last.start)
        self._segments.append(Segment(now, last.count(now), last.rate_at(now), rate, ramp_s))
        del self._segments[:-2]  # the probe only asks about the present and the future
