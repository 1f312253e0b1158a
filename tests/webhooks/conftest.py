"""Webhook fixtures: a real HTTP receiver on port 0 (a threaded http.server that answers as a test tells it),
events written into the stream as the emitters write them, the sender in this process (a thread) and as a
real ``dialer webhooks`` process."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from dialer.campaigns.service import Campaigns
from dialer.webhooks import EVENT_ID_HEADER
from dialer.webhooks.queue import STREAM
from dialer.webhooks.sender import Sender
from settings import Settings
from tests.campaigns.helpers import campaign_config
from tests.e2e.conftest import dialer_processes, running_processes, sim
from tests.worker.polling import wait_until

__all__ = ["dialer_processes", "sim"]  # the end-to-end fixtures, for the campaign test

SECRET = "whsec-test-0123456789"
HOLD = "hold"  # a scripted answer: keep the request open until the test releases it (or 30 s)

#: Short schedules, so a test sees every retry within seconds.
FAST: dict[str, Any] = {
    "webhook_backoff_base": 0.2,
    "webhook_backoff_cap": 2.0,
    "webhook_max_attempts": 4,
    "webhook_connect_timeout": 0.5,
    "webhook_read_timeout": 1.0,
    "webhook_reclaim_idle_seconds": 3.0,
    "webhook_config_ttl": 0.0,
    "webhook_drain_timeout": 1.0,
}


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    """Answers each request with the next entry of ``script`` (a status, or HOLD), then ``default``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answered: dict[str, float] = {}  # event id -> time.monotonic() as its (last) answer was sent
        self.script: list[int | str] = []
        self.default: int | str = 200
        self.latency = 0.0  # seconds each answer takes: a slow receiver
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body, arrived))
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                if answer == HOLD:
                    receiver.release.wait(30)
                    answer = 200
                receiver.release.wait(receiver.latency)  # the latency of a slow receiver, cut short at the end
                with receiver._lock:  # before the answer goes out: nothing the answer causes can come earlier
                    receiver.answered[self.headers.get(EVENT_ID_HEADER, "")] = time.monotonic()
                try:
                    self.send_response(int(answer))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender is gone (killed, or timed out)
                    pass

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        wait_until(lambda: len(self.received) >= count, timeout, what=f"{count} requests at the receiver")
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def create_campaign(client: redis.Redis, campaign: str, url: str | None, secret: str | None = SECRET) -> None:
    """A campaign stored exactly as the API stores one."""
    Campaigns(client).create(campaign_config(campaign, webhook_url=url, webhook_secret=secret))


def emit(
    client: redis.Redis,
    campaign: str,
    event_type: str,
    contact: str = "c1",
    attempt: int = 1,
    sequence: int = 1,
    **data: Any,
) -> dict[str, Any]:
    """Append one event to the stream as the emitters do (compact JSON); returns the event."""
    call_id = f"{campaign}:{contact}:{attempt}"
    event: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call_id}/{event_type}/{sequence}")),
        "type": event_type,
        "campaign": campaign,
        "call_id": call_id,
        "contact_id": contact,
        "attempt": attempt,
        "sequence": sequence,
        "occurred_at": time.time(),
        "data": data,
    }
    client.xadd(STREAM, {"campaign": campaign, "body": json.dumps(event, separators=(",", ":"))})
    return event


def settled(client: redis.Redis) -> bool:
    """Nothing left to do: the stream trimmed to nothing, nothing pending, nothing scheduled."""
    return client.xlen(STREAM) == 0 and client.zcard("dialer:webhooks:retry") == 0


class SenderThread:
    """The sender of ``dialer webhooks``, run in a thread of this process."""

    def __init__(self, redis_url: str, concurrency: int = 4, rng: Any = None, **overrides: Any) -> None:
        self.settings = Settings(redis_url=redis_url, **{**FAST, **overrides})
        self.client = redis.Redis.from_url(redis_url, socket_timeout=15)
        extra = {} if rng is None else {"rng": rng}
        self.sender = Sender.from_settings(self.settings, self.client, "test-sender", concurrency, **extra)
        self.stop = threading.Event()
        self.left: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.left = self.sender.run(self.stop)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the sender did not stop"
        self.sender.close()
        self.client.close()


@pytest.fixture
def start_sender(redis_url: str) -> Iterator[Any]:
    senders: list[SenderThread] = []

    def start(**kwargs: Any) -> SenderThread:
        sender = SenderThread(redis_url, **kwargs)
        senders.append(sender)
        return sender

    yield start
    for sender in senders:
        sender.close()


#: What every test-started ``dialer webhooks`` process gets (as DIALER_* variables).
PROCESS_ENV = {f"DIALER_{name.upper()}": str(value) for name, value in FAST.items()}


@pytest.fixture
def webhook_processes(redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """``start(*args, DIALER_X="y")``: a real ``dialer webhooks`` process on this Redis, with FAST settings."""
    env = {**os.environ, **PROCESS_ENV, "DIALER_REDIS_URL": redis_url}
    with running_processes(env, tmp_path) as start:
        yield functools.partial(start, "webhooks")
