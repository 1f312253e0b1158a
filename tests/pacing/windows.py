"""Measuring a stream of originate times the way the property is stated: any one-second window."""

from __future__ import annotations

import math
from collections.abc import Iterable


def max_in_any_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most times that fall in one half-open window ``[t, t + window)``, over every ``t``.

    A window holding the most times can always be slid until it starts at one of them, so it is
    enough to count, from each time, how many follow it by less than ``window``.
    """
    ordered = sorted(times)
    best, end = 0, 0
    for start, first in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] - first < window:
            end += 1
        best = max(best, end - start)
    return best


def achieved_rate(times: Iterable[float]) -> float:
    """Originates per second between the first and the last one."""
    ordered = sorted(times)
    if len(ordered) < 2 or ordered[-1] == ordered[0]:
        return 0.0
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def shortest_span(times: Iterable[float], count: int) -> float:
    """The shortest time from the first to the last of ``count`` consecutive times (inf if fewer). For
    ``count = limit + 1`` it is at least the window's length exactly when no window holds more than
    ``limit`` (see ``max_in_any_window``), and the excess is the room that was left for timing jitter."""
    ordered = sorted(times)
    return min((last - first for first, last in zip(ordered, ordered[count - 1 :], strict=False)), default=math.inf)
