"""``dialer call +15551230000 [--wait]``: place one call through the queue and follow it live."""

from __future__ import annotations

import argparse
import time

import redis
from pydantic import ValidationError

from dialer.enqueue import enqueue_call
from dialer.store import Store, call_log_key
from settings import get_settings


def main(argv: list[str]) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer call", description="place one call (a worker must be running)")
    parser.add_argument("number", help="E.164, e.g. +15551230000")
    parser.add_argument("--gateway", default=settings.default_gateway)
    parser.add_argument("--caller-id", default=settings.default_caller_id)
    parser.add_argument("--agent-group", default="default")
    parser.add_argument("--ring-timeout", type=int, default=30)
    parser.add_argument("--campaign", default="adhoc")
    parser.add_argument("--contact-id", default=None, help="default: a new id per call")
    parser.add_argument("--wait", action="store_true", help="print the call's progress until it ends")
    parser.add_argument("--redis-url", default=settings.redis_url)
    args = parser.parse_args(argv)

    client = redis.Redis.from_url(args.redis_url, socket_timeout=10)
    payload = {
        "campaign": args.campaign,
        "contact_id": args.contact_id or f"c{int(time.time() * 1000)}",
        "attempt": 1,
        "number": args.number,
        "gateway": args.gateway,
        "caller_id_number": args.caller_id,
        "agent_group": args.agent_group,
        "ring_timeout": args.ring_timeout,
    }
    try:
        job = enqueue_call(client, payload)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"dialer call: {'.'.join(map(str, error['loc']))}: {error['msg']}")
        return 2
    call_id = f"{payload['campaign']}:{payload['contact_id']}:1"
    print(f"queued {call_id} (job {job.id})")
    if not args.wait:
        return 0
    return follow(Store(client), call_id, deadline=time.monotonic() + args.ring_timeout + 3600)


def follow(store: Store, call_id: str, deadline: float) -> int:
    """Print the call's log as it grows, until its final entry (or the deadline)."""
    last = "0-0"
    started = time.monotonic()
    while time.monotonic() < deadline:
        entries = store.redis.xread({call_log_key(call_id): last}, block=1000, count=100)
        for _stream, items in entries or []:
            for entry_id, raw in items:
                last = entry_id.decode()
                fields = {k.decode(): v.decode() for k, v in raw.items()}
                print(f"{time.monotonic() - started:7.3f}s  " + "  ".join(f"{k}={v}" for k, v in fields.items()))
                if fields.get("event") == "final":
                    record = store.record(call_id)
                    print(
                        f"outcome={record.get('outcome')} cause={record.get('hangup_cause')} "
                        f"sip={record.get('sip_status')} agent={record.get('agent', '')}"
                    )
                    return 0
    print("dialer call: no final outcome before the deadline")
    return 1
