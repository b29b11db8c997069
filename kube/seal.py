"""The journal's seal: every fault record the operator writes carries an HMAC (SHA-256) of
what its undo acts on (the run, the fault's id, type, cluster, role, targets, and the
parameters undo reads: namespace, node, model), under a key only the operator holds (a
Secret in its namespace, kube/journalkey.py). Undo acts only on a record whose seal
verifies: an entry someone added or edited in a run's status (which the tenant roles cannot
write, but an admin or a compromised account could) is never acted on, after a restart too,
and is reported (state Forged)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Final

from modeldr.api.drillstatus import FaultRecord

# The parameters an undo reads to find what it changes.
SEALED_PARAMETERS: Final = ("namespace", "node", "model")
PREFIX: Final = "hmac-sha256:"


class JournalSeal:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the journal key must be at least 32 bytes")
        self._key = key

    def seal(self, run_uid: str, record: FaultRecord) -> str:
        digest = hmac.new(self._key, sealed_bytes(run_uid, record), hashlib.sha256).hexdigest()
        return PREFIX + digest

    def verifies(self, run_uid: str, record: FaultRecord) -> bool:
        return record.signature is not None and hmac.compare_digest(
            record.signature, self.seal(run_uid, record)
        )


def sealed_bytes(run_uid: str, record: FaultRecord) -> bytes:
    """What the seal covers, canonically: any change to it breaks the seal."""
    covered = {
        "run": run_uid,
        "id": record.id,
        "type": record.type,
        "cluster": record.cluster,
        "role": record.role,
        "targets": list(record.targets),
        "parameters": {k: record.parameters.get(k) for k in SEALED_PARAMETERS},
    }
    return json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()
