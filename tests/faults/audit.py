"""What a campaign run under faults must leave behind, read from Redis and from the switch's own record of
originates (``api sim originates``), never from the dialer's counters.

``audit_campaign`` returns every breach it finds as text, plus the counts ``docs/reliability.md`` reports:
calls placed on the switch, duplicate dials, records lost.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from dialer.callmodel import leg_uuid
from dialer.enqueue import CALL_QUEUE
from dialer.store import BUSY_STATES, Store, call_key

HELD_AGENT_STATES = tuple(state.value for state in BUSY_STATES)


@dataclass
class Audit:
    contacts: int = 0
    attempts: int = 0  # call records (claimed attempts)
    calls_placed: int = 0  # customer legs the switch was asked to dial for this campaign
    duplicates: list[str] = field(default_factory=list)  # attempts dialled more than once
    lost: list[str] = field(default_factory=list)  # contacts or outcomes that went missing
    problems: list[str] = field(default_factory=list)  # anything else left wrong
    outcomes: Counter[str] = field(default_factory=Counter)

    def breaches(self) -> list[str]:
        return [*(f"duplicate: {d}" for d in self.duplicates), *(f"lost: {x}" for x in self.lost), *self.problems]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def customer_legs(call_id: str, tries: int) -> list[str]:
    """Every customer-leg uuid an attempt may have used: its first try and each failover try."""
    return [leg_uuid(call_id), *(leg_uuid(call_id, f"customer-{n}") for n in range(2, tries + 1))]


def audit_campaign(
    client: redis.Redis, originates: list[dict[str, Any]], campaign: str, contact_ids: list[str]
) -> Audit:
    """Every contact done with its outcome applied once per attempt; every attempt recorded with exactly one
    outcome; every customer leg on the switch belongs to a recorded attempt and was dialled once."""
    store = Store(client)
    audit = Audit(contacts=len(contact_ids))
    dials = Counter(o["uuid"] for o in originates if o["endpoint"].startswith("gateway/"))
    leg_owner: dict[str, str] = {}
    for contact_id in contact_ids:
        raw = client.hgetall(f"dialer:campaign:{campaign}:contact:{contact_id}")
        contact = {_text(k): _text(v) for k, v in raw.items()}
        if not contact:
            audit.lost.append(f"contact {contact_id} is gone")
            continue
        if contact.get("state") != "done" or not contact.get("outcome"):
            audit.lost.append(f"contact {contact_id} never reached a final outcome: {contact}")
        records = 0
        for attempt in range(1, int(contact.get("attempt", "0")) + 1):
            call_id = f"{campaign}:{contact_id}:{attempt}"
            record = store.record(call_id)
            if not record:
                continue  # an attempt number handed out but never claimed (its job was lost before it ran)
            records += 1
            audit.attempts += 1
            if not record.get("outcome"):
                audit.lost.append(f"{call_id} has no outcome (state {record.get('state')})")
                continue
            audit.outcomes[record["outcome"]] += 1
            finals = sum(1 for entry in store.call_log(call_id) if entry.get("event") == "final")
            if finals != 1:
                audit.problems.append(f"{call_id} has {finals} final log entries")
            for uuid in customer_legs(call_id, int(record.get("tries", "1") or 1)):
                leg_owner[uuid] = call_id
                if dials[uuid] > 1:
                    audit.duplicates.append(f"{call_id} leg {uuid} dialled {dials[uuid]} times")
        if int(contact.get("calls", "0")) != records:
            audit.lost.append(f"contact {contact_id}: {records} recorded calls but {contact.get('calls')} settled")
    numbers = _campaign_numbers(client, campaign, contact_ids)
    for o in originates:
        if o["endpoint"].startswith("gateway/") and o["number"] in numbers:
            audit.calls_placed += 1
            if o["uuid"] not in leg_owner:
                audit.lost.append(f"{o['number']} dialled as {o['uuid']} with no recorded attempt")
    return audit


def _campaign_numbers(client: redis.Redis, campaign: str, contact_ids: list[str]) -> set[str]:
    pipe = client.pipeline(transaction=False)
    for contact_id in contact_ids:
        pipe.hget(f"dialer:campaign:{campaign}:contact:{contact_id}", "number")
    return {_text(n) for n in pipe.execute() if n is not None}


def audit_leftovers(client: redis.Redis, sim_channels: int) -> list[str]:
    """Nothing held once every call is over: in-flight leases, agents, agent and pacing leases, live legs."""
    problems: list[str] = []
    store = Store(client)
    if store.in_flight():
        problems.append(f"in-flight leases left: {store.in_flight()}")
    for agent in store.agents():
        if agent.get("state") in HELD_AGENT_STATES:
            problems.append(f"agent {agent['id']} left {agent['state']} (call {agent.get('call')})")
    leases = [_text(k) for k in client.scan_iter("dialer:agent:*:lease")]
    if leases:
        problems.append(f"agent leases left: {leases}")
    now_us = store.redis_time() * 1e6
    for key in client.scan_iter("dialer:pacing:calls:*"):
        held = client.zrangebyscore(key, now_us, "+inf")
        if held:
            problems.append(f"pacing lease {_text(key)} still held by {[_text(c) for c in held]}")
    if sim_channels:
        problems.append(f"{sim_channels} channels still up on the switch")
    return problems


def settle_rq(client: redis.Redis, timeout: float = 90.0) -> tuple[list[str], int]:
    """Run RQ's own cleanup of abandoned jobs (what any worker's maintenance does) until the queue and the
    started registry are empty; then list what is not clean, and count the failed jobs that never claimed
    their attempt (abandoned more often than RQ retries them: nobody dialled, the contact got a new attempt).
    A failed job whose attempt was claimed is a breach."""
    queue = Queue(CALL_QUEUE, connection=client, serializer=JSONSerializer)
    started, failed = StartedJobRegistry(queue=queue), FailedJobRegistry(queue=queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started.cleanup()
        if not started.get_job_ids() and not queue.job_ids:
            break
        time.sleep(0.2)
    problems = []
    if started.get_job_ids():
        problems.append(f"jobs still in StartedJobRegistry: {started.get_job_ids()}")
    if queue.job_ids:
        problems.append(f"jobs still queued: {queue.job_ids}")
    unclaimed = 0
    for job in Job.fetch_many(failed.get_job_ids(), connection=client, serializer=JSONSerializer):
        if job is None:
            continue
        call = job.args[0]
        call_id = f"{call['campaign']}:{call['contact_id']}:{call['attempt']}"
        if client.exists(call_key(call_id)):
            problems.append(f"{call_id}: its job failed after the attempt was claimed: {job.exc_info}")
        else:
            unclaimed += 1
    return problems, unclaimed


def unfinished_jobs(client: redis.Redis, call_ids: list[str]) -> list[str]:
    """Call jobs (job id = the attempt's customer uuid) that exist and did not end FINISHED."""
    ids = [leg_uuid(call_id) for call_id in call_ids]
    jobs = Job.fetch_many(ids, connection=client, serializer=JSONSerializer)
    return [
        f"{call_id}: job {job.get_status(refresh=False)}"
        for call_id, job in zip(call_ids, jobs, strict=True)
        if job is not None and job.get_status(refresh=False) != JobStatus.FINISHED
    ]


def call_ids(client: redis.Redis, campaign: str) -> list[str]:
    prefix = len(call_key(""))
    return sorted(
        _text(k)[prefix:] for k in client.scan_iter(call_key(f"{campaign}:*")) if not _text(k).endswith(":log")
    )


def stuck_contacts(client: redis.Redis, campaign: str, limit: int = 10) -> list[str]:
    """For a failure message: contacts not done, with their current call record and job."""
    store = Store(client)
    lines = []
    for key in client.scan_iter(f"dialer:campaign:{campaign}:contact:*"):
        contact = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        if contact.get("state") == "done":
            continue
        call_id = contact.get("call_id", "")
        record = store.record(call_id) if call_id else {}
        job = Job.fetch_many([leg_uuid(call_id)], connection=client, serializer=JSONSerializer)[0] if call_id else None
        status = job.get_status(refresh=False) if job is not None else None
        shown = {k: record.get(k) for k in ("state", "outcome", "owner", "adopted_from", "reason")}
        log = [e.get("event") for e in store.call_log(call_id)] if call_id else []
        lines.append(f"{contact.get('contact_id')} {contact.get('state')} {call_id} {shown} job={status} log={log}")
        if len(lines) >= limit:
            break
    return lines
