"""RQ entry point for one call attempt: validate, place, return the outcome as plain data."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from dialer.campaigns import outcomes as campaign
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

    if job is not None and not campaign.may_dial(job.connection, spec):  # its campaign is paused or canceled
        return dict.fromkeys(RESULT_FIELDS, "") | {"call_id": spec.call_id, "reason": "campaign not running"}
    record = Runtime.current().place(spec, on_progress=progress)
    if job is not None:
        campaign.call_finished(job.connection, spec, record)  # retry or final outcome for the contact
    result = {name: record.get(name, "") for name in RESULT_FIELDS}
    if job is not None:
        job.meta.update({"state": record.get("state", ""), "outcome": record.get("outcome", "")})
        job.save_meta()  # type: ignore[no-untyped-call]
    return result
