"""Cron schedules, pure: when a DrillPlan's runs (or a ModelBackup's backups) are due and
what becomes of each due time (a run starts, or it is skipped and said why), the way the
CronJob controller decides for Jobs. The plan's daemon (`plandaemon.run_plan`,
`plans.schedule_once`) and the backups' (`operator/backupdaemon.py`) do the I/O around it.

- `spec.schedule` is cron: five fields, `@hourly`-style shorthands, or six fields whose
  first is the second (cronsim's extension; for tests and drills that must run more often
  than once a minute). Evaluated in `spec.timeZone` (IANA, default UTC) with cron's DST
  rules (cronsim): a time the spring-forward skips runs at the first minute after the gap,
  a fixed time the fall-back repeats runs once; `*` hours run every real hour.
- Only the latest due time ever starts a run (a restarted operator does not start a burst
  of runs it missed); the earlier ones are `Superseded` misses. A due time older than
  `startingDeadlineSeconds` when it is seen is `StartingDeadlineExceeded`; with
  `concurrencyPolicy: Forbid` a due time while a run of the plan is in flight is
  `ConcurrencyForbidden`. `Allow` starts it anyway: the engine's one-run-per-target rule then
  ends it `Error`, `TargetBusy`, which records a schedule too tight for its drill.
- A suspended plan lets due times pass: no run, and no miss (nothing was asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# The @ shorthands the CronJob controller accepts, as the five fields they stand for.
SHORTHANDS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Due times counted one by one after an outage of the operator; beyond that the count says
# "at least" (a minute schedule and a week down must not enumerate 10 000 times per loop).
MAX_COUNTED: Final = 100

MissReason = Literal["StartingDeadlineExceeded", "ConcurrencyForbidden", "Superseded"]
MISS_REASONS: Final[tuple[MissReason, ...]] = (
    "StartingDeadlineExceeded",
    "ConcurrencyForbidden",
    "Superseded",
)


class ScheduleError(ValueError):
    """spec.schedule or spec.timeZone cannot be evaluated (the message names the field)."""


@dataclass(frozen=True)
class Schedule:
    expression: str  # as given
    fields: str  # the cron fields cronsim evaluates (a shorthand expanded)
    zone: ZoneInfo
    with_seconds: bool

    @classmethod
    def parse(cls, expression: str, time_zone: str | None = None) -> Schedule:
        fields = SHORTHANDS.get(expression.strip(), expression.strip())
        try:
            zone = ZoneInfo(time_zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"spec.timeZone {time_zone!r} is not an IANA time zone") from exc
        count = len(fields.split())
        if count not in (5, 6):
            raise ScheduleError(
                f"spec.schedule {expression!r}: cron needs 5 fields (or 6 with a leading "
                f"seconds field), not {count}"
            )
        try:
            CronSim(fields, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise ScheduleError(f"spec.schedule {expression!r}: {exc}") from exc
        return cls(expression, fields, zone, count == 6)

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment` (UTC)."""
        return next(iter(CronSim(self.fields, moment.astimezone(self.zone)))).astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last due time at or before `moment` (UTC)."""
        # cronsim's reverse iteration excludes its start: start a second later, whole seconds.
        start = moment.astimezone(self.zone).replace(microsecond=0) + timedelta(seconds=1)
        return next(iter(CronSim(self.fields, start, reverse=True))).astimezone(UTC)

    def due(self, after: datetime, until: datetime) -> tuple[list[datetime], bool]:
        """Due times in (after, until], oldest first: at most MAX_COUNTED of the oldest plus
        the latest; the flag says some in between were not listed."""
        times: list[datetime] = []
        moment = after
        while True:
            moment = self.next_after(moment)
            if moment > until:
                return times, False
            if len(times) == MAX_COUNTED:
                latest = self.latest_at_or_before(until)
                return [*times, latest], latest != moment
            times.append(moment)

    def run_name(self, plan: str, due: datetime) -> str:
        """A scheduled run's name: unique per due time and the same for the same due time,
        so a scheduler that retries (or restarts) never starts two for one time. Minutes
        since the epoch like CronJob's Jobs; seconds for a schedule with a seconds field."""
        stamp = int(due.timestamp())
        return f"{plan}-{stamp if self.with_seconds else stamp // 60}"


@dataclass(frozen=True)
class Miss:
    scheduled: datetime
    reason: MissReason
    message: str


@dataclass
class Decision:
    """What to do now. `start`: the due time to start a run for. `handled_through`: every
    due time up to it is dealt with (the next decision starts after it). `next_time`: when
    to decide again (None while suspended or unevaluable)."""

    start: datetime | None = None
    misses: list[Miss] = field(default_factory=list)
    uncounted: bool = False  # more misses than listed (a long outage of the operator)
    handled_through: datetime | None = None
    next_time: datetime | None = None


def decide(
    schedule: Schedule,
    *,
    after: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
    active_runs: list[str],
    concurrency_policy: str,
    suspended: bool,
) -> Decision:
    """The scheduler's decision at `now`, for due times after `after` (the last handled due
    time, or the plan's creation)."""
    times, uncounted = schedule.due(after, now)
    nxt = schedule.next_after(now)
    if not times:
        return Decision(handled_through=None, next_time=None if suspended else nxt)
    decision = Decision(handled_through=times[-1], next_time=None if suspended else nxt)
    if suspended:
        return decision
    *earlier, latest = times
    decision.uncounted = uncounted
    decision.misses = [
        Miss(t, "Superseded", f"due at {stamp(t)}; a later due time ({stamp(latest)}) replaced it")
        for t in earlier
    ]
    late = (now - latest).total_seconds()
    if starting_deadline_seconds is not None and late > starting_deadline_seconds:
        decision.misses.append(
            Miss(
                latest,
                "StartingDeadlineExceeded",
                f"due at {stamp(latest)}, seen {math.floor(late)} s late: more than "
                f"startingDeadlineSeconds ({starting_deadline_seconds})",
            )
        )
    elif active_runs and concurrency_policy == "Forbid":
        decision.misses.append(
            Miss(
                latest,
                "ConcurrencyForbidden",
                f"due at {stamp(latest)} while DrillRun {', '.join(sorted(active_runs))} of "
                "the plan is in flight (concurrencyPolicy Forbid)",
            )
        )
    else:
        decision.start = latest
    return decision


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
