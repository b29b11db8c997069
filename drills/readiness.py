"""Whether the drill's target serves yet, before the steady state starts (pure).

A drill applied right after its ModelDeployment (the README's own sequence) would otherwise
measure a model that has not started: its steady state fails on the 503s of servers that
still load, or its abort conditions stop it, and the verdict blames the model's resilience
for its start-up. So the engine waits, up to `steadyState.waitForTargetSeconds`, until both
views agree that the target serves:

- the operator's: the ModelDeployment's `Ready` condition is True (its servers answer the
  operator's client probe, not only their control plane's Ready);
- the clients': the drill's own traffic probe got answers to at least MIN_ANSWERS of the
  requests it sent in the last READY_WINDOW_S (how many failed beside them is the steady
  state's to judge, over its own window, which starts once the target serves).

A target that never serves within the bound ends the run `Error`, reason `TargetNotReady`
(the drill could not test what it was asked), never `Aborted` or `Failed`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeldr.drills.probe_stats import ProbeSample

# The probe's recent requests that must all have answered, and how many at least.
READY_WINDOW_S = 2.0
MIN_ANSWERS = 2
# Failure kinds named in the message (the most frequent first).
MAX_KINDS = 2


@dataclass(frozen=True)
class Serving:
    serving: bool
    # What it waits for (or why it serves), in words for the run's live message.
    message: str


def ready_condition(md_status: Mapping[str, Any]) -> tuple[bool, str]:
    """The ModelDeployment's Ready condition: (True when it is "True", "reason: message")."""
    for condition in md_status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ok = condition.get("status") == "True"
            return ok, f"{condition.get('reason') or '?'}: {condition.get('message') or ''}"
    return False, "no Ready condition yet (the operator has not reported on it)"


def probe_answers(samples: Sequence[ProbeSample], now: float) -> tuple[bool, str]:
    """At least MIN_ANSWERS of the requests the drill's probe sent in the last
    READY_WINDOW_S answered."""
    recent = [s for s in samples if now - READY_WINDOW_S <= s.sent_at <= now]
    answered = sum(1 for s in recent if s.ok)
    ok = answered >= MIN_ANSWERS
    words = f"{answered} of {len(recent)} answered in the last {READY_WINDOW_S:.0f} s"
    kinds = Counter(s.error or "failed" for s in recent if not s.ok)
    if kinds:
        words += "; " + ", ".join(f"{k} x{n}" for k, n in kinds.most_common(MAX_KINDS))
    return ok, words


def target_serving(
    name: str, md_status: Mapping[str, Any], samples: Sequence[ProbeSample], now: float
) -> Serving:
    ready, condition = ready_condition(md_status)
    answering, probe = probe_answers(samples, now)
    message = (
        f"ModelDeployment {name}: Ready {'True' if ready else 'False'} ({condition[:300]}); "
        f"the drill's traffic probe: {probe}"
    )
    return Serving(ready and answering, message)


def ready_replicas(md_status: Mapping[str, Any]) -> dict[str, int] | None:
    """Ready replicas per role from the ModelDeployment's status (None: none known). An
    unreachable cluster's count is the last one read: not evidence of now, left out."""
    ready: dict[str, int] = {}
    for role in ("primary", "standby"):
        cluster = md_status.get(role) or {}
        value = cluster.get("readyReplicas")
        if isinstance(value, int) and cluster.get("reachable") is not False:
            ready[role] = value
    return ready or None
