"""The long-lived handle on one FreeSWITCH node: reconnects, commands, background jobs, event routing.

A worker process holds one ``Switch`` per node. Calls talk to the switch only through it:

- ``api()`` and ``bgapi()`` with a timeout on every wait; ``-ERR`` replies raise ``CommandError``;
- ``route(uuid)`` gives a call its own queue, fed in arrival order with every event whose
  ``Unique-ID`` it claimed; the reader only ever ``put``s into unbounded queues, so a slow call cannot
  hold up the others. Events nobody claimed are counted (``stats.unclaimed``);
- when the link drops, pending commands fail with ``ConnectionLost`` at once, the supervisor
  reconnects with exponential backoff and jitter, subscribes again, re-applies the filters, and puts
  a :data:`GAP` marker into every routed queue: events may have been missed, so each call must
  reconcile itself (``uuid_exists`` and friends) before trusting its state again.
"""

from __future__ import annotations

import bisect
import logging
import random
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

import gevent
import gevent.event
from gevent.queue import Queue

from dialer.esl import commands
from dialer.esl.errors import CommandError, CommandTimeout, ConnectionLost, ESLError
from dialer.esl.events import Event, parse_event
from dialer.esl.frames import Frame

from .link import Link

log = logging.getLogger(__name__)


class Gap:
    """Marker put into call queues after a reconnect: events may have been lost in between."""

    def __repr__(self) -> str:
        return "GAP"


GAP = Gap()
CallQueue: TypeAlias = Queue  # holds Event | Gap


#: Upper bounds (seconds) of the command latency histogram: an api/bgapi reply takes ~0.1-10 ms on a healthy
#: switch; anything past 100 ms means a loaded switch or network, 5 s is the default command timeout.
COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class SwitchStats:
    """Counters of one node's link, read by ``dialer.metrics`` at scrape time."""

    command_bounds: ClassVar[tuple[float, ...]] = COMMAND_BUCKETS
    events: int = 0
    unclaimed: int = 0
    reconnects: int = 0
    connected_since: float | None = None
    # every command's latency, cumulatively: count per COMMAND_BUCKETS bound (one more for +Inf), and the sum
    command_buckets: list[int] = field(default_factory=lambda: [0] * (len(COMMAND_BUCKETS) + 1))
    command_total_seconds: float = 0.0

    def observe_command(self, seconds: float) -> None:
        self.command_buckets[bisect.bisect_left(COMMAND_BUCKETS, seconds)] += 1
        self.command_total_seconds += seconds


class BackgroundJob:
    """The future of a ``bgapi`` command, resolved by its BACKGROUND_JOB event."""

    def __init__(self, command: str, job_uuid: str) -> None:
        self.command = command
        self.job_uuid = job_uuid
        self._result: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def get(self, timeout: float) -> str:
        """The job's result text (``+OK ...``); ``-ERR CAUSE`` raises ``CommandError``."""
        try:
            body: str = self._result.get(timeout=timeout)
        except gevent.Timeout:
            verb = self.command.split(" ", 1)[0]
            raise CommandTimeout(f"no BACKGROUND_JOB for {verb} within {timeout:.1f} s") from None
        return commands.raise_for_error(self.command, body.strip())

    def ready(self) -> bool:
        return bool(self._result.ready())


