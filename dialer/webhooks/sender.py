"""The webhook sender: from the ``dialer:webhooks`` stream to each campaign's receiver, at least once.

    reader thread     XREADGROUP (BLOCK 1 s) as many new entries as delivery threads are free; every
                      reclaim_idle/4 s first XAUTOCLAIM the entries a dead sender left pending that long
    retry thread      takes due events from the retry schedule (each leased for reclaim_idle s), then
                      sleeps until the next one is due
    delivery threads  POST the body with its signature; 2xx settles the event, anything else (another
                      status, a timeout, a refused connection) moves it to the retry schedule after a backoff,
                      or after its last attempt to the dead letters: one atomic step each (``queue.py``)

Threads, not gevent: a sender needs tens of deliveries in flight, not thousands (each waits at most its
timeouts; 16 threads at 50 ms a delivery carry 300 events a second), httpx's client and redis-py's pool are
thread-safe, and without monkey-patching there is no import-order rule to keep: ``dialer webhooks dead``,
the tests and the process use this module as it is.

Order: within a process the events of one call (or a campaign's own events) are delivered one after
another, in stream order. A retry, a reclaim or a second sender process can still reorder them, so
receivers order by ``sequence`` and dedup by ``id``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from dialer.campaigns.state import campaign_key
from dialer.webhooks import signing
from dialer.webhooks.events import Event, MalformedEvent, RetryPolicy, parse_event
from dialer.webhooks.queue import Claimed, StreamEntry, WebhookQueue
from settings import Settings

log = logging.getLogger("dialer.webhooks")

BLOCK_SECONDS = 1.0  # the longest XREADGROUP waits: bounds how long a stop takes to be noticed
RETRY_POLL_SECONDS = 1.0  # the retry thread looks at the schedule at least this often (other senders add to it)
FORGET_CONSUMERS_AFTER = 3600.0  # a consumer idle this long with nothing pending is a sender long gone
MAX_RESPONSE_BYTES = 65536  # of a receiver's reply body, read so the connection can be reused, then dropped
TROUBLE_PAUSE = 1.0
MAX_CACHED_CAMPAIGNS = 10000


# ---------------------------------------------------------------------------------------------- receivers


@dataclass(frozen=True)
class Target:
    """Where a campaign's events go. Neither field is ever logged: the URL may carry credentials."""

    url: str = field(repr=False)
    secret: bytes = field(repr=False)

    @property
    def safe_url(self) -> str:
        """The URL without user, password, query or fragment: what logs show."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

    def scrub(self, text: str) -> str:
        """``text`` (an HTTP library's error message) with the URL and its password taken out."""
        text = text.replace(self.url, self.safe_url)
        password = urlsplit(self.url).password
        return text.replace(password, "***") if password else text


def target_of(config: bytes | None, secret: bytes | None) -> Target | None:
    """The target from a campaign hash's ``config`` JSON and ``webhook_secret``; None without both."""
    if not config or not secret:
        return None
    try:
        url = json.loads(config).get("webhook_url")
    except (ValueError, AttributeError):
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return Target(url, secret)


class Targets:
    """Each campaign's target, read from its hash and kept ``ttl`` seconds (a URL may be changed)."""

    def __init__(self, client: redis.Redis[bytes], ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Target | None]] = {}
        self._lock = threading.Lock()

    def get(self, campaign: str) -> Target | None:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(campaign)
        if cached is not None and cached[0] > now:
            return cached[1]
        config, secret = self.redis.hmget(campaign_key(campaign), ["config", "webhook_secret"])
        target = target_of(config, secret)
        with self._lock:
            if len(self._cache) >= MAX_CACHED_CAMPAIGNS:
                self._cache.clear()
            self._cache[campaign] = (now + self.ttl, target)
        return target


# ---------------------------------------------------------------------------------------------- one POST


