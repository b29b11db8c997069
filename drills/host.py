"""What the drills need of the process they run in: the hub client, the member registry, the
record of which run holds which target, and the tenancy facts (policies, freezes). The
operator's Runtime provides it (kopf's memo, `RUNTIME_KEY`); the drills name this protocol
only, so they stand beside the operator rather than on it, and a test hands them any object
with these four parts."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from kubernetes import client

from modeldr.kube.activedrills import ActiveDrills
from modeldr.kube.constants import RUNTIME_KEY
from modeldr.kube.members import MemberRegistry
from modeldr.kube.seal import JournalSeal
from modeldr.kube.tenancy import Tenancy


@runtime_checkable
class DrillHost(Protocol):
    hub: client.ApiClient
    members: MemberRegistry
    drills: ActiveDrills
    tenancy: Tenancy
    # The journal's seal (its key read at the operator's startup); None until then.
    seal: JournalSeal | None


def host_of(memo: Any) -> DrillHost:
    """The host the operator's startup put in kopf's memo."""
    host = memo.get(RUNTIME_KEY)
    if not isinstance(host, DrillHost):
        raise RuntimeError(
            "the drills' host is not in kopf's memo: did the operator's startup run?"
        )
    return host


def seal_of(host: DrillHost) -> JournalSeal:
    """The journal's seal; RuntimeError before the operator's startup loaded its key (no fault
    is journaled, or undone, without it)."""
    if host.seal is None:
        raise RuntimeError("the journal key is not loaded: did the operator's startup run?")
    return host.seal
