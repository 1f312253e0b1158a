"""RQ entry point for one call attempt: validate, place, return the outcome as plain data."""

from __future__ import annotations

from typing import Any

from dialer.payload import CallPayload
from dialer.runtime import Runtime

RESULT_FIELDS = (
    "call_id",
    "uuid",
    "outcome",
    "hangup_cause",
    "q850",
    "sip_status",
    "agent",
    "ringing_at",
    "early_media_at",
    "answered_at",
    "bridged_at",
    "ended_at",
    "reason",
)


def dial(payload: dict[str, Any]) -> dict[str, str]:
    spec = CallPayload.model_validate(payload).to_spec()
    record = Runtime.current().place(spec)
    return {name: record.get(name, "") for name in RESULT_FIELDS}