@dataclass(frozen=True)
class Attempt:
    """What one POST got: the HTTP status, or the error that stopped it."""

    status: int | None
    error: str
    elapsed: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(http: httpx.Client, target: Target, event: Event, deadline: float) -> Attempt:
    """POST the event's exact body, signed. Reads at most MAX_RESPONSE_BYTES of the reply, for at most
    ``deadline`` seconds in all (httpx's own timeouts apply to each read, not to the whole reply)."""
    started = time.monotonic()
    try:
        request_headers = signing.headers(target.secret, event.body, event.event_id, event.type)
        with http.stream("POST", target.url, content=event.body, headers=request_headers) as response:
            received = 0
            for chunk in response.iter_raw():
                received += len(chunk)
                if received >= MAX_RESPONSE_BYTES or time.monotonic() - started > deadline:
                    break
        status = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return Attempt(None, target.scrub(f"{type(exc).__name__}: {exc}"), time.monotonic() - started)
    return Attempt(status, "" if 200 <= status < 300 else f"HTTP {status}", time.monotonic() - started)


# ---------------------------------------------------------------------------------------------- the sender


@dataclass(frozen=True)
class Delivery:
    """One attempt to make: a first one from the stream (``entry_id``) or one from the retry schedule."""

    event: Event
    attempt: int
    entry_id: str | None = None

    @property
    def key(self) -> str:
        """Unique per attempt: a stream entry, or an event's attempt number (a newer claim of the same event,
        after its previous attempt here settled but before that attempt's thread let go, is another)."""
        return self.entry_id or f"retry {self.event.event_id} #{self.attempt}"


class _Pool:
    """``size`` daemon threads running ``work`` on submitted items. Daemons, so that a delivery still
    running at exit (after the drain time) does not hold the process: its event stays in Redis."""

    def __init__(self, size: int, work: Callable[[Delivery], None]) -> None:
        self._size = size
        self._work = work
        self._cond = threading.Condition()
        self._queue: deque[Delivery] = deque()
        self._idle = 0
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"webhook-{i}", daemon=True) for i in range(size)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def free(self, timeout: float) -> int:
        """How many items would start at once now; waits up to ``timeout`` for at least one."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._idle > len(self._queue), timeout)
            return 0 if self._closed else max(0, self._idle - len(self._queue))

    def submit(self, item: Delivery) -> None:
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()

    def close(self, timeout: float) -> None:
        """No more items (those not started are dropped); waits up to ``timeout`` for the running ones."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._idle == self._size, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                self._cond.notify_all()
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if self._closed:
                    return
                self._idle -= 1
                item = self._queue.popleft()
            self._work(item)


def _iso(epoch: str) -> str:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="milliseconds")


