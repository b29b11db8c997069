"""The harness's client (sandbox/probe.py): the product's TrafficProbe behind the network rule,
and the readings the demo, the failover benchmark and the operator's tests take from it."""

from __future__ import annotations

from modeldr.drills.probe import Endpoints
from modeldr.drills.probe_stats import ProbeSample
from sandbox.probe import failures, first_success, last_success, loopback_only, successes


def test_loopback_only_drops_addresses_outside_127_and_says_so_when_none_is_left() -> None:
    mixed = Endpoints(("127.1.0.5", "10.0.0.7", "127.1.0.6"), 8080, "primary")
    kept = loopback_only(lambda: mixed)()
    assert kept.addresses == ("127.1.0.5", "127.1.0.6")
    assert (kept.port, kept.cluster, kept.error) == (8080, "primary", None)

    outside = Endpoints(("192.168.1.4",), 8080, "standby")
    none_left = loopback_only(lambda: outside)()
    assert none_left.addresses == ()
    assert none_left.error == "only non-loopback addresses: 192.168.1.4"


def test_loopback_only_passes_loopback_endpoints_and_failures_through_unchanged() -> None:
    fine = Endpoints(("127.2.0.3",), 8080, "standby")
    assert loopback_only(lambda: fine)() is fine
    unreadable = Endpoints((), 0, None, "hub unreadable", read_failed=True)
    assert loopback_only(lambda: unreadable)() is unreadable


SAMPLES = [
    ProbeSample(10.0, 0.01, True, "primary"),
    ProbeSample(10.5, 0.01, True, "primary"),
    ProbeSample(11.0, 0.00, False, None, "connection refused"),
    ProbeSample(11.5, 2.00, False, "primary", "timeout"),
    ProbeSample(12.0, 0.02, True, "standby"),
    ProbeSample(12.5, 0.02, True, "standby"),
]


def test_readings_follow_the_cluster_that_answered_and_the_send_times() -> None:
    assert successes(SAMPLES, "primary") == 2
    assert successes(SAMPLES, "standby", since=12.5) == 1
    assert failures(SAMPLES) == 2
    assert failures(SAMPLES, since=11.2, until=12.0) == 1
    first = first_success(SAMPLES, "standby", after=11.0)
    assert first is not None and first.sent_at == 12.0
    last = last_success(SAMPLES, "primary", before=11.0)
    assert last is not None and last.sent_at == 10.5
    # A failed answer never counts as the cluster's success, and none after the end is None.
    assert last_success(SAMPLES, "primary") == last
    assert first_success(SAMPLES, "primary", after=11.0) is None


def test_readings_do_not_depend_on_the_order_of_the_samples() -> None:
    shuffled = list(reversed(SAMPLES))
    first = first_success(shuffled, "standby", after=0.0)
    last = last_success(shuffled, "standby")
    assert first is not None and first.sent_at == 12.0
    assert last is not None and last.sent_at == 12.5
