"""RQ entry point for one call attempt: validate, place, return the outcome as plain data."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

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
    job = get_current_job()

    def progress(fields: dict[str, str]) -> None:
        # Only validated identifiers and our own state names go into meta: rq-dashboard shows it as is.
        if job is not None:
            job.meta.update(fields)
            job.save_meta()  # type: ignore[no-untyped-call]

    record = Runtime.current().place(spec, on_progress=progress)
    result = {name: record.get(name, "") for name in RESULT_FIELDS}
    if job is not None:
        job.meta.update({"state": record.get("state", ""), "outcome": record.get("outcome", "")})
        job.save_meta()  # type: ignore[no-untyped-call]
    return result