class Sender:
    """Delivers until stopped. Several may run, on any machines: they share the work through Redis."""

    def __init__(
        self,
        queue: WebhookQueue,
        targets: Targets,
        http: httpx.Client,
        policy: RetryPolicy,
        *,
        concurrency: int,
        reclaim_idle: float,
        deadline: float,
        drain_timeout: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.queue = queue
        self.targets = targets
        self.http = http
        self.policy = policy
        self.reclaim_idle = reclaim_idle
        self.deadline = deadline
        self.drain_timeout = drain_timeout
        self.rng = rng
        self._pool = _Pool(concurrency, self._deliver_in_order)
        self._lock = threading.Lock()
        self._held: set[str] = set()  # Delivery.key of every attempt taken and not yet settled
        self._by_order: dict[str, deque[Delivery]] = {}  # order key in delivery -> the attempts waiting behind
        self._stopping = threading.Event()
        self._wakeup = threading.Event()  # a retry was scheduled here: the retry thread looks again
        self._dropping: set[str] = set()  # campaigns whose dropped events were logged

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        client: redis.Redis[bytes],
        consumer: str,
        concurrency: int | None = None,
        rng: Callable[[], float] = random.random,
    ) -> Sender:
        """A sender as ``dialer webhooks`` runs it; ``close()`` it after ``run``."""
        threads = concurrency or settings.webhook_concurrency
        timeout = httpx.Timeout(
            connect=settings.webhook_connect_timeout,
            read=settings.webhook_read_timeout,
            write=settings.webhook_read_timeout,
            pool=settings.webhook_read_timeout,
        )
        limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
        return cls(
            WebhookQueue(client, consumer),
            Targets(client, settings.webhook_config_ttl),
            httpx.Client(timeout=timeout, limits=limits, follow_redirects=False),
            RetryPolicy(settings.webhook_backoff_base, settings.webhook_backoff_cap, settings.webhook_max_attempts),
            concurrency=threads,
            reclaim_idle=settings.webhook_reclaim_idle_seconds,
            deadline=settings.webhook_connect_timeout + 2 * settings.webhook_read_timeout,
            drain_timeout=settings.webhook_drain_timeout,
            rng=rng,
        )

    def close(self) -> None:
        self.http.close()

    def run(self, stop: threading.Event) -> int:
        """Deliver until ``stop`` is set, then give deliveries in flight ``drain_timeout`` seconds. Returns how
        many events were left in Redis for a reclaim (pending in the stream, or leased in the schedule)."""
        self.queue.ensure_group()
        self._pool.start()
        loops = [
            threading.Thread(target=self._read_loop, name="webhook-reader", daemon=True),
            threading.Thread(target=self._retry_loop, name="webhook-retries", daemon=True),
        ]
        for loop in loops:
            loop.start()
        log.info("webhook sender started", extra={"consumer": self.queue.consumer})
        while not stop.wait(0.5):
            pass
        self._stopping.set()
        self._wakeup.set()
        started = time.monotonic()
        for loop in loops:
            loop.join(timeout=BLOCK_SECONDS + 10)
        self._pool.close(max(0.0, self.drain_timeout - (time.monotonic() - started)))
        with self._lock:
            return len(self._held)

    # ------------------------------------------------------------------ taking work

    def _read_loop(self) -> None:
        next_reclaim = 0.0
        while not self._stopping.is_set():
            free = self._pool.free(timeout=BLOCK_SECONDS)
            if not free:
                continue
            try:
                entries: list[StreamEntry] = []
                if time.monotonic() >= next_reclaim:
                    entries, more = self.queue.reclaim(free, self.reclaim_idle)
                    next_reclaim = time.monotonic() + (0.0 if more else self.reclaim_idle / 4)
                    if entries:
                        log.warning(
                            "reclaimed stream entries a stopped sender left pending", extra={"count": len(entries)}
                        )
                    if not more:
                        self.queue.forget_idle_consumers(FORGET_CONSUMERS_AFTER)
                if not entries:
                    entries = self.queue.read(free, BLOCK_SECONDS)
                deliveries = [delivery for entry in entries if (delivery := self._first_attempt(entry))]
            except Exception as exc:
                self._trouble(exc)
                continue
            self._dispatch(deliveries)

    def _retry_loop(self) -> None:
        while not self._stopping.is_set():
            free = self._pool.free(timeout=RETRY_POLL_SECONDS)
            if not free:
                continue
            self._wakeup.clear()
            try:
                claimed, wait = self.queue.claim_retries(free, self.reclaim_idle)
                deliveries = [delivery for item in claimed if (delivery := self._retry_attempt(item))]
            except Exception as exc:
                self._trouble(exc)
                continue
            self._dispatch(deliveries)
            if len(claimed) < free:
                self._wakeup.wait(RETRY_POLL_SECONDS if wait is None else min(wait, RETRY_POLL_SECONDS))

    def _first_attempt(self, entry: StreamEntry) -> Delivery | None:
        entry_id, fields = entry
        try:
            return Delivery(parse_event(fields.get(b"campaign"), fields.get(b"body")), 1, entry_id)
        except MalformedEvent as exc:
            campaign = fields.get(b"campaign", b"").decode("utf-8", "replace")
            event = Event(f"entry-{entry_id}", "", campaign, None, fields.get(b"body", b""))
            self.queue.fail_entry(entry_id, event, None, "", f"malformed: {exc}")
            log.error(
                "malformed webhook entry dead-lettered",
                extra={"entry_id": entry_id, "event_id": event.event_id, "campaign": campaign, "error": str(exc)},
            )
            return None

    def _retry_attempt(self, claimed: Claimed) -> Delivery | None:
        try:
            event = parse_event(claimed.campaign, claimed.body)
            if event.event_id != claimed.event_id:
                raise MalformedEvent(f"id: the body's id {event.event_id!r} is not the record's")
        except MalformedEvent as exc:
            self.queue.settle_retry(claimed.event_id, claimed.attempt, "dead", error=f"malformed: {exc}")
            log.error("malformed webhook event dead-lettered", extra={"event_id": claimed.event_id, "error": str(exc)})
            return None
        return Delivery(event, claimed.attempt)

    def _trouble(self, exc: Exception) -> None:
        """A pass that failed: whatever it had taken is still in Redis and is taken again later. The loop
        goes on after a pause, whatever the error: a sender whose loop died would look alive and send nothing."""
        if isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP"):
            log.warning("the webhook stream or its consumer group is gone; creating it again")
            with contextlib.suppress(redis.RedisError):  # still away: the next pass tries again
                self.queue.ensure_group()
        elif isinstance(exc, redis.RedisError):  # the URL may hold a password: only the error is logged
            log.error("redis unavailable; retrying", extra={"error": str(exc)})
        else:
            log.exception("webhook sender pass failed; retrying")
        self._stopping.wait(TROUBLE_PAUSE)

    # ------------------------------------------------------------------ one call's events in order

    def _dispatch(self, deliveries: list[Delivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                if delivery.key in self._held:  # reclaimed while this process still has it
                    continue
                self._held.add(delivery.key)
                if self._stopping.is_set():  # read as the stop came: left pending for a reclaim
                    continue
                waiting = self._by_order.get(delivery.event.order_key)
                if waiting is None:
                    self._by_order[delivery.event.order_key] = deque()
                    self._pool.submit(delivery)
                else:
                    waiting.append(delivery)

    def _deliver_in_order(self, first: Delivery) -> None:
        delivery: Delivery | None = first
        while delivery is not None:
            try:
                self._deliver(delivery)
            except Exception as exc:  # Redis gone mid-way: the event is still in Redis and is taken again later
                log.error(
                    "webhook attempt not settled; left for reclaim",
                    extra={**delivery.event.log_fields(), "attempt": delivery.attempt, "error": repr(exc)},
                )
            delivery = self._next_in_order(delivery)

    def _next_in_order(self, done: Delivery) -> Delivery | None:
        with self._lock:
            self._held.discard(done.key)
            waiting = self._by_order[done.event.order_key]
            if waiting and not self._stopping.is_set():
                return waiting.popleft()
            del self._by_order[done.event.order_key]  # when stopping, those waiting stay in Redis (and _held)
            return None

    # ------------------------------------------------------------------ one attempt

    def _deliver(self, delivery: Delivery) -> None:
        event = delivery.event
        fields: dict[str, Any] = {**event.log_fields(), "attempt": delivery.attempt}
        target = self.targets.get(event.campaign)
        if target is None:
            self._settle(delivery, "done")
            if event.campaign not in self._dropping:
                if len(self._dropping) >= MAX_CACHED_CAMPAIGNS:
                    self._dropping.clear()
                self._dropping.add(event.campaign)
                log.info("campaign has no webhook URL or secret: its events are dropped", extra=fields)
            return
        attempt = post(self.http, target, event, self.deadline)
        fields.update(url=target.safe_url, status=attempt.status, elapsed_ms=round(attempt.elapsed * 1000))
        if attempt.delivered:
            self._settle(delivery, "done")
            log.info("webhook delivered", extra=fields)
            return
        fields["error"] = attempt.error
        delay = self.policy.delay(delivery.attempt, self.rng)
        outcome = self._settle(delivery, "retry" if delay is not None else "dead", delay, attempt)
        if outcome == "dead":
            log.error("webhook failed on its last attempt: dead-lettered (dialer webhooks dead | replay)", extra=fields)
        elif outcome is None:
            log.warning("webhook failed; the event is already scheduled by another attempt", extra=fields)
        else:
            self._wakeup.set()
            log.warning("webhook failed; retry scheduled", extra={**fields, "next_retry_at": _iso(outcome)})

    def _settle(
        self, delivery: Delivery, action: str, delay: float | None = None, attempt: Attempt | None = None
    ) -> str | None:
        status = "" if attempt is None or attempt.status is None else str(attempt.status)
        error = "" if attempt is None else attempt.error
        if delivery.entry_id is None:
            return self.queue.settle_retry(delivery.event.event_id, delivery.attempt, action, delay, status, error)
        if action == "done":
            self.queue.settle_entry(delivery.entry_id)
            return "done"
        return self.queue.fail_entry(delivery.entry_id, delivery.event, delay, status, error)
