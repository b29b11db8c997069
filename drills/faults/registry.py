"""Which driver makes each fault type. A type known to the plan but not made by this version
would end its step Error (FaultUnsupported) with nothing injected, never a silent pass."""

from __future__ import annotations

from modeldr.drills.faults.base import FaultDriver
from modeldr.drills.faults.corruption import ModelCorruption
from modeldr.drills.faults.infrastructure import ClusterOutage, ModelStoreOutage, NodeFailure
from modeldr.drills.faults.network import NetworkFault
from modeldr.drills.faults.nodes import GPULoss, NodeDrain
from modeldr.drills.faults.pods import PodKill
from modeldr.drills.faults.storeloss import ModelStoreLoss
from modeldr.drills.refusal import Refusal

DRIVERS: dict[str, FaultDriver] = {
    "PodKill": PodKill(),
    "NodeDrain": NodeDrain(),
    "GPULoss": GPULoss(),
    "NodeFailure": NodeFailure(),
    "ClusterOutage": ClusterOutage(),
    "ModelCorruption": ModelCorruption(),
    "ModelStoreOutage": ModelStoreOutage(),
    "ModelStoreLoss": ModelStoreLoss(),
    # The node agent's (docs/agent.md): one driver, the effect is the order's.
    "NetworkPartition": NetworkFault(),
    "PacketLoss": NetworkFault(),
    "Latency": NetworkFault(),
}

# Known to the plan, not made by this version (none at present; kept for the next).
UNSUPPORTED: dict[str, str] = {}


def fault_type_prose() -> str:
    """What each fault type does, from its driver: the CRD's description of `fault.type`."""
    return " ".join(f"{name}: {driver.describe(name)}." for name, driver in DRIVERS.items())


def driver_for(fault_type: str) -> FaultDriver:
    if fault_type in DRIVERS:
        return DRIVERS[fault_type]
    why = UNSUPPORTED.get(fault_type, "is not a known fault type")
    raise Refusal("FaultUnsupported", f"fault {fault_type} {why}; nothing was injected")
