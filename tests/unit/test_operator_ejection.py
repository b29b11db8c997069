"""Entry points the client probe found dead are left out of the traffic for a while."""

from __future__ import annotations

from modeldr.operator.ejection import EJECT_AFTER, EJECT_SECONDS, Ejections

ADDRESSES = ("127.1.0.1", "127.1.0.2", "127.1.0.3")


def test_an_entry_point_is_ejected_after_consecutive_failed_checks_only() -> None:
    ejections = Ejections()
    for check in range(EJECT_AFTER - 1):
        ejections.record({"127.1.0.1"}, {"127.1.0.2"}, now=float(check))
    assert ejections.usable(ADDRESSES, now=1.0) == ADDRESSES
    # An answer in between starts the count again.
    ejections.record({"127.1.0.2"}, set(), now=2.0)
    for check in range(EJECT_AFTER - 1):
        ejections.record(set(), {"127.1.0.2"}, now=3.0 + check)
    assert ejections.usable(ADDRESSES, now=4.0) == ADDRESSES
    ejections.record(set(), {"127.1.0.2"}, now=5.0)
    assert ejections.usable(ADDRESSES, now=5.0) == ("127.1.0.1", "127.1.0.3")


def test_it_comes_back_when_it_answers_or_when_the_ejection_expires() -> None:
    ejections = Ejections()
    for check in range(EJECT_AFTER):
        ejections.record(set(), {"127.1.0.2", "127.1.0.3"}, now=float(check))
    assert ejections.usable(ADDRESSES, now=EJECT_AFTER) == ("127.1.0.1",)
    ejections.record({"127.1.0.3"}, set(), now=EJECT_AFTER + 1.0)
    assert ejections.usable(ADDRESSES, now=EJECT_AFTER + 1.0) == ("127.1.0.1", "127.1.0.3")
    later = EJECT_AFTER - 1 + EJECT_SECONDS
    assert ejections.usable(ADDRESSES, now=later) == ADDRESSES
    # Expired means forgotten until it is asked again: one more failure ejects it at once.
    ejections.record(set(), {"127.1.0.2"}, now=later + 1)
    assert ejections.usable(ADDRESSES, now=later + 1) == ("127.1.0.1", "127.1.0.3")


def test_never_every_address() -> None:
    ejections = Ejections()
    for check in range(EJECT_AFTER):
        ejections.record(set(), set(ADDRESSES), now=float(check))
    # Whether the whole cluster is down is the health check's call, not an empty slice.
    assert ejections.usable(ADDRESSES, now=EJECT_AFTER) == ADDRESSES
    assert ejections.usable((), now=EJECT_AFTER) == ()
