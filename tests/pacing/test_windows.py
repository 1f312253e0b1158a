"""The two ways of checking a stream of originates against a limit agree (pure, property-based)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from .windows import max_in_any_window, shortest_span

TIMES = st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=40)


@given(TIMES, st.integers(min_value=1, max_value=10))
def test_limit_plus_one_times_span_a_window_exactly_when_no_window_holds_more(times: list[float], limit: int) -> None:
    assert (shortest_span(times, limit + 1) >= 1.0) == (max_in_any_window(times) <= limit)


def test_shortest_span_of_evenly_spaced_times() -> None:
    times = [n * 0.1 for n in range(30)]
    assert abs(shortest_span(times, 11) - 1.0) < 1e-9
    assert shortest_span(times, 31) == float("inf")
