"""Webhook events as the sender sees them, and the retry schedule. Pure: no Redis, no HTTP, no clock.

The emitters (the call path, the campaign scripts) append ``campaign`` and ``body`` to the stream; the body
is the exact JSON to POST. The sender treats it as opaque bytes and reads only what it needs for headers,
logs and bookkeeping: ``id`` (deterministic per call and event, so a re-emitted event keeps its id),
``type`` and ``call_id``. An entry without these is malformed and goes straight to the dead letters.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dialer.payload import IDENTIFIER

EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
CAMPAIGN = re.compile(IDENTIFIER)
SUBJECT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")  # a call id (campaign:contact:attempt) or contact id


class MalformedEvent(ValueError):
    """A stream entry or body the sender cannot deliver; the message names the field and the reason."""


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    campaign: str
    call_id: str | None
    body: bytes
    contact_id: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "event_type": self.type, "campaign": self.campaign, "call_id": self.call_id}

    @property
    def order_key(self) -> str:
        """Events with one key are delivered one after another, in stream order: a call's (its
        ``contact.final`` after them), a contact's final outcome without a call, a campaign's own."""
        if self.call_id:
            return self.call_id
        if self.contact_id:
            return f"{self.campaign}:{self.contact_id}"
        return f"campaign {self.campaign}"


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def parse_event(campaign: bytes | str | None, body: bytes | None) -> Event:
    """The event of one stream entry (its ``campaign`` and ``body`` fields); MalformedEvent if unusable."""
    campaign_id = _text(campaign)
    if not campaign_id or not CAMPAIGN.fullmatch(campaign_id):
        raise MalformedEvent(f"campaign: missing or not a campaign id ({campaign_id!r})")
    if not body:
        raise MalformedEvent("body: missing or empty")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"body: not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise MalformedEvent("body: not a JSON object")
    event_id, event_type = parsed.get("id"), parsed.get("type")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise MalformedEvent(f"id: missing or not an event id ({event_id!r:.80})")
    if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
        raise MalformedEvent(f"type: missing or not an event type ({event_type!r:.80})")
    call_id, contact_id = _optional(parsed, "call_id"), _optional(parsed, "contact_id")
    return Event(event_id, event_type, campaign_id, call_id, body, contact_id)


def _optional(parsed: dict[str, Any], name: str) -> str | None:
    """An optional id; absent or empty (a contact that got its outcome without a call) is None."""
    value = parsed.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not SUBJECT_ID.fullmatch(value):
        raise MalformedEvent(f"{name}: not an id ({value!r:.80})")
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: after failed attempt ``n`` the next waits between half and all of
    ``min(cap, base * 2**(n-1))`` ("equal jitter": spread out, yet never shorter than the step before's
    shortest). After ``max_attempts`` attempts there is no next one: the event is dead-lettered."""

    base: float
    cap: float
    max_attempts: int

    def ceiling(self, attempt: int) -> float:
        if attempt >= 64:  # 2**63 * base is past any cap; avoids float overflow for absurd attempt numbers
            return self.cap
        return float(min(self.cap, self.base * 2 ** (attempt - 1)))

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based), None if it was the last."""
        if attempt >= self.max_attempts:
            return None
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + rng() * ceiling / 2
