"""Node faults that expire by themselves on the member side: the annotations a drill writes
on a Node it cordons (NodeDrain) or taints (GPULoss), and what the node's own agent does
with them when they expire (agent/nodereaper.py), with no hub and no operator.

A fault's annotations name its journal id and its expiry (RFC 3339). The operator renews
the expiry while the step runs (drills/faults/nodes.py); when it passes, the node's agent
removes the cordon or the taint and the annotations, so a dead or cut-off operator leaves
the node as it was within one expiry period. An expiry more than MAX_EXPIRY_AHEAD_S ahead
of the agent's clock counts as passed: no annotation, whoever wrote it, keeps a node
broken longer than that.

Pure: names and decisions; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from modeldr.api.networkfault import GROUP, MAX_EXPIRY_AHEAD_S

#: NodeDrain's cordon.
CORDON_FAULT: Final = f"{GROUP}/drill-cordon-fault"
CORDON_EXPIRES: Final = f"{GROUP}/drill-cordon-expires-at"
#: GPULoss's taint.
GPU_LOSS_FAULT: Final = f"{GROUP}/drill-gpu-loss-fault"
GPU_LOSS_EXPIRES: Final = f"{GROUP}/drill-gpu-loss-expires-at"

#: The taint GPULoss adds; its value marks it as the drill's (only this one is removed).
GPU_TAINT_KEY: Final = "nvidia.com/gpu"
GPU_LOSS_TAINT_VALUE: Final = f"{GROUP}-drill"
GPU_LOSS_EFFECT: Final = "NoExecute"

Kind = Literal["cordon", "gpu-loss"]
ANNOTATIONS: Final[dict[Kind, tuple[str, str]]] = {
    "cordon": (CORDON_FAULT, CORDON_EXPIRES),
    "gpu-loss": (GPU_LOSS_FAULT, GPU_LOSS_EXPIRES),
}


def marked(kind: Kind, fault_id: str, expires_at: datetime) -> dict[str, str]:
    """The annotations that say this fault holds the node until `expires_at`."""
    fault_key, expires_key = ANNOTATIONS[kind]
    return {fault_key: fault_id, expires_key: expires_at.isoformat()}


def unmarked(kind: Kind) -> dict[str, None]:
    """A merge patch's annotations that remove the fault's marks."""
    return dict.fromkeys(ANNOTATIONS[kind])


def is_gpu_loss_taint(taint: Mapping[str, Any]) -> bool:
    return (
        taint.get("key") == GPU_TAINT_KEY
        and taint.get("value") == GPU_LOSS_TAINT_VALUE
        and taint.get("effect") == GPU_LOSS_EFFECT
    )


@dataclass(frozen=True)
class Mark:
    kind: Kind
    fault_id: str
    expires_at: datetime | None  # None: unreadable, which counts as expired


def marks(annotations: Mapping[str, str]) -> list[Mark]:
    """The drill faults a node's annotations say hold it."""
    found: list[Mark] = []
    for kind, (fault_key, expires_key) in ANNOTATIONS.items():
        if fault_key not in annotations and expires_key not in annotations:
            continue
        try:
            expires: datetime | None = datetime.fromisoformat(annotations.get(expires_key, ""))
            if expires is not None and expires.tzinfo is None:
                expires = None
        except ValueError:
            expires = None
        found.append(Mark(kind, annotations.get(fault_key, ""), expires))
    return found


def due(found: Sequence[Mark], now: datetime) -> list[Mark]:
    """The marks whose fault must be undone now: expired, unreadable, or beyond the cap."""
    cap = now + timedelta(seconds=MAX_EXPIRY_AHEAD_S)
    return [m for m in found if m.expires_at is None or m.expires_at <= now or m.expires_at > cap]


def next_due(found: Sequence[Mark]) -> datetime | None:
    times = [m.expires_at for m in found if m.expires_at is not None]
    return min(times) if times else None


def repair(mark: Mark, taints: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The node merge patch that undoes the fault `mark` names (the caller adds the
    resourceVersion it read, so a change meanwhile is a conflict, not a lost write)."""
    patch: dict[str, Any] = {"metadata": {"annotations": unmarked(mark.kind)}}
    if mark.kind == "cordon":
        patch["spec"] = {"unschedulable": False}
    else:
        kept = [dict(t) for t in taints if not is_gpu_loss_taint(t)]
        if len(kept) != len(taints):
            patch["spec"] = {"taints": kept or None}
    return patch
