"""Game days (`spec.repeat`): one start of a plan runs again and again until it passed
`untilConsecutivePasses` times in a row, or `runs` runs ran. Pure: the plan's daemon lists the
runs, and writes and starts what this decides (drills/plans.py `continue_series`).

- A *series* is the runs of one start of the plan (its generation, or a due time of its
  schedule): the first is the run that start created, labelled `modeldr.io/series=<its
  name>` and `modeldr.io/series-index=1`; each next one carries the same series and the next
  index, and is named `<first>-<index>` (a hash of the first name stands in for it when that
  would exceed 63 characters), so a retried or restarted daemon never starts two.
- The next run starts once every run of the series ended, and only while the plan is still
  the generation that began it (a changed plan supersedes it: its next start begins a new
  series). Runs follow one another at once: each has its own steady state before its faults.
- Only `Passed` counts as a pass; `Failed`, `Error`, `Inconclusive` and `Aborted` are runs
  that did not pass (missing evidence never passes).
- status.passRate: of the latest series, the runs that ended, those that passed, the ratio
  and its 95% Wilson score interval (a handful of runs says little, and the interval says how
  little: 3 of 3 passed is [0.44, 1]).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from modeldr.api.drillplan import Repeat
from modeldr.api.phase import Phase

SERIES_LABEL: Final = "modeldr.io/series"
INDEX_LABEL: Final = "modeldr.io/series-index"
Z_95: Final = 1.959963984540054  # the normal quantile of 0.975
MAX_NAME: Final = 63


def wilson(passed: int, runs: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of passed/runs (None without runs)."""
    if runs <= 0:
        return None
    if not 0 <= passed <= runs:
        raise ValueError(f"{passed} passed of {runs} runs")
    p = passed / runs
    z2 = z * z
    centre = (p + z2 / (2 * runs)) / (1 + z2 / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z2 / (4 * runs * runs)) / (1 + z2 / runs)
    return max(0.0, centre - half), min(1.0, centre + half)


def repeat_name(first: str, index: int) -> str:
    """The name of the series' run number `index` (the first keeps its own name)."""
    if index == 1:
        return first
    name = f"{first}-{index}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(first.encode()).hexdigest()[:8]
    plan = first.rsplit("-", 1)[0][: MAX_NAME - len(digest) - len(str(index)) - 2]
    return f"{plan}-{digest}-{index}"


@dataclass(frozen=True)
class SeriesRun:
    name: str
    index: int
    phase: Phase
    generation: int | None
    created: str  # creationTimestamp: orders the series


def series_runs(runs: Iterable[Mapping[str, Any]]) -> dict[str, list[SeriesRun]]:
    """The runs that belong to a series, by series, each in index order."""
    found: dict[str, list[SeriesRun]] = {}
    for run in runs:
        meta = run.get("metadata") or {}
        labels = meta.get("labels") or {}
        series, index = labels.get(SERIES_LABEL), str(labels.get(INDEX_LABEL) or "")
        if not series or not index.isdigit():
            continue
        generation = (run.get("spec") or {}).get("planGeneration")
        found.setdefault(str(series), []).append(
            SeriesRun(
                str(meta.get("name")),
                int(index),
                Phase(str((run.get("status") or {}).get("phase") or Phase.PENDING)),
                int(generation) if isinstance(generation, int) else None,
                str(meta.get("creationTimestamp") or ""),
            )
        )
    for members in found.values():
        members.sort(key=lambda r: r.index)
    return found


def latest_series(found: Mapping[str, list[SeriesRun]]) -> str | None:
    """The series begun last (its first run created last)."""
    firsts = [(members[0].created, series) for series, members in found.items() if members]
    return max(firsts)[1] if firsts else None


@dataclass(frozen=True)
class SeriesState:
    series: str
    state: str  # Repeating, Satisfied, Exhausted, Superseded
    ended: int
    passed: int
    consecutive: int
    next_index: int | None  # the run to start now; None: none (one in flight, or done)
    message: str

    def pass_rate(self) -> dict[str, Any]:
        interval = wilson(self.passed, self.ended)
        return {
            "series": self.series,
            "state": self.state,
            "runs": self.ended,
            "passed": self.passed,
            "consecutivePasses": self.consecutive,
            "ratio": self.passed / self.ended if self.ended else None,
            "lower": None if interval is None else round(interval[0], 4),
            "upper": None if interval is None else round(interval[1], 4),
            "message": self.message,
        }


def assess_series(
    series: str, members: list[SeriesRun], repeat: Repeat, generation: int
) -> SeriesState:
    """Where the series stands and which run, if any, to start now."""
    ended = [r for r in members if r.phase.is_final]
    passed = sum(1 for r in ended if r.phase is Phase.PASSED)
    consecutive = 0
    for run in reversed(ended):
        if run.phase is not Phase.PASSED:
            break
        consecutive += 1
    in_flight = len(ended) < len(members)
    figures = f"{passed} of {len(ended)} runs passed, {consecutive} in a row"
    want = repeat.until_consecutive_passes
    next_index: int | None = None
    if consecutive >= want:
        state, message = "Satisfied", f"{figures}: satisfied ({want} in a row wanted)"
    elif len(members) >= repeat.runs and not in_flight:
        state = "Exhausted"
        message = f"{figures}: {repeat.runs} runs ran without {want} passes in a row"
    elif members and members[0].generation not in (None, generation) and not in_flight:
        state = "Superseded"
        message = (
            f"{figures}: the plan changed (generation {generation}); its next start begins "
            "a new series"
        )
    else:
        state = "Repeating"
        next_index = None if in_flight or len(members) >= repeat.runs else len(members) + 1
        doing = (
            "a run in flight" if in_flight else f"run {next_index} of at most {repeat.runs} next"
        )
        message = f"{figures}; {doing} ({want} in a row wanted)"
    return SeriesState(series, state, len(ended), passed, consecutive, next_index, message)
