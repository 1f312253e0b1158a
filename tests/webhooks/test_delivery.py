"""The sender against real Redis and a real HTTP receiver: signatures, retries and their delays, dead
letters and replay, order and sequence numbers, campaigns without a webhook, malformed entries."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
from datetime import datetime

import pytest

from dialer.localredis import free_port
from dialer.webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, verify
from dialer.webhooks.events import RetryPolicy, parse_event
from dialer.webhooks.queue import DEAD, RETRY, STREAM, WebhookQueue, record_key
from dialer.webhooks.sender import Delivery, Sender
from tests.webhooks.conftest import HOLD, SECRET, Receiver, create_campaign, emit, settled
from tests.worker.polling import wait_until


def test_an_event_arrives_signed_with_its_campaigns_secret(redis_client, receiver: Receiver, start_sender) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    event = emit(redis_client, "spring", "call.ringing", sip_status=180)
    written = redis_client.xrange(STREAM)[0][1][b"body"]
    start_sender()

    (got,) = receiver.wait_for(1)
    assert got.body == written  # the emitter's bytes, untouched
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers[EVENT_ID_HEADER] == event["id"]
    assert got.headers[EVENT_TYPE_HEADER] == "call.ringing"
    assert verify(SECRET, got.body, got.headers[SIGNATURE_HEADER])
    assert not verify("another-campaigns-secret", got.body, got.headers[SIGNATURE_HEADER])
    wait_until(lambda: settled(redis_client), what="the stream trimmed")
    assert redis_client.xpending(STREAM, "senders")["pending"] == 0


def test_a_failing_receiver_gets_retries_with_growing_delays_then_the_event(
    redis_client, receiver: Receiver, start_sender, caplog: pytest.LogCaptureFixture
) -> None:
    # The URL carries credentials: they must reach the receiver but never a log line.
    url = receiver.url.replace("http://", "http://crm-user:url-password-42@")
    create_campaign(redis_client, "spring", url)
    receiver.script = [500, 503, 429]
    caplog.set_level(logging.INFO, logger="dialer.webhooks")
    event = emit(redis_client, "spring", "call.answered")
    base = 0.3
    # No jitter (each wait is its ceiling), so the growth itself can be seen.
    start_sender(webhook_backoff_base=base, webhook_backoff_cap=5.0, webhook_max_attempts=6, rng=lambda: 1.0)

    got = receiver.wait_for(4)
    wait_until(lambda: settled(redis_client), what="the event settled")
    assert len(receiver.received) == 4
    assert {r.headers[EVENT_ID_HEADER] for r in got} == {event["id"]}
    assert {r.body for r in got} == {got[0].body}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
    ceilings = [base, 2 * base, 4 * base]
    for gap, ceiling in zip(gaps, ceilings, strict=True):
        assert gap >= ceiling - 0.01, (gaps, ceilings)  # never earlier than the schedule
        assert gap <= ceiling + 10.0, (gaps, ceilings)  # nor absurdly later (a loaded machine stalls)
    assert gaps[2] > gaps[0], gaps
    assert not redis_client.exists(record_key(event["id"]))

    retries = [r for r in caplog.records if r.getMessage() == "webhook failed; retry scheduled"]
    # The sender's own view: each retry was scheduled exactly its ceiling after the failure.
    scheduled = [datetime.fromisoformat(r.next_retry_at).timestamp() - r.created for r in retries]  # type: ignore[attr-defined]
    assert scheduled == pytest.approx(ceilings, abs=0.05)
    assert [(r.attempt, r.status) for r in retries] == [(1, 500), (2, 503), (3, 429)]  # type: ignore[attr-defined]
    assert all(r.next_retry_at and r.call_id == event["call_id"] for r in retries)  # type: ignore[attr-defined]
    assert retries[0].url == receiver.url  # type: ignore[attr-defined]
    assert "url-password-42" not in caplog.text
    assert SECRET not in caplog.text
    assert got[0].headers["Authorization"].startswith("Basic ")


def test_a_receiver_that_never_succeeds_ends_in_the_dead_letters_and_replay_delivers(
    redis_client, receiver: Receiver, start_sender, redis_url: str
) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    receiver.default = 500
    event = emit(redis_client, "spring", "contact.final", outcome="busy")
    start_sender(webhook_max_attempts=3)

    wait_until(lambda: redis_client.zscore(DEAD, event["id"]) is not None, what="the event dead-lettered")
    assert len(receiver.received) == 3
    record = redis_client.hgetall(record_key(event["id"]))
    assert record[b"attempt"] == b"3"
    assert record[b"state"] == b"dead"
    assert record[b"error"] == b"HTTP 500"
    assert redis_client.zcard(RETRY) == 0

    env = {"DIALER_REDIS_URL": redis_url}
    listed = _dialer(["webhooks", "dead"], env)
    assert event["id"] in listed
    assert "contact.final" in listed
    assert "attempts=3" in listed
    assert SECRET not in listed
    as_json = [json.loads(line) for line in _dialer(["webhooks", "dead", "--json"], env).splitlines()]
    assert [row["id"] for row in as_json] == [event["id"]]
    assert json.loads(as_json[0]["body"])["id"] == event["id"]

    receiver.default = 200
    assert "replayed 1 event" in _dialer(["webhooks", "replay", event["id"]], env)
    got = receiver.wait_for(4)
    assert got[3].headers[EVENT_ID_HEADER] == event["id"]
    wait_until(lambda: not redis_client.exists(record_key(event["id"])), what="the replayed event settled")
    assert redis_client.zcard(DEAD) == 0
    assert _dialer(["webhooks", "dead"], env) == ""
    missing = _dialer(["webhooks", "replay", event["id"]], env, status=1)
    assert "replayed 0 event" in missing


def test_refused_connections_and_timeouts_are_retried(
    redis_client, receiver: Receiver, start_sender, caplog: pytest.LogCaptureFixture
) -> None:
    create_campaign(redis_client, "closed", f"http://127.0.0.1:{free_port()}/hooks")  # nobody listens
    create_campaign(redis_client, "slow", receiver.url)
    receiver.script = [HOLD]  # held past the read timeout, then answered only after the test ends
    caplog.set_level(logging.INFO, logger="dialer.webhooks")
    refused = emit(redis_client, "closed", "call.ringing")
    slow = emit(redis_client, "slow", "call.ringing")
    start_sender(webhook_max_attempts=2)

    got = receiver.wait_for(2)
    assert [r.headers[EVENT_ID_HEADER] for r in got] == [slow["id"], slow["id"]]
    wait_until(lambda: redis_client.zscore(DEAD, refused["id"]) is not None, what="the refused event dead")
    assert b"ConnectError" in redis_client.hget(record_key(refused["id"]), "error")
    wait_until(lambda: not redis_client.exists(record_key(slow["id"])), what="the slow event delivered")
    errors = {r.event_id: r.error for r in caplog.records if r.getMessage() == "webhook failed; retry scheduled"}  # type: ignore[attr-defined]
    assert "Timeout" in errors[slow["id"]]
    assert "ConnectError" in errors[refused["id"]]


def test_the_events_of_a_call_arrive_in_order_with_their_sequence_numbers(
    redis_client, receiver: Receiver, start_sender
) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    steps = ["call.ringing", "call.early_media", "call.answered", "call.bridged", "call.ended"]
    contacts = ["c1", "c2", "c3"]

    def emit_step(index: int) -> None:  # the three calls' events interleaved, as they happen
        for contact in contacts:
            emit(redis_client, "spring", steps[index], contact=contact, sequence=index + 1)

    receiver.latency = 0.05  # so that an event sent before the one ahead was answered would show
    emit_step(0)
    emit_step(1)
    start_sender(concurrency=4)
    for index in range(2, len(steps)):
        emit_step(index)
    got = receiver.wait_for(len(steps) * len(contacts))
    wait_until(lambda: settled(redis_client), what="every event settled")

    assert len({r.headers[EVENT_ID_HEADER] for r in got}) == len(got)
    for contact in contacts:
        mine = [r for r in got if r.event["contact_id"] == contact]
        assert [r.event["sequence"] for r in mine] == [1, 2, 3, 4, 5]
        assert [r.event["type"] for r in mine] == steps
        assert {r.event["call_id"] for r in mine} == {f"spring:{contact}:1"}
        for earlier, later in itertools.pairwise(mine):  # one after another, not side by side
            assert later.at >= receiver.answered[earlier.headers[EVENT_ID_HEADER]]
    # ... while the events of different calls go side by side
    assert any(
        a.at < b.at < receiver.answered[a.headers[EVENT_ID_HEADER]]
        for a in got
        for b in got
        if a.event["contact_id"] != b.event["contact_id"]
    )


def test_a_campaign_without_a_webhook_drops_its_events(
    redis_client, receiver: Receiver, start_sender, caplog: pytest.LogCaptureFixture
) -> None:
    create_campaign(redis_client, "nohook", None, None)
    create_campaign(redis_client, "nosecret", receiver.url)
    redis_client.hdel("dialer:campaign:nosecret", "webhook_secret")  # stored before a secret was required
    create_campaign(redis_client, "hooked", receiver.url)
    caplog.set_level(logging.INFO, logger="dialer.webhooks")
    for campaign in ("nohook", "nosecret", "unknown"):
        emit(redis_client, campaign, "call.ringing", sequence=1)
        emit(redis_client, campaign, "call.answered", sequence=2)
    control = emit(redis_client, "hooked", "call.ringing")
    start_sender()

    receiver.wait_for(1)
    wait_until(lambda: settled(redis_client), what="every entry settled")
    assert redis_client.xpending(STREAM, "senders")["pending"] == 0
    assert [r.headers[EVENT_ID_HEADER] for r in receiver.received] == [control["id"]]
    assert redis_client.zcard(DEAD) == 0
    drops = [r.campaign for r in caplog.records if "events are dropped" in r.getMessage()]  # type: ignore[attr-defined]
    assert sorted(drops) == ["nohook", "nosecret", "unknown"]  # once each, not once per event


def test_a_malformed_entry_goes_to_the_dead_letters(redis_client, receiver: Receiver, start_sender) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    entry_id = redis_client.xadd(STREAM, {"campaign": "spring", "body": "not json"}).decode()
    no_id = redis_client.xadd(STREAM, {"campaign": "spring", "body": json.dumps({"type": "call.ringing"})}).decode()
    control = emit(redis_client, "spring", "call.ringing")
    start_sender()

    receiver.wait_for(1)
    wait_until(lambda: redis_client.zcard(DEAD) == 2 and settled(redis_client), what="both entries dead")
    assert redis_client.hget(record_key(f"entry-{entry_id}"), "error").startswith(b"malformed: body: not JSON")
    assert redis_client.hget(record_key(f"entry-{no_id}"), "error").startswith(b"malformed: id:")
    assert [r.headers[EVENT_ID_HEADER] for r in receiver.received] == [control["id"]]


def test_events_written_before_any_sender_ran_are_delivered(redis_client, receiver: Receiver, start_sender) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    first = emit(redis_client, "spring", "call.ringing")
    assert redis_client.xinfo_groups(STREAM) == []  # no sender has ever read the stream
    start_sender()
    (got,) = receiver.wait_for(1)
    assert got.headers[EVENT_ID_HEADER] == first["id"]


def _dialer(args: list[str], env: dict[str, str], status: int = 0) -> str:
    """Run ``dialer ARGS`` as a process; its stdout (stderr is checked to be empty of secrets too)."""
    done = subprocess.run(
        [sys.executable, "-m", "dialer.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == status, done.stderr
    assert SECRET not in done.stderr
    return done.stdout


def test_a_stream_deleted_under_a_running_sender_is_read_again(redis_client, receiver: Receiver, start_sender) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    start_sender()
    first = emit(redis_client, "spring", "call.ringing", sequence=1)
    receiver.wait_for(1)
    redis_client.delete(STREAM)  # an operator's mistake: the consumer group goes with it
    second = emit(redis_client, "spring", "call.answered", sequence=2)
    got = receiver.wait_for(2)
    assert [r.headers[EVENT_ID_HEADER] for r in got] == [first["id"], second["id"]]


def test_a_newer_claim_of_an_event_still_held_here_waits_behind_it_and_a_reclaimed_entry_is_not_taken_twice(
    redis_client,
) -> None:
    # The pool is not started: what is dispatched stays where dispatch put it.
    sender = Sender(
        WebhookQueue(redis_client, "t"),
        None,
        None,
        RetryPolicy(1, 2, 3),
        **_SENDER_TIMES,  # type: ignore[arg-type]
    )
    event = parse_event("spring", json.dumps({"id": "e1", "type": "call.ringing", "call_id": "spring:c1:1"}).encode())
    sender._dispatch([Delivery(event, 2)])  # its attempt settled, its thread not yet done
    sender._dispatch([Delivery(event, 3)])  # the next attempt, claimed meanwhile
    assert [d.attempt for d in sender._by_order[event.order_key]] == [3]
    sender._dispatch([Delivery(event, 1, "1-0"), Delivery(event, 1, "1-0")])  # a reclaim of an entry held here
    assert [d.attempt for d in sender._by_order[event.order_key]] == [3, 1]


_SENDER_TIMES = {"concurrency": 1, "reclaim_idle": 3.0, "deadline": 2.0, "drain_timeout": 0.0}
