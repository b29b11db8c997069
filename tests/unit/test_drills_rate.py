"""drills/rate.py: when the probe's requests are due as a Load step changes the rate."""

from __future__ import annotations

import pytest

from modeldr.drills.rate import RateSchedule


def test_a_steady_rate_is_evenly_spaced() -> None:
    schedule = RateSchedule(100.0, 10.0)
    assert [schedule.due(i) for i in range(3)] == [100.0, 100.1, 100.2]
    assert schedule.count(101.0) == pytest.approx(10.0)


def test_a_step_change_keeps_earlier_requests_and_spaces_later_ones_at_the_new_rate() -> None:
    schedule = RateSchedule(0.0, 10.0)
    schedule.change(1.0, 100.0)  # 10 requests due by then
    assert schedule.due(5) == pytest.approx(0.5)
    assert schedule.due(10) == pytest.approx(1.0)
    assert schedule.due(110) == pytest.approx(2.0)
    assert schedule.rate_at(1.5) == 100.0


def test_a_ramp_grows_linearly_and_its_requests_are_the_area_under_it() -> None:
    schedule = RateSchedule(0.0, 10.0)
    schedule.change(0.0, 50.0, ramp_s=4.0)  # 10 -> 50 over 4 s: 120 requests in the ramp
    assert schedule.rate_at(2.0) == pytest.approx(30.0)
    assert schedule.count(4.0) == pytest.approx(120.0)
    assert schedule.count(6.0) == pytest.approx(220.0)
    assert schedule.due(120) == pytest.approx(4.0)
    assert schedule.due(40) == pytest.approx(2.0)  # 10 x + 5 x^2 = 40
    for i in range(0, 220, 7):  # due is the inverse of count
        assert schedule.count(schedule.due(i)) == pytest.approx(i)


def test_a_ramp_down_and_back_to_the_plans_rate() -> None:
    schedule = RateSchedule(0.0, 100.0)
    schedule.change(1.0, 10.0, ramp_s=2.0)  # 100 by 1 s, then 110 over the ramp
    assert schedule.count(3.0) == pytest.approx(210.0)
    for i in range(100, 260, 9):
        assert schedule.count(schedule.due(i)) == pytest.approx(i)
    assert schedule.rate_at(3.5) == 10.0


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        RateSchedule(0.0, 0.0)
    with pytest.raises(ValueError):
        RateSchedule(0.0, 1.0).change(1.0, -5.0)
