"""RQ entry point for one call attempt: validate, place, return the outcome as plain data."""

from __future__ import annotations

from typing import Any

import redis
from rq import get_current_job

from dialer.campaigns import outcomes as campaign
from dialer.payload import CallPayload
from dialer.runtime import NotDialled, Runtime
from dialer.store import HashWrite

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

    runtime = Runtime.current()
    # The job's meta rides along with the call record's own writes when both live in one Redis: one round
    # trip per transition instead of two.
    together = job is not None and same_server(job.connection, runtime.store.redis)

    def progress(fields: dict[str, str]) -> HashWrite | None:
        # Only validated identifiers and our own state names go into meta: rq-dashboard shows it as is.
        if job is None:
            return None
        job.meta.update(fields)
        if together:
            return (job.key, "meta", job.serializer.dumps(job.meta))
        job.save_meta()  # type: ignore[no-untyped-call]
        return None

    def skipped(reason: str) -> dict[str, str]:
        if job is not None:
            job.meta.update({"state": "not-dialled"})
            job.save_meta()  # type: ignore[no-untyped-call]
        return dict.fromkeys(RESULT_FIELDS, "") | {"call_id": spec.call_id, "reason": reason}

    gate = campaign.gate(job.connection, spec) if job is not None else None
    if gate is campaign.Gate.STOPPED:  # its campaign is paused or canceled
        return skipped("campaign not running")
    try:
        # The gate has just seen that the attempt has no record: the runtime need not look again.
        record = runtime.place(spec, on_progress=progress, unclaimed=together and gate is campaign.Gate.NEW)
    except NotDialled as exc:  # nothing claimed, nobody rang: the contact is tried again later
        if job is not None:
            campaign.not_dialled(job.connection, spec, exc.retry_after)
        return skipped(f"not dialled: {exc.reason}")
    if job is not None:
        campaign.call_finished(job.connection, spec, record)  # retry or final outcome for the contact
    result = {name: record.get(name, "") for name in RESULT_FIELDS}
    final = {"state": record.get("state", ""), "outcome": record.get("outcome", "")}
    if job is not None and any(job.meta.get(name) != value for name, value in final.items()):
        job.meta.update(final)  # not written with the final record (a re-run reporting a known outcome)
        job.save_meta()  # type: ignore[no-untyped-call]
    return result


def same_server(a: redis.Redis[bytes], b: redis.Redis[bytes]) -> bool:
    """Whether two clients talk to the same Redis database (host, port or socket path, db)."""
    names = ("host", "port", "path", "db")
    kwargs_a, kwargs_b = a.connection_pool.connection_kwargs, b.connection_pool.connection_kwargs
    return all(kwargs_a.get(name) == kwargs_b.get(name) for name in names)
