"""The calling window in local time and the retry policy: pure rules, exact instants."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.campaigns.policy import CallingWindow, RetryPolicy, RetryRule

NY = "America/New_York"
DAYTIME = CallingWindow(time(9), time(21))


def at(text: str, zone: str = NY) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        ("2026-03-02T08:59:59", False),
        ("2026-03-02T09:00:00", True),
        ("2026-03-02T20:59", True),
        ("2026-03-02T21:00", False),
    ],
)
def test_window_is_open_from_start_to_just_before_end(local: str, is_open: bool) -> None:
    assert DAYTIME.is_open([NY], at(local)) is is_open


def test_closed_window_next_opens_at_the_local_start_the_same_or_next_day() -> None:
    assert DAYTIME.next_opening([NY], at("2026-03-02T07:30")) == at("2026-03-02T09:00")
    assert DAYTIME.next_opening([NY], at("2026-03-02T22:00")) == at("2026-03-03T09:00")
    assert DAYTIME.next_opening([NY], at("2026-03-02T10:00")) == at("2026-03-02T10:00")  # open: now


def test_next_opening_across_a_dst_change_is_nine_local_time() -> None:
    # US clocks spring forward on 2026-03-08: the next 09:00 is 13:00 UTC, not 14:00
    opening = DAYTIME.next_opening([NY], at("2026-03-07T22:00"))
    assert opening == at("2026-03-08T09:00")
    assert datetime.fromtimestamp(opening, ZoneInfo("UTC")).hour == 13


def test_window_days_skip_the_weekend() -> None:
    weekdays = CallingWindow(time(9), time(17), frozenset(range(5)))
    friday_evening = at("2026-03-06T18:00")  # 2026-03-06 is a Friday
    assert weekdays.next_opening([NY], friday_evening) == at("2026-03-09T09:00")  # Monday


def test_window_over_midnight() -> None:
    night = CallingWindow(time(20), time(2))
    assert night.is_open([NY], at("2026-03-02T23:30"))
    assert night.is_open([NY], at("2026-03-03T01:30"))
    assert not night.is_open([NY], at("2026-03-03T02:00"))
    assert night.next_opening([NY], at("2026-03-03T12:00")) == at("2026-03-03T20:00")


def test_a_number_with_several_zones_is_called_only_when_open_in_all_of_them() -> None:
    zones = [NY, "America/Los_Angeles"]
    assert not DAYTIME.is_open(zones, at("2026-03-02T10:00"))  # 07:00 in Los Angeles
    assert DAYTIME.next_opening(zones, at("2026-03-02T10:00")) == at("2026-03-02T09:00", "America/Los_Angeles")


def test_zones_whose_windows_never_overlap_have_no_opening() -> None:
    narrow = CallingWindow(time(9), time(10))
    assert narrow.next_opening([NY, "Asia/Tokyo"], at("2026-03-02T08:00")) is None


BUSY_TWICE = RetryPolicy({"busy": RetryRule(1.0, 3), "no-answer": RetryRule(60.0, 1)}, max_attempts=2)


def test_retry_after_the_outcomes_delay_until_max_attempts() -> None:
    assert BUSY_TWICE.retry_delay("busy", calls=1, retries_for_outcome=0) == 1.0
    assert BUSY_TWICE.retry_delay("busy", calls=2, retries_for_outcome=1) is None  # max attempts reached


def test_retry_count_is_per_outcome() -> None:
    policy = RetryPolicy({"no-answer": RetryRule(60.0, 1)}, max_attempts=10)
    assert policy.retry_delay("no-answer", calls=1, retries_for_outcome=0) == 60.0
    assert policy.retry_delay("no-answer", calls=2, retries_for_outcome=1) is None


@pytest.mark.parametrize("outcome", ["completed", "rejected", "invalid-number", "machine", "abandoned", "failed"])
def test_outcomes_without_a_rule_are_final(outcome: str) -> None:
    assert BUSY_TWICE.retry_delay(outcome, calls=1, retries_for_outcome=0) is None


ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"]


@settings(max_examples=200, deadline=None)
@given(
    at_=st.floats(min_value=1.7e9, max_value=1.9e9),
    start=st.integers(0, 23 * 60),
    length=st.integers(30, 16 * 60),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    days=st.frozensets(st.integers(0, 6), min_size=1),
)
def test_next_opening_is_open_and_nothing_opens_earlier(
    at_: float, start: int, length: int, zones: list[str], days: frozenset[int]
) -> None:
    end = (start + length) % (24 * 60)
    window = CallingWindow(time(start // 60, start % 60), time(end // 60, end % 60), days)
    opening = window.next_opening(zones, at_)
    if opening is None:  # then no minute in the next week is open in every zone
        assert not any(window.is_open(zones, at_ + 60 * m) for m in range(0, 7 * 24 * 60, 7))
        return
    assert opening >= at_
    assert window.is_open(zones, opening)
    step = max(60.0, (opening - at_) / 200)
    probes = [at_ + step * n for n in range(int((opening - at_) / step))]
    assert not any(window.is_open(zones, probe) for probe in probes if probe < opening - 1)
