"""Entry points the client probe found not answering, left out of the traffic target.

The member's own signals drop a dead entry point late: a node that lost power keeps its
endpoints ready until the node controller marks it NotReady (40 s by default), a crashed
pod until its member's EndpointSlice catches up, and a control plane that has just
restarted reports its pods' stale Ready state while their servers still load (HTTP 503).
Meanwhile the hub's slice would keep sending a share of the clients there. The client probe
(`failover.probe`, on by default) asks every entry point each check; one that did not
answer is left out of the published addresses at once (EJECT_AFTER failed check) and comes
back as soon as it answers a probe again; one no longer asked (a sampled probe) comes back
after EJECT_SECONDS. Never all of them: ejecting every address would publish an empty set,
and whether the whole cluster is down is the health check's decision (failover), not this
one's.

Pure: the controller keeps one `Ejections` per role and passes the monotonic time in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EJECT_AFTER = 1  # consecutive failed checks of one entry point
EJECT_SECONDS = 10.0


@dataclass
class Ejections:
    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)

    def record(self, answering: Iterable[str], failing: Iterable[str], now: float) -> None:
        """One check's answers: an address that answered is trusted again at once."""
        for address in answering:
            self.failures.pop(address, None)
            self.until.pop(address, None)
        for address in failing:
            count = self.failures.get(address, 0) + 1
            self.failures[address] = count
            if count >= EJECT_AFTER:
                self.until[address] = now + EJECT_SECONDS

    def ejected(self, now: float) -> set[str]:
        for address in [a for a, t in self.until.items() if t <= now]:
            del self.until[address]
            self.failures.pop(address, None)
        return set(self.until)

    def usable(self, addresses: Sequence[str], now: float) -> tuple[str, ...]:
        """`addresses` less the ejected ones, unless that would leave none."""
        out = set(self.ejected(now))
        kept = tuple(a for a in addresses if a not in out)
        return kept if kept else tuple(addresses)
