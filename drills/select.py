"""Which pods or node a fault hits: a mode applied to the model's pods (Chaos Mesh), resolved
when the step starts, an empty selection an error (AWS FIS), never more than the blast radius.

Deterministic for a seed: the same candidates, mode and seed choose the same targets, so a
recorded seed replays a run's choice. Candidates are sorted by name before drawing, so the
order the API listed them in does not matter.

Blast radius: `blastRadius.maxPodsPercent` of *all* the model's pods (the caller passes that
total; the engine counts the pods of every member cluster) allows floor(total * pct / 100)
pods. A selection larger than that is refused, not trimmed: a drill that silently does less
than its plan says would pass on less evidence. When the allowance is 0 nothing may be
touched at all, and that is refused too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction


class Mode(StrEnum):
    ONE = "one"
    ALL = "all"
    FIXED = "fixed"
    PERCENT = "percent"


@dataclass(frozen=True)
class Candidate:
    name: str  # pod name
    node: str | None = None  # the node it runs on (None: not scheduled yet)


class SelectionError(Exception):
    """The targets cannot be chosen; `reason` is the CamelCase reason for status."""

    reason = "SelectionFailed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoTargets(SelectionError):
    reason = "NoTargets"


class TooFewTargets(SelectionError):
    reason = "TooFewTargets"


class BlastRadiusExceeded(SelectionError):
    reason = "BlastRadiusExceeded"


@dataclass(frozen=True)
class Selection:
    targets: tuple[str, ...]  # pod names, sorted
    seed: int
    mode: Mode
    value: float | None
    candidates: int  # how many pods it was chosen from
    allowed: int  # how many the blast radius allowed


@dataclass(frozen=True)
class NodeSelection:
    node: str
    pods: tuple[str, ...]  # the model's pods on that node, sorted
    seed: int
    candidates: tuple[str, ...]  # the nodes it was chosen from, sorted


def allowed_pods(total_pods: int, max_pods_percent: float | None) -> int:
    """floor(total * pct / 100), computed exactly (12.5 % of 8 is 1, not 0.99…)."""
    if max_pods_percent is None:
        return total_pods
    if not 0 <= max_pods_percent <= 100:
        raise ValueError(f"maxPodsPercent must be within 0-100, got {max_pods_percent}")
    return math.floor(total_pods * _exact(max_pods_percent) / 100)


def wanted_count(mode: Mode, value: float | None, candidates: int) -> int:
    """How many pods a mode asks for out of `candidates`; percent rounds up."""
    if mode is Mode.ONE:
        return 1
    if mode is Mode.ALL:
        return candidates
    if value is None:
        raise ValueError(f"mode {mode} needs a value")
    if mode is Mode.FIXED:
        if value < 1 or value != int(value):
            raise ValueError(f"mode fixed needs a whole number of pods >= 1, got {value}")
        return int(value)
    if not 0 <= value <= 100:
        raise ValueError(f"mode percent needs a value within 0-100, got {value}")
    return math.ceil(candidates * _exact(value) / 100)


def select_pods(
    candidates: Sequence[Candidate | str],
    mode: Mode,
    value: float | None,
    seed: int,
    *,
    total_pods: int | None = None,
    max_pods_percent: float | None = None,
    what: str = "pods",
) -> Selection:
    """Choose the targets of a pod fault. `total_pods`: all of the model's pods the blast
    radius is a share of (default: the candidates). `what` words the messages ("pods of
    tiny-bert in primary")."""
    names = sorted(c.name if isinstance(c, Candidate) else c for c in candidates)
    if len(set(names)) != len(names):
        raise ValueError("candidate pod names repeat")
    if not names:
        raise NoTargets(f"no {what} to choose from: zero targets matched")
    total = len(names) if total_pods is None else total_pods
    if total < len(names):
        raise ValueError(f"total_pods {total} is fewer than the {len(names)} candidates")
    count = wanted_count(mode, value, len(names))
    if count == 0:
        raise NoTargets(
            f"mode {mode}{_value_text(mode, value)} of {len(names)} {what} selects none"
        )
    if count > len(names):
        raise TooFewTargets(f"mode {mode} asks for {count} {what}, only {len(names)} exist")
    allowed = allowed_pods(total, max_pods_percent)
    if count > allowed:
        raise BlastRadiusExceeded(
            f"mode {mode}{_value_text(mode, value)} asks for {count} of {len(names)} {what};"
            f" blastRadius.maxPodsPercent {_percent(max_pods_percent)} of the model's"
            f" {total} pods allows {allowed}"
        )
    chosen = random.Random(seed).sample(names, count)
    return Selection(
        targets=tuple(sorted(chosen)),
        seed=seed,
        mode=mode,
        value=value,
        candidates=len(names),
        allowed=allowed,
    )


def select_node(
    pods: Sequence[Candidate],
    seed: int,
    *,
    node: str | None = None,
    total_pods: int | None = None,
    max_pods_percent: float | None = None,
) -> NodeSelection:
    """Choose the node of a node fault among the nodes that run the model's `pods`. A named
    `node` must run one of them (a drill touches only the nodes its pods run on). The pods
    on the node are what the fault takes down, so they count against the blast radius; the
    seed draws among the nodes within it."""
    by_node: dict[str, list[str]] = {}
    for pod in pods:
        if pod.node:
            by_node.setdefault(pod.node, []).append(pod.name)
    nodes = sorted(by_node)
    if not nodes:
        raise NoTargets("no node runs a pod of the model: zero targets matched")
    total = len(pods) if total_pods is None else total_pods
    allowed = allowed_pods(total, max_pods_percent)
    if node is not None:
        if node not in by_node:
            raise NoTargets(
                f"node {node} runs none of the model's pods (nodes that do: {', '.join(nodes)})"
            )
        eligible = [node]
    else:
        eligible = nodes
    within = [n for n in eligible if len(by_node[n]) <= allowed]
    if not within:
        fewest = min(eligible, key=lambda n: (len(by_node[n]), n))
        raise BlastRadiusExceeded(
            f"node {fewest} runs {len(by_node[fewest])} of the model's pods;"
            f" blastRadius.maxPodsPercent {_percent(max_pods_percent)} of {total} pods"
            f" allows {allowed}"
        )
    chosen = random.Random(seed).choice(within)
    return NodeSelection(
        node=chosen, pods=tuple(sorted(by_node[chosen])), seed=seed, candidates=tuple(nodes)
    )


def _exact(value: float) -> Fraction:
    # The decimal the user wrote (12.5, 33.3), not its binary neighbour.
    return Fraction(str(value))


def _value_text(mode: Mode, value: float | None) -> str:
    if mode is Mode.FIXED and value is not None:
        return f" {int(value)}"
    if mode is Mode.PERCENT and value is not None:
        return f" {_percent(value)}"
    return ""


def _percent(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:g}%"
