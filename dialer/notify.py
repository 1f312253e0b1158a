"""Webhook events: what a campaign's CRM is told, built here and appended to one Redis stream in the
same round trip as the state change they report (so an event exists if and only if its change does).
``dialer webhooks`` delivers them (``docs/webhooks.md``).

    dialer:webhooks   stream   entries {campaign, body}; body is the JSON to POST, exactly as signed

Events of a call: ``call.ringing``, ``call.early_media``, ``call.answered``, ``call.bridged``,
``call.ended`` (the attempt's outcome), numbered 1, 2, ... in ``sequence`` per call; of a contact:
``contact.final`` (its final outcome, after any retries); of a campaign: ``campaign.completed``. An
event's ``id`` is derived from what it reports (call id and type), so an event written again after a
crash has the same id: receivers deduplicate by id. The campaign scripts write the last two themselves
(``dialer.campaigns.state``), with ids of the same shape.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dialer.store import StreamAdd

STREAM = "dialer:webhooks"
#: A safety net, not the trimming: the sender trims delivered entries; this only bounds a stream nobody reads.
STREAM_MAXLEN = 1_000_000


def event_id(subject: str, kind: str) -> str:
    """A uuid-shaped SHA-1 of what the event reports (the campaign scripts derive theirs the same way)."""
    digest = hashlib.sha1(f"{subject}/{kind}".encode(), usedforsecurity=False).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def call_event(
    campaign: str,
    contact_id: str,
    attempt: int,
    kind: str,
    sequence: int,
    occurred_at: float,
    data: dict[str, Any],
) -> StreamAdd:
    call_id = f"{campaign}:{contact_id}:{attempt}"
    body = {
        "id": event_id(call_id, kind),
        "type": kind,
        "campaign": campaign,
        "call_id": call_id,
        "contact_id": contact_id,
        "attempt": attempt,
        "sequence": sequence,
        "occurred_at": occurred_at,
        "data": data,
    }
    return StreamAdd(STREAM, {"campaign": campaign, "body": json.dumps(body, separators=(",", ":"))}, STREAM_MAXLEN)
