"""The webhook queue's Lua scripts on a real Redis: leases of the retry schedule, stale settlements,
events scheduled twice, replay, reclaim, and forgetting consumers of senders long gone."""

from __future__ import annotations

import json

import redis

from dialer.webhooks.events import Event
from dialer.webhooks.queue import DEAD, GROUP, RETRY, STREAM, WebhookQueue, record_key
from tests.worker.polling import wait_until


def _event(event_id: str = "ev-1") -> Event:
    body = json.dumps({"id": event_id, "type": "call.ringing", "call_id": "spring:c1:1"}).encode()
    return Event(event_id, "call.ringing", "spring", "spring:c1:1", body)


def _first_attempt_failed(queue: WebhookQueue, event: Event, delay: float | None) -> str | None:
    """Put an entry on the stream, read it, and fail its first attempt."""
    queue.redis.xadd(STREAM, {"campaign": event.campaign, "body": event.body})
    ((entry_id, _),) = queue.read(10, 0.1)
    return queue.fail_entry(entry_id, event, delay, "500", "HTTP 500")


def test_a_failed_first_attempt_leaves_the_stream_for_the_schedule_in_one_step(redis_client: redis.Redis) -> None:
    queue = WebhookQueue(redis_client, "me")
    queue.ensure_group()
    due = _first_attempt_failed(queue, _event(), 30.0)

    assert due is not None
    assert float(due) == redis_client.zscore(RETRY, "ev-1")
    assert redis_client.xlen(STREAM) == 0
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    record = redis_client.hgetall(record_key("ev-1"))
    assert record[b"attempt"] == b"1"
    assert record[b"state"] == b"retry"
    assert record[b"body"] == _event().body


def test_an_event_scheduled_again_under_its_id_keeps_its_schedule(redis_client: redis.Redis) -> None:
    queue = WebhookQueue(redis_client, "me")
    queue.ensure_group()
    first_due = _first_attempt_failed(queue, _event(), 30.0)
    assert _first_attempt_failed(queue, _event(), 0.0) is None  # a re-emitted event, failed too
    assert redis_client.zscore(RETRY, "ev-1") == float(first_due or 0)
    assert redis_client.xlen(STREAM) == 0


def test_a_claimed_retry_is_leased_and_a_stale_settlement_is_ignored(redis_client: redis.Redis) -> None:
    queue = WebhookQueue(redis_client, "me")
    queue.ensure_group()
    _first_attempt_failed(queue, _event(), 0.0)

    (claimed,), wait = queue.claim_retries(10, lease_seconds=0.2)
    assert (claimed.event_id, claimed.attempt, claimed.body) == ("ev-1", 2, _event().body)
    assert wait is not None
    assert 0 < wait <= 0.2
    assert queue.claim_retries(10, lease_seconds=0.2)[0] == []  # leased: nobody else takes it now

    def taken_again() -> bool:
        again, _ = queue.claim_retries(10, lease_seconds=30)
        return bool(again) and again[0].attempt == 3

    wait_until(taken_again, timeout=10, what="the lease ran out and another sender took the event")
    assert queue.settle_retry("ev-1", 2, "done") is None  # the first sender, too late: changes nothing
    assert redis_client.exists(record_key("ev-1"))
    assert queue.settle_retry("ev-1", 3, "done") == "done"
    assert not redis_client.exists(record_key("ev-1"))
    assert redis_client.zcard(RETRY) == 0


def test_the_last_failure_dead_letters_and_replay_makes_it_due_with_fresh_attempts(redis_client: redis.Redis) -> None:
    queue = WebhookQueue(redis_client, "me")
    queue.ensure_group()
    _first_attempt_failed(queue, _event(), 0.0)
    (claimed,), _ = queue.claim_retries(10, 30)
    assert queue.settle_retry("ev-1", claimed.attempt, "dead", status="503", error="HTTP 503") == "dead"

    (dead,) = queue.dead()
    assert (dead["id"], dead["attempt"], dead["error"], dead["campaign"]) == ("ev-1", "2", "HTTP 503", "spring")
    assert queue.dead(campaign="autumn") == []
    assert redis_client.zcard(RETRY) == 0
    assert queue.replay(["ev-1", "never-heard-of"]) == ["never-heard-of"]
    assert redis_client.zcard(DEAD) == 0
    (again,), _ = queue.claim_retries(10, 30)
    assert again.attempt == 1


def test_entries_of_a_dead_consumer_are_reclaimed_after_the_idle_time(redis_client: redis.Redis) -> None:
    dead_sender, live_sender = WebhookQueue(redis_client, "dead"), WebhookQueue(redis_client, "live")
    dead_sender.ensure_group()
    redis_client.xadd(STREAM, {"campaign": "spring", "body": _event().body})
    ((entry_id, _),) = dead_sender.read(10, 0.1)

    assert live_sender.reclaim(10, min_idle_seconds=60)[0] == []  # not idle long enough
    wait_until(lambda: bool(live_sender.reclaim(10, 0.2)[0]), timeout=10, what="the entry reclaimed")
    assert _owner(redis_client, entry_id) == "live"


def test_consumers_long_idle_with_nothing_pending_are_forgotten(redis_client: redis.Redis) -> None:
    queue = WebhookQueue(redis_client, "me")
    queue.ensure_group()
    redis_client.xadd(STREAM, {"campaign": "spring", "body": _event().body})
    WebhookQueue(redis_client, "holds-an-entry").read(10, 0.1)
    redis_client.xgroup_createconsumer(STREAM, GROUP, "gone")
    redis_client.xgroup_createconsumer(STREAM, GROUP, "me")

    assert queue.forget_idle_consumers(3600) == 0
    wait_until(lambda: queue.forget_idle_consumers(0.05) == 1, timeout=10, what="the idle consumer forgotten")
    assert sorted(c["name"] for c in redis_client.xinfo_consumers(STREAM, GROUP)) == [b"holds-an-entry", b"me"]


def _owner(client: redis.Redis, entry_id: str) -> str | None:
    rows = client.xpending_range(STREAM, GROUP, min=entry_id, max=entry_id, count=1)
    return rows[0]["consumer"].decode() if rows else None


def test_a_pending_entry_trimmed_off_the_stream_is_acknowledged_on_reclaim(redis_client: redis.Redis) -> None:
    dead_sender, live_sender = WebhookQueue(redis_client, "dead"), WebhookQueue(redis_client, "live")
    dead_sender.ensure_group()
    redis_client.xadd(STREAM, {"campaign": "spring", "body": _event().body})
    dead_sender.read(10, 0.1)
    redis_client.xtrim(STREAM, maxlen=0)  # an emitter's MAXLEN safety net, past a backlog

    def acknowledged() -> bool:
        assert live_sender.reclaim(10, 0.05)[0] == []
        return redis_client.xpending(STREAM, GROUP)["pending"] == 0

    wait_until(acknowledged, timeout=10, what="the trimmed entry acknowledged")
