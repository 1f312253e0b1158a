"""Putting call attempts on the RQ queue (the Python API; the HTTP API and the CLI use it).

Jobs use RQ's JSON serializer: pickle in Redis would be code execution for anyone who can write to
Redis. The job id is the attempt's deterministic channel uuid, so enqueuing an attempt twice is a
no-op, and the description shown in rq-dashboard holds only validated identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from dialer.callmodel import leg_uuid
from dialer.payload import CallPayload

CALL_QUEUE = "calls"
MAX_CALL_SECONDS = 4 * 3600


def enqueue_call(connection: redis.Redis[bytes], payload: Mapping[str, Any], queue: str = CALL_QUEUE) -> Job:
    """Validate and enqueue one attempt; raises pydantic's ValidationError naming the bad field."""
    call = CallPayload.model_validate(dict(payload))
    spec = call.to_spec()
    job_id = leg_uuid(spec.call_id)
    existing = Job.fetch_many([job_id], connection=connection, serializer=JSONSerializer)[0]
    if existing is not None:
        return existing
    return Queue(queue, connection=connection, serializer=JSONSerializer).enqueue(
        "jobs.calls.dial",
        call.model_dump(),
        job_id=job_id,
        description=f"call {spec.campaign}/{spec.contact_id} attempt {spec.attempt}",
        job_timeout=call.ring_timeout + MAX_CALL_SECONDS,
        result_ttl=7 * 86400,
        failure_ttl=7 * 86400,
        # Safe to retry: a re-run finds the attempt claimed and never dials again (it reports or adopts).
        retry=Retry(max=2),
        meta={"campaign": spec.campaign, "contact_id": spec.contact_id, "attempt": spec.attempt, "state": "queued"},
    )