class Switch:
    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        name: str = "fs1",
        events: Sequence[str] = ("ALL",),
        subclasses: Sequence[str] = (),
        filters: Iterable[tuple[str, str]] = (),
        event_format: commands.EventFormat = "plain",
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        idle_timeout: float = 65.0,
        backoff_min: float = 0.2,
        backoff_max: float = 10.0,
        on_unclaimed: Callable[[Event], None] | None = None,
    ) -> None:
        self.name = name
        self.host, self.port, self._password = host, port, password
        self.events, self.subclasses, self.event_format = tuple(events), tuple(subclasses), event_format
        self._filters: list[tuple[str, str]] = list(filters)
        self.connect_timeout, self.command_timeout, self.idle_timeout = connect_timeout, command_timeout, idle_timeout
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.on_unclaimed = on_unclaimed
        self.stats = SwitchStats()
        self._routes: dict[str, CallQueue] = {}
        self._jobs: dict[str, BackgroundJob] = {}
        self._link: Link | None = None
        self._up = gevent.event.Event()
        self._wake = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self._supervisor: gevent.Greenlet | None = None
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Switch {self.name} {self.host}:{self.port} {'up' if self.connected else 'down'}>"

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return bool(self._up.is_set())

    def start(self, wait: float | None = None) -> bool:
        """Start the supervisor; with ``wait``, block up to that long for the first connection."""
        if self._supervisor is None:
            self._supervisor = gevent.spawn(self._supervise)
        return self.wait_connected(wait) if wait is not None else self.connected

    def wait_connected(self, timeout: float) -> bool:
        return bool(self._up.wait(timeout))

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        link = self._link
        if link is not None:
            link.stop()
        if self._supervisor is not None:
            self._supervisor.join(timeout=self.command_timeout)
            self._supervisor.kill(block=False)

    def drop(self) -> None:
        """Close the current link (tests, and recovery from a stuck switch); the supervisor reconnects."""
        if self._link is not None:
            self._link.close(ConnectionLost("dropped on request"))

    def _supervise(self) -> None:
        delay = self.backoff_min
        first = True
        while not self._stopping.is_set():
            self._wake.clear()  # before connecting, so a close that happens at any point wakes us
            try:
                self._connect(first)
            except ESLError as exc:
                self.last_error = exc
                log.warning("esl connect failed", extra={"node": self.name, "error": str(exc), "retry_in": delay})
                if self._stopping.is_set():
                    break
                self._wake.clear()
                self._wake.wait(delay * random.uniform(0.5, 1.0))  # jitter: workers must not reconnect in step
                delay = min(delay * 2, self.backoff_max)
                continue
            first, delay = False, self.backoff_min
            self._wake.wait()  # until the link closes or stop() is called

    def _connect(self, first: bool) -> None:
        link = Link(
            self.host,
            self.port,
            self._password,
            connect_timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
            idle_timeout=self.idle_timeout,
            on_event=self._dispatch,
            on_close=self._closed,
        )
        link.connect()
        self._link = link
        try:
            self._check(link.send(commands.event(self.events, self.event_format, self.subclasses)), "event")
            for header, value in self._filters:
                self._check(link.send(commands.filter_add(header, value)), "filter")
        except ESLError:
            link.close(ConnectionLost("subscription failed"))
            raise
        self.stats.connected_since = time.time()
        if not first:
            self.stats.reconnects += 1
        self._up.set()
        log.info("esl connected", extra={"node": self.name, "host": self.host, "port": self.port, "first": first})
        if not first:
            for queue in set(self._routes.values()):
                queue.put(GAP)

    def _closed(self, link: Link, reason: BaseException) -> None:
        if link is not self._link:
            return
        self._up.clear()
        self.last_error = reason
        # Background jobs die with the link: their BACKGROUND_JOB will never come on a new one.
        jobs, self._jobs = self._jobs, {}
        for job in jobs.values():
            job._result.set_exception(ConnectionLost(f"link lost before {job.command.split(' ', 1)[0]} finished"))
        if not self._stopping.is_set():
            log.warning("esl link lost", extra={"node": self.name, "reason": str(reason)})
        self._wake.set()

    @staticmethod
    def _check(frame: Frame, command: str) -> str:
        return commands.raise_for_error(command, frame.reply_text)

    # ------------------------------------------------------------------ commands

    def _current_link(self, timeout: float) -> Link:
        if not self._up.wait(timeout) or self._link is None:
            raise ConnectionLost(f"not connected to {self.name} ({self.host}:{self.port}): {self.last_error}")
        return self._link

    def api(self, command: str, timeout: float | None = None) -> str:
        """Run a blocking API command and return its reply text; ``-ERR`` raises ``CommandError``.

        Keep these short: while an ``api`` command runs, the switch sends nothing else on this
        connection. Never ``api originate``.
        """
        limit = self.command_timeout if timeout is None else timeout
        if command.startswith("originate"):
            raise CommandError(command, "use bgapi for originate: api originate blocks the connection")
        started = time.perf_counter()
        frame = self._current_link(limit).send(commands.api(command), limit)
        self._record_latency(started)
        return commands.raise_for_error(command, frame.reply_text)

    def bgapi(self, command: str, job_uuid: str | None = None, timeout: float | None = None) -> BackgroundJob:
        """Start a background API command; the returned job resolves with its BACKGROUND_JOB."""
        limit = self.command_timeout if timeout is None else timeout
        job = BackgroundJob(command, job_uuid or str(uuidlib.uuid4()))
        link = self._current_link(limit)
        self._jobs[job.job_uuid] = job  # before the write: the event may be read before we resume
        try:
            started = time.perf_counter()
            self._check(link.send(commands.bgapi(command, job.job_uuid), limit), command)
            self._record_latency(started)
        except BaseException:
            self._jobs.pop(job.job_uuid, None)
            raise
        return job

    def _record_latency(self, started: float) -> None:
        self.stats.observe_command(time.perf_counter() - started)

    # ------------------------------------------------------------------ events

    def route(self, unique_id: str, queue: CallQueue | None = None) -> CallQueue:
        """Send every event of channel ``unique_id`` to ``queue`` (a new one if not given)."""
        target: CallQueue = queue if queue is not None else Queue()
        self._routes[unique_id] = target
        return target

    def unroute(self, *unique_ids: str) -> None:
        for unique_id in unique_ids:
            self._routes.pop(unique_id, None)

    def add_filter(self, header: str, value: str) -> None:
        """Add an ESL filter now and after every reconnect."""
        if (header, value) not in self._filters:
            self._filters.append((header, value))
        if self.connected:
            self._check(self._current_link(self.command_timeout).send(commands.filter_add(header, value)), "filter")

    def delete_filter(self, header: str, value: str) -> None:
        if (header, value) in self._filters:
            self._filters.remove((header, value))
        if self.connected:
            link = self._current_link(self.command_timeout)
            self._check(link.send(commands.filter_delete(header, value)), "filter delete")

    def _dispatch(self, frame: Frame) -> None:
        """Runs in the reader greenlet: parse, route, never block."""
        event = parse_event(frame)
        self.stats.events += 1
        if event.name == "BACKGROUND_JOB":
            job = self._jobs.pop(event.job_uuid or "", None)
            if job is not None:
                job._result.set(event.body)
                return
        queue = self._routes.get(event.unique_id or "")
        if queue is not None:
            queue.put(event)
            return
        self.stats.unclaimed += 1
        if self.on_unclaimed is not None:
            self.on_unclaimed(event)
