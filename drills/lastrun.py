"""A DrillPlan's `lastRun` and `lastScheduledRun`, derived from its DrillRuns as a CronJob's
status is derived from its Jobs. Pure (no hub calls): the plan's daemon lists the runs and
writes what this returns (drills/plans.py `derive_last_runs`).

- A run counts once it started (Running) or ended; a Pending run has nothing to show yet.
- The most recent wins: the run that moved last, by its end (`finishedAt`), else its start
  (`startedAt`) — so a run in flight shows until another run ends or starts after it,
  which is what the runs themselves wrote when they wrote the plan. Equal moments: the
  greater name wins, so the choice never flips between two derivations.
- `lastScheduledRun`: the same among the runs the schedule started (`spec.scheduledTime`).
- A run no longer there (deleted by hand, pruned by `historyLimit`) keeps its entry in the
  plan's status while no listed run is more recent: the record outlives the object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from modeldr.api.base import camel
from modeldr.api.drillstatus import LastRun
from modeldr.api.phase import Phase
from modeldr.kube.constants import DRILL_PLAN_LABEL

log = logging.getLogger(__name__)

LAST_RUN: Final = "lastRun"
LAST_SCHEDULED_RUN: Final = "lastScheduledRun"
# Every field of an entry, so a merge patch that writes one replaces the one before whole
# (a null removes what the new entry lacks: a run in flight has no finishedAt).
ENTRY_FIELDS: Final = tuple(camel(field) for field in LastRun.model_fields)
_NEVER: Final = datetime.min.replace(tzinfo=UTC)


def plan_of(run: Mapping[str, Any]) -> str | None:
    """The plan a run belongs to: its spec.planRef (what the run executes for; a run made by
    hand may carry no label), else its label."""
    ref = ((run.get("spec") or {}).get("planRef") or {}).get("name")
    if ref:
        return str(ref)
    label = ((run.get("metadata") or {}).get("labels") or {}).get(DRILL_PLAN_LABEL)
    return str(label) if label else None


def entry(run: Mapping[str, Any]) -> LastRun | None:
    """The plan's lastRun entry for this run object; None while it has not started, or for
    a status no model reads (it is left out, not guessed at)."""
    status = run.get("status") or {}
    spec = run.get("spec") or {}
    try:
        last = LastRun.model_validate(
            {
                "name": (run.get("metadata") or {}).get("name"),
                "phase": status.get("phase") or Phase.PENDING,
                "reason": status.get("reason"),
                "startedAt": status.get("startedAt"),
                "finishedAt": status.get("finishedAt"),
                "planGeneration": spec.get("planGeneration"),
                "scheduledTime": spec.get("scheduledTime") or None,
                "rtoSeconds": status.get("rtoSeconds"),
            }
        )
    except ValidationError as exc:
        log.debug("DrillRun %s left out of its plan's lastRun: %s", run.get("metadata"), exc)
        return None
    return None if last.phase is Phase.PENDING else last


def moment(last: LastRun) -> datetime:
    """When the run last moved: its end, else its start."""
    when = last.finished_at or last.started_at
    if when is None:
        return _NEVER
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def latest(entries: Iterable[LastRun]) -> LastRun | None:
    return max(entries, key=lambda last: (moment(last), last.name), default=None)


def recorded(status_raw: Any, field: str) -> LastRun | None:
    """The entry the plan's status holds now (None when absent or unreadable)."""
    raw = (status_raw or {}).get(field)
    if not raw:
        return None
    try:
        return LastRun.model_validate(raw)
    except ValidationError:
        return None


def body(last: LastRun) -> dict[str, Any]:
    """The entry as written: every field, nulls for what it lacks."""
    return {key: None for key in ENTRY_FIELDS} | last.dump()


def derive(runs: Iterable[Mapping[str, Any]], plan: str, status_raw: Any) -> dict[str, Any]:
    """The plan's lastRun and lastScheduledRun fields that differ from its status (`status_raw`)
    given its runs (`runs`: any DrillRuns; the plan's are picked by `plan_of`); {} when
    nothing changed."""
    mine = [run for run in runs if plan_of(run) == plan]
    listed = {str((run.get("metadata") or {}).get("name")) for run in mine}
    entries = [last for last in map(entry, mine) if last is not None]
    fields: dict[str, Any] = {}
    for field, candidates in (
        (LAST_RUN, entries),
        (LAST_SCHEDULED_RUN, [last for last in entries if last.scheduled_time is not None]),
    ):
        now = recorded(status_raw, field)
        kept = [now] if now is not None and now.name not in listed else []
        best = latest([*candidates, *kept])
        if best is None:
            continue  # nothing to show (yet): an entry is never removed
        if now is None or best.dump() != now.dump():
            fields[field] = body(best)
    return fields
