"""Which driver makes each fault type. Types whose realisation needs the node agent are
known to the plan but not made by this version: their step ends Error (FaultUnsupported)
with nothing injected, never a silent pass."""

from __future__ import annotations

from modeldr.drills.faults.base import FaultDriver, FaultError
from modeldr.drills.faults.corruption import ModelCorruption
from modeldr.drills.faults.infrastructure import ClusterOutage, NodeFailure
from modeldr.drills.faults.nodes import GPULoss, NodeDrain
from modeldr.drills.faults.pods import PodKill

DRIVERS: dict[str, FaultDriver] = {
    "PodKill": PodKill(),
    "NodeDrain": NodeDrain(),
    "GPULoss": GPULoss(),
    "NodeFailure": NodeFailure(),
    "ClusterOutage": ClusterOutage(),
    "ModelCorruption": ModelCorruption(),
}

UNSUPPORTED = {
    "NetworkPartition": "needs the modeldr node agent, which this version does not ship",
    "PacketLoss": "needs the modeldr node agent, which this version does not ship",
    "Latency": "needs the modeldr node agent (tc netem), which this version does not ship",
}


def driver_for(fault_type: str) -> FaultDriver:
    if fault_type in DRIVERS:
        return DRIVERS[fault_type]
    why = UNSUPPORTED.get(fault_type, "is not a known fault type")
    raise FaultError("FaultUnsupported", f"fault {fault_type} {why}; nothing was injected")
