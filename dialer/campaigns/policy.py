"""Compliance rules as pure values: the calling window in a contact's local time, and retries per outcome.

Nothing here reads a clock or Redis: callers pass ``now`` (an aware datetime or epoch seconds), so the
rules are tested exactly, DST changes included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ALL_DAYS = frozenset(range(7))  # Monday = 0 ... Sunday = 6, as ``date.weekday()``


@dataclass(frozen=True)
class CallingWindow:
    """Local hours when a contact may be called: ``start`` <= time < ``end`` on ``days``.

    ``start`` after ``end`` is a window over midnight (e.g. 20:00-02:00; its day is the day it opens).
    """

    start: time
    end: time
    days: frozenset[int] = ALL_DAYS

    def is_open_at(self, local: datetime) -> bool:
        now = local.time().replace(tzinfo=None)
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= now < self.end
        # over midnight: the evening part belongs to today, the early-morning part to yesterday
        return (today in self.days and now >= self.start) or (yesterday in self.days and now < self.end)

    def is_open(self, zones: Sequence[str], at: float) -> bool:
        """Open in every candidate zone of the contact (a number may map to several)."""
        instant = datetime.fromtimestamp(at, UTC)
        return all(self.is_open_at(instant.astimezone(ZoneInfo(zone))) for zone in zones)

    def next_opening(self, zones: Sequence[str], at: float, horizon_days: int = 8) -> float | None:
        """The first instant from ``at`` on when the window is open in every zone; None if never (within
        the horizon): the windows of the candidate zones never overlap."""
        if self.is_open(zones, at):
            return at
        # The intersection of the zones' windows opens where one of them opens: try those instants in order.
        openings = sorted(
            opening for zone in zones for opening in self._openings(ZoneInfo(zone), at, horizon_days) if opening > at
        )
        return next((opening for opening in openings if self.is_open(zones, opening)), None)

    def _openings(self, zone: ZoneInfo, at: float, horizon_days: int) -> list[float]:
        first: date = datetime.fromtimestamp(at, zone).date() - timedelta(days=1)
        days = (first + timedelta(days=n) for n in range(horizon_days + 1))
        return [datetime.combine(day, self.start, zone).timestamp() for day in days if day.weekday() in self.days]


@dataclass(frozen=True)
class RetryRule:
    """Retry a call that ended with this outcome after ``delay`` seconds, at most ``max_retries`` times."""

    delay: float
    max_retries: int


@dataclass(frozen=True)
class RetryPolicy:
    rules: Mapping[str, RetryRule] = field(default_factory=dict)
    max_attempts: int = 1

    def retry_delay(self, outcome: str, calls: int, retries_for_outcome: int) -> float | None:
        """Seconds until the next attempt, or None when this outcome is final for the contact.

        ``calls``: calls made to the contact including this one; ``retries_for_outcome``: calls before this
        one that ended with the same outcome (each of those after the first was a retry for it).
        """
        rule = self.rules.get(outcome)
        if rule is None or calls >= self.max_attempts or retries_for_outcome >= rule.max_retries:
            return None
        return rule.delay
