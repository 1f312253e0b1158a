"""The real ``dialer webhooks`` process: SIGKILL at any point of a delivery loses nothing (the event arrives
after a restart, with its id), SIGTERM stops it cleanly within the drain time."""

from __future__ import annotations

import signal

import pytest
import redis

from dialer.webhooks import EVENT_ID_HEADER
from dialer.webhooks.queue import RETRY, STREAM, record_key
from tests.webhooks.conftest import HOLD, SECRET, Receiver, create_campaign, emit, settled
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow


def _started(process) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: "webhook sender started" in process.stderr_text(), timeout=20, what="the sender started")


@pytest.mark.parametrize("killed_in", ["first attempt", "retry"])
def test_sigkill_mid_delivery_loses_nothing(
    redis_client: redis.Redis, receiver: Receiver, webhook_processes, killed_in: str
) -> None:
    create_campaign(redis_client, "spring", receiver.url.replace("http://", "http://crm:url-pa55word@"))
    # Killed while the receiver holds the first attempt, or the second (taken from the retry schedule).
    receiver.script = [HOLD] if killed_in == "first attempt" else [500, HOLD]
    event = emit(redis_client, "spring", "call.bridged", agent="1001")
    # A read timeout long enough that the kill surely comes while the attempt is held.
    slow = {
        "DIALER_WEBHOOK_MAX_ATTEMPTS": "5",
        "DIALER_WEBHOOK_READ_TIMEOUT": "2",
        "DIALER_WEBHOOK_RECLAIM_IDLE_SECONDS": "5",
    }
    sender = webhook_processes(**slow)
    held = len(receiver.script)
    receiver.wait_for(held)
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=10)
    first_log = sender.stderr_text()
    # The kill came inside the held attempt (not after its read timeout had already settled it).
    assert first_log.count("webhook failed") == held - 1, first_log

    restarted = webhook_processes(**slow)
    got = receiver.wait_for(held + 1, timeout=30)
    assert [r.headers[EVENT_ID_HEADER] for r in got] == [event["id"]] * (held + 1)
    assert len({r.body for r in got}) == 1
    wait_until(lambda: settled(redis_client), what="the event settled after the restart")
    assert not redis_client.exists(record_key(event["id"]))
    assert redis_client.xpending(STREAM, "senders")["pending"] == 0
    code, log = restarted.stop()
    assert code == 0, log
    assert SECRET not in first_log + log
    assert "url-pa55word" not in first_log + log
    assert got[0].headers["Authorization"].startswith("Basic ")  # the credentials went where they belong


def test_sigterm_stops_cleanly_leaving_a_delivery_in_flight_for_the_next_sender(
    redis_client: redis.Redis, receiver: Receiver, webhook_processes
) -> None:
    create_campaign(redis_client, "spring", receiver.url)
    receiver.script = [200, HOLD]
    delivered = emit(redis_client, "spring", "call.ringing", sequence=1)
    sender = webhook_processes(DIALER_WEBHOOK_READ_TIMEOUT="5", DIALER_WEBHOOK_RECLAIM_IDLE_SECONDS="11")
    _started(sender)
    receiver.wait_for(1)
    in_flight = emit(redis_client, "spring", "call.answered", contact="c2")
    receiver.wait_for(2)

    code, log = sender.stop(timeout=15)  # drain 1 s: the held delivery is given up, not waited for
    assert code == 0, log
    assert "webhook sender stopped" in log
    assert "left_for_reclaim=1" in log
    assert redis_client.xpending(STREAM, "senders")["pending"] == 1
    assert redis_client.zcard(RETRY) == 0

    restarted = webhook_processes(DIALER_WEBHOOK_RECLAIM_IDLE_SECONDS="3")
    got = receiver.wait_for(3, timeout=30)
    assert [r.headers[EVENT_ID_HEADER] for r in got] == [delivered["id"], in_flight["id"], in_flight["id"]]
    wait_until(lambda: settled(redis_client), what="the reclaimed event settled")
    code, log = restarted.stop()
    assert code == 0, log
    assert "left_for_reclaim=0" in log


def test_sigint_stops_an_idle_sender(webhook_processes) -> None:
    sender = webhook_processes()
    _started(sender)
    sender.send_signal(signal.SIGINT)
    assert sender.wait(timeout=15) == 0
    assert "webhook sender stopped" in sender.stderr_text()


def test_an_unreachable_redis_is_an_error_at_start(webhook_processes) -> None:
    from dialer.localredis import free_port

    sender = webhook_processes(DIALER_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert sender.wait(timeout=30) == 1
    assert "redis unavailable" in sender.stderr_text()
