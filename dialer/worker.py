"""``GeventWorker``: an RQ worker that runs up to N jobs at once as greenlets in one process.

RQ's stock ``Worker`` forks a process per job and times jobs out with SIGALRM; a call lasts minutes and a
worker holds hundreds of them, so here each job runs in a greenlet of the worker process itself.

What RQ expects of a worker, kept for every greenlet (RQ 3 already models several executions per worker):

- before a job runs, one pipeline (RQ's ``prepare_execution`` and ``prepare_job_execution`` together)
  writes its ``Execution``, its StartedJobRegistry entry and the worker's execution index, and marks the
  job STARTED;
- while it runs, one heartbeat greenlet refreshes, every ``job_monitoring_interval`` seconds and in one
  pipeline, the worker key and each running job's execution, registry scores and ``last_heartbeat``, so
  that ``StartedJobRegistry.cleanup`` (run by any worker's maintenance) never takes a running job for an
  abandoned one;
- when it ends, RQ's own ``_finalize_success`` / ``_finalize_failure`` record the result or the traceback,
  apply ``Retry``, and delete the execution.

Timeouts are a ``gevent.Timeout`` raised inside the job's greenlet (``GeventDeathPenalty``): SIGALRM would
interrupt whichever greenlet happened to be running.

Jobs and results are serialised with RQ's ``JSONSerializer`` (pickle in Redis is code execution for anyone
who can write to Redis). Enqueuers must use it too (``dialer.enqueue.enqueue_call`` does)::

    Queue("calls", connection=redis, serializer=JSONSerializer).enqueue("jobs.calls.dial", payload)

Shutdown. The first SIGTERM/SIGINT stops taking jobs and lets running ones finish for up to
``drain_timeout`` seconds; job code can see this with ``shutdown_requested()``. Jobs still running at the
deadline are passed to ``on_drain_timeout(jobs)``, then ``ShutdownRequested`` is raised inside them, so
their ``finally`` blocks run (hang up, release leases). A job that lets it propagate is *handed back*: its
execution is deleted and the same job (same id, args and meta) is put back at the front of its queue,
QUEUED. Requeueing, rather than leaving the entry to expire, is deliberate: RQ's abandoned-job handling
only requeues jobs that have retries left and fails the others, and only after the heartbeat TTL and the
next maintenance run. A call job run again finds its attempt already claimed and reconciles instead of
dialling (DESIGN.md property 1). Code that catches ``ShutdownRequested`` and returns decides the outcome
itself: the job is FINISHED with what it returned.
A second signal (more than ``signal_debounce_seconds`` after the first, since Ctrl+C under a process
manager delivers two at once) raises ``ColdShutdown`` instead (call jobs hang up rather than hand the call
over), hands the jobs back all the same, waits at most ``cold_grace_seconds`` and exits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

import gevent
import gevent.event
import gevent.pool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty, JobTimeoutException
from rq.utils import now
from rq.worker import DequeueStrategy, Worker, WorkerStatus

__all__ = ["ColdShutdown", "GeventDeathPenalty", "GeventWorker", "ShutdownRequested", "shutdown_requested"]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 100
# With the 5 s kill grace after the deadline, this fits the 30 s a Kubernetes pod gets to stop by default.
DEFAULT_DRAIN_TIMEOUT = 20.0

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class ShutdownRequested(BaseException):
    """Raised inside a job's greenlet when the worker stops it at shutdown.

    A ``BaseException`` so that ``except Exception`` in job code cannot swallow it. Let it propagate and
    the worker requeues the job; return normally instead and the job is recorded as FINISHED.
    """


class ColdShutdown(BaseException):
    """Raised inside a job's greenlet on a second SIGTERM/SIGINT: stop now. Call jobs hang up (rather
    than hand the call back, as on :class:`ShutdownRequested`), and the job is requeued all the same."""


class _JobStopped(BaseException):
    """Raised inside a job's greenlet by RQ's ``stop-job`` / ``stop-execution`` commands."""


class GeventDeathPenalty(BaseDeathPenalty):
    """RQ's job timeout as a ``gevent.Timeout`` in the greenlet that enters it (the job's own)."""

    _gevent_timeout: gevent.Timeout | None = None

    def setup_death_penalty(self) -> None:
        if self._timeout is None or self._timeout <= 0:  # RQ's -1: no timeout
            return
        error = self._exception(f"Task exceeded maximum timeout value ({self._timeout} seconds)")
        self._gevent_timeout = gevent.Timeout(self._timeout, error)
        self._gevent_timeout.start()

    def cancel_death_penalty(self) -> None:
        if self._gevent_timeout is not None:
            self._gevent_timeout.close()
            self._gevent_timeout = None


class _JobGreenlet(gevent.Greenlet):  # type: ignore[misc]
    """The greenlet running one job's code; it knows its worker so ``shutdown_requested()`` can ask."""

    def __init__(self, worker: GeventWorker, running: _RunningJob) -> None:
        super().__init__(worker._run_job_code, running)
        self.worker = worker


def shutdown_requested() -> bool:
    """True once the worker running the calling job has been asked to stop (it is draining).

    Works in the job's greenlet and in the greenlets it spawns (gevent records who spawned whom); False
    outside any job.
    """
    greenlet = gevent.getcurrent()
    while greenlet is not None:
        if isinstance(greenlet, _JobGreenlet):
            return greenlet.worker.stopping
        spawned_by = getattr(greenlet, "spawning_greenlet", None)
        greenlet = spawned_by() if spawned_by is not None else None
    return False


@dataclass(eq=False)
class _RunningJob:
    job: Job
    queue: Queue
    execution: Execution
    code: _JobGreenlet | None = None
    begun: bool = False  # the job code has started: an exception can now be raised inside it
    cancelled: type[BaseException] | None = None  # stopped before the job code started: raise this instead
    given_up: gevent.event.Event = field(default_factory=gevent.event.Event)  # stop waiting for the code


@dataclass(frozen=True)
class _Outcome:
    return_value: Any
    exc_info: ExcInfo | None


# RQ's INFO lines for every job that succeeds; a call job logs its own ("call ended", with the outcome).
_PER_JOB_LINES = frozenset({"Successfully completed job %s in %ss on worker %s", "Worker %s: %s: %s (%s)"})


def _per_job_lines_at_debug(record: logging.LogRecord) -> bool:
    """A filter on RQ's worker logger: its per-job success lines become DEBUG lines (at 300 calls/s they
    were 600 lines a second of noise, and 3 % of a worker's CPU)."""
    if record.levelno == logging.INFO and record.msg in _PER_JOB_LINES:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


class GeventWorker(Worker):
    """Runs up to ``concurrency`` jobs at once, each in a greenlet; see the module docstring.

    ``drain_timeout``: seconds running jobs get to finish after the first SIGTERM/SIGINT.
    ``heartbeat_grace``: seconds a running job's registry entry outlives its last heartbeat.
    Other keyword arguments go to RQ's worker (``job_monitoring_interval`` is the heartbeat period).
    """

    death_penalty_class = GeventDeathPenalty
    log_result_lifespan = False  # RQ's "result is kept for N seconds", once per job
    # One blocking dequeue waits this long, so that a stop request is noticed within it.
    dequeue_poll_seconds = 1
    # A second signal this soon after the first is the same Ctrl+C delivered twice, not a second request.
    signal_debounce_seconds = 1.0
    # After ShutdownRequested is raised: time for finally blocks before the jobs are handed back anyway.
    kill_grace_seconds = 5.0
    cold_grace_seconds = 2.0
    # Running jobs per heartbeat pipeline (six commands each); the worker yields to the calls between
    # pipelines. 100 held every call up for 3-5 ms.
    heartbeat_chunk = 20

    def __init__(
        self,
        queues: str | Queue | Sequence[str] | Sequence[Queue],
        name: str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        heartbeat_grace: float = 60.0,
        **kwargs: Any,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if drain_timeout < 0:
            raise ValueError(f"drain_timeout must not be negative, got {drain_timeout}")
        if kwargs.get("serializer") is None:  # also when RQ passes None explicitly (Worker.find_by_key)
            kwargs["serializer"] = JSONSerializer
        kwargs.setdefault("log_job_description", False)  # descriptions show the arguments: phone numbers
        super().__init__(queues, name, **kwargs)
        self.log.addFilter(_per_job_lines_at_debug)
        self.concurrency = concurrency
        self.drain_timeout = drain_timeout
        self.heartbeat_grace = heartbeat_grace
        self.exit_code = 0
        self._slots = gevent.pool.Pool(concurrency)
        self._running: dict[str, _RunningJob] = {}  # by execution id
        self._idle = gevent.event.Event()
        self._idle.set()
        self._stop = gevent.event.Event()
        self._cold = gevent.event.Event()
        self._stop_monotonic = 0.0
        self._signal_watchers: list[tuple[int, Any, Any]] = []
        self._hub: Any = None
        #: Whether a new job could run now (``dialer worker``: while a switch is connected); a call job taken
        #: while none is would fail without dialling and use up one of its contact's attempts.
        self.can_take_jobs: Callable[[], bool] = lambda: True

    @property
    def stopping(self) -> bool:
        return bool(self._stop.is_set())

    @property
    def running_jobs(self) -> list[Job]:
        return [running.job for running in self._running.values()]

    def on_drain_timeout(self, jobs: list[Job]) -> None:
        """Called at the drain deadline with the jobs still running, just before they are stopped."""
        log.warning("drain deadline reached", extra={"worker": self.name, "job_ids": [job.id for job in jobs]})

    # -- the loop --------------------------------------------------------------------------------------

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = False,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        """RQ's ``work()``: take jobs until stopped (or, with ``burst``, until the queues are empty and
        every job has ended), then drain. Returns whether any job was started."""
        self._hub = gevent.get_hub()
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        heartbeats = gevent.spawn(self._heartbeat_forever)
        started = 0
        try:
            try:
                started = self._take_jobs(burst, max_jobs, max_idle_time)
            except Exception:
                log.exception("worker loop failed, draining", extra={"worker": self.name})
                self.exit_code = 1
                self.request_warm_shutdown("worker loop failed")
            # Ended by burst, max_jobs or max_idle_time: let the jobs finish, unless a signal asks for a drain.
            gevent.wait([self._idle, self._stop], count=1)
            self._stop.set()
            self._drain()
        finally:
            heartbeats.kill()
            self._remove_signal_handlers()
            self.teardown()
        return started > 0

    def _take_jobs(self, burst: bool, max_jobs: int | None, max_idle_time: int | None) -> int:
        started = 0
        idle_since = time.monotonic()
        backoff = 1.0
        suspension_checked = -math.inf
        while not self._stop.is_set():
            try:
                # ``rq suspend`` is noticed within a dequeue poll, as by RQ's worker, not one round trip per job.
                if time.monotonic() - suspension_checked >= self.dequeue_poll_seconds:
                    self.check_for_suspension(burst)
                    suspension_checked = time.monotonic()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                if not self._wait_for_free_slot():
                    break
                dequeued = self._dequeue(burst)
                if dequeued is not None:
                    self.execute_job(*dequeued)
            except StopRequested:  # suspended in burst mode
                break
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # A job dequeued but not started stays in RQ's intermediate queue, whose cleanup fails it.
                log.warning("redis unavailable", extra={"worker": self.name, "error": str(exc), "retry_in": backoff})
                self._stop.wait(backoff)
                backoff = min(backoff * self.exponential_backoff_factor, self.max_connection_wait_time)
                continue
            backoff = 1.0
            if self._running:
                idle_since = time.monotonic()
            if dequeued is None:
                if not self._running and self.get_state() == WorkerStatus.BUSY:  # shown in the dashboard
                    self.set_state(WorkerStatus.IDLE)
                if burst:
                    if not self._running:
                        break
                    # Running jobs may enqueue more: look again once they are done.
                    gevent.wait([self._idle, self._stop], count=1)
                elif max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                    break
                continue
            started += 1
            if max_jobs is not None and started >= max_jobs:
                break
        return started

    def _wait_for_free_slot(self) -> bool:
        """Block until a job slot is free and ``can_take_jobs()``; False if a stop was requested meanwhile."""
        told = False
        while not self._stop.is_set():
            if not self.can_take_jobs():
                if not told:
                    log.warning("not taking jobs: no FreeSWITCH node is connected", extra={"worker": self.name})
                    told = True
                self._stop.wait(self.dequeue_poll_seconds)
            elif self._slots.wait_available(timeout=self.dequeue_poll_seconds):
                if told:
                    log.info("taking jobs again", extra={"worker": self.name})
                return True
        return False

    def _dequeue(self, burst: bool) -> tuple[Job, Queue] | None:
        try:
            dequeued: tuple[Job, Queue] | None = self.queue_class.dequeue_any(
                self._ordered_queues,
                None if burst else self.dequeue_poll_seconds,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
        except DequeueTimeout:
            return None
        if dequeued is not None:
            job, queue = dequeued
            self.reorder_queues(reference_queue=queue)
            job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
            log.debug("dequeued", extra={"worker": self.name, "job_id": job.id, "queue": queue.name})
        return dequeued

    # -- one job ---------------------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Start ``job`` in a free slot and return at once (RQ's horse-forking version waits)."""
        execution = self._start_execution(job)
        running = _RunningJob(job, queue, execution)
        self._running[execution.id] = running
        self._idle.clear()
        self._slots.spawn(self._run_slot, running)

    def _start_execution(self, job: Job) -> Execution:
        """RQ's ``prepare_execution`` and ``prepare_job_execution`` in one round trip: the execution, the job
        STARTED (out of the intermediate queue), the worker BUSY. Not written per job, unlike RQ: the worker's
        heartbeat (the heartbeat greenlet's) and the process title (one title cannot show hundreds of jobs)."""
        ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipeline:
            execution = Execution.create(job, ttl, pipeline=pipeline, worker_name=self.name)
            if self.get_state() != WorkerStatus.BUSY:
                self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            if len(self.queues) == 1:  # as RQ: with several queues the job may have come from any of them
                pipeline.lrem(self.queues[0].intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self.executions[execution.id] = execution
        return execution

    def _run_slot(self, running: _RunningJob) -> None:
        try:
            self.perform_job(running.job, running.queue, running.execution)
        except Exception:  # a bug or Redis gone mid-bookkeeping: keep the worker going, RQ's cleanup recovers
            log.exception("job bookkeeping failed", extra={"worker": self.name, "job_id": running.job.id})
        finally:
            self._running.pop(running.execution.id, None)
            self.executions.pop(running.execution.id, None)
            if not self._running:
                self._idle.set()

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """RQ's ``perform_job``, with the job code in its own greenlet so that stopping it at shutdown can
        never interrupt the Redis bookkeeping done here."""
        running = self._running[execution.id]
        try:
            outcome = self._wait_for_job_code(running)
            if outcome.exc_info is None:
                self._finalize_success(job, queue, execution, outcome.return_value)
                return True
            exc_info = outcome.exc_info
        except Exception:  # as RQ: a failing success callback or bookkeeping step fails the job
            exc_info = sys.exc_info()  # type: ignore[assignment]
        error = exc_info[1]
        if isinstance(error, ShutdownRequested | ColdShutdown):
            self.hand_back(running)
        elif isinstance(error, _JobStopped):
            job.ended_at = now()
            self._handle_stopped_job(job, queue, execution)
        else:
            self._finalize_failure(job, queue, execution, exc_info)
        return False

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ writes the job's ``last_heartbeat`` here, to cover its callbacks; the heartbeat greenlet
        covers them (the job is running until its slot is free), and the result's save writes it anyway."""
        job.ended_at = job.last_heartbeat = now()

    def _wait_for_job_code(self, running: _RunningJob) -> _Outcome:
        running.code = _JobGreenlet(self, running)
        running.code.start()
        gevent.wait([running.code, running.given_up], count=1)
        if running.code.ready():
            outcome: _Outcome = running.code.value
            return outcome
        # The job code ignored ShutdownRequested past the grace period: hand the job back without it.
        error = ShutdownRequested("job did not stop in time")
        return _Outcome(None, (ShutdownRequested, error, None))

    def _run_job_code(self, running: _RunningJob) -> _Outcome:
        """Body of the job's greenlet. Never raises: gevent would print any exception to stderr, and the
        slot greenlet records it anyway."""
        try:
            if running.cancelled is not None:
                raise running.cancelled("stopped before it started")
            running.begun = True
            job = running.job
            timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=job.id):  # type: ignore[no-untyped-call]
                return _Outcome(job.perform(), None)
        except BaseException:  # handed to the slot greenlet, which records it
            return _Outcome(None, sys.exc_info())  # type: ignore[arg-type]

    def hand_back(self, running: _RunningJob) -> None:
        """Delete the job's execution and put the job back, QUEUED, at the front of its queue."""
        job, queue = running.job, running.queue
        log.warning("job handed back", extra={"worker": self.name, "job_id": job.id, "queue": queue.name})
        job.get_meta(refresh=True)  # the requeue saves the job: keep meta the job code saved meanwhile
        job.started_at = None
        job.ended_at = None
        with self.connection.pipeline() as pipeline:
            self.cleanup_execution(job, pipeline=pipeline, execution=running.execution)
            queue._enqueue_job(job, pipeline=pipeline, at_front=True)
            pipeline.execute()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a running job's registry entry and execution outlive a heartbeat. Unlike RQ this is not
        bounded by the job's remaining time: the gevent timeout ends the job in this process, and the
        heartbeat greenlet stops refreshing the entry as soon as the job ends."""
        return max(1, math.ceil(float(self.job_monitoring_interval) + self.heartbeat_grace))

    def clean_registries(self) -> None:
        """RQ's maintenance, then: a worker killed between taking a job off its queue and starting it leaves
        the job QUEUED in RQ's intermediate queue, which RQ retries only a minute after its cleanup first saw
        it there. A job still there a heartbeat TTL after it was first seen goes back to the front of its
        queue now. Were its worker merely slow, the job would run twice: a call job's second run finds its
        attempt claimed and never dials (DESIGN.md property 1)."""
        super().clean_registries()  # type: ignore[no-untyped-call]
        stuck_for = timedelta(seconds=float(self.job_monitoring_interval) + self.heartbeat_grace)
        for queue in self.queues:
            if not queue.acquire_maintenance_lock():
                continue
            try:
                intermediate = queue.intermediate_queue
                for job_id in intermediate.get_job_ids():
                    first_seen = intermediate.get_first_seen(job_id)
                    if first_seen is None or now() - first_seen < stuck_for or job_id in queue.started_job_registry:
                        continue
                    job = queue.fetch_job(job_id)
                    if job is None or job.get_status(refresh=False) != JobStatus.QUEUED:
                        continue
                    log.warning("job stuck after dequeue; requeued", extra={"worker": self.name, "job_id": job_id})
                    with self.connection.pipeline() as pipeline:
                        pipeline.lrem(intermediate.key, 1, job_id)
                        pipeline.delete(intermediate.get_first_seen_key(job_id))
                        queue.push_job_id(job_id, pipeline=pipeline, at_front=True)
                        pipeline.execute()
            finally:
                queue.release_maintenance_lock()  # type: ignore[no-untyped-call]

    # -- heartbeats --------------------------------------------------------------------------------------

    def _heartbeat_forever(self) -> None:
        while True:
            gevent.sleep(self.job_monitoring_interval)
            try:
                self.maintain_running_heartbeats()
            except RedisError as exc:
                log.warning("heartbeat failed", extra={"worker": self.name, "error": str(exc)})
            except Exception:
                log.exception("heartbeat failed", extra={"worker": self.name})

    def maintain_running_heartbeats(self) -> None:
        """RQ's ``maintain_heartbeats`` for every running job in one pipeline."""
        running = list(self._running.values())
        ttl = self.get_heartbeat_ttl(running[0].job) if running else 0
        for start in range(0, max(1, len(running)), self.heartbeat_chunk):
            if start:
                gevent.sleep(0)  # one pipeline for thousands of jobs would hold up every call for ~0.1 s
            self._heartbeat_pipeline(running[start : start + self.heartbeat_chunk], ttl, with_worker=not start)

    def _heartbeat_pipeline(self, running: list[_RunningJob], ttl: int, *, with_worker: bool) -> None:
        with self.connection.pipeline() as pipeline:
            if with_worker:
                self.heartbeat(pipeline=pipeline)
            probes: list[tuple[int, str, int, str]] = []
            for each in running:
                execution_index = len(pipeline)
                each.execution.heartbeat(each.job.started_job_registry, ttl, pipeline=pipeline)
                job_index = len(pipeline)
                each.job.heartbeat(now(), ttl, pipeline=pipeline, xx=True)
                probes.append((execution_index, each.execution.key, job_index, each.job.key))
            results = pipeline.execute()
            # A job that ended while this pipeline was in flight had its execution (and, with result_ttl=0,
            # its job hash) deleted, which the HSETs above just recreated: delete those stubs again.
            for execution_index, execution_key, job_index, job_key in probes:
                if results[execution_index] == 1:
                    pipeline.delete(execution_key)
                if results[job_index] == 1:
                    pipeline.delete(job_key)
            if with_worker and results[0] == 1:  # the worker key had expired: register it again
                pipeline.hset(self.key, mapping=self.serialize())
                pipeline.expire(self.key, self.worker_ttl + 60)
            if len(pipeline):
                pipeline.execute()

    # -- shutdown ----------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        # gevent runs the callback in its own greenlet: a plain signal handler would run inside whatever
        # greenlet (or the hub) the signal happened to interrupt.
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            watcher = gevent.signal_handler(signum, self._on_shutdown_signal, signum)
            self._signal_watchers.append((signum, previous, watcher))

    def _remove_signal_handlers(self) -> None:
        for signum, previous, watcher in self._signal_watchers:
            watcher.cancel()
            if previous is not None:  # gevent leaves the default disposition behind
                signal.signal(signum, previous)
        self._signal_watchers.clear()

    def _on_shutdown_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stop.is_set():
            self.request_warm_shutdown(name)
        elif time.monotonic() - self._stop_monotonic < self.signal_debounce_seconds:
            log.info("repeated signal ignored", extra={"worker": self.name, "signal": name})
        else:
            log.warning("cold shutdown", extra={"worker": self.name, "signal": name, "running": len(self._running)})
            self._cold.set()

    def request_warm_shutdown(self, reason: str = "request") -> None:
        """Stop taking jobs and drain (what the first SIGTERM/SIGINT does)."""
        if self._stop.is_set():
            return
        log.info(
            "warm shutdown",
            extra={
                "worker": self.name,
                "reason": reason,
                "running": len(self._running),
                "drain_timeout": self.drain_timeout,
            },
        )
        self._stop_monotonic = time.monotonic()
        self._stop_requested = True
        self._stop.set()
        self._shutdown_requested_date = now()
        with contextlib.suppress(RedisError):  # only shown in the dashboard
            self.set_shutdown_requested_date()  # type: ignore[no-untyped-call]

    def _drain(self) -> None:
        if self._running:
            # The deadline counts from the stop request, not from when the loop noticed it.
            started = self._stop_monotonic or time.monotonic()
            timeout = max(0.0, started + self.drain_timeout - time.monotonic())
            log.info("draining", extra={"worker": self.name, "running": len(self._running), "timeout": timeout})
            gevent.wait([self._idle, self._cold], count=1, timeout=timeout)
        if not self._running:
            log.info("drained", extra={"worker": self.name})
            if self._cold.is_set():
                self.exit_code = 1
            return
        if not self._cold.is_set():
            self.on_drain_timeout(self.running_jobs)
        self._stop_running_jobs(ColdShutdown if self._cold.is_set() else ShutdownRequested)
        if self._cold.is_set():
            self._idle.wait(timeout=self.cold_grace_seconds)
        else:
            gevent.wait([self._idle, self._cold], count=1, timeout=self.kill_grace_seconds)
            if self._running and self._cold.is_set():  # a second signal cuts the grace period short
                self._idle.wait(timeout=self.cold_grace_seconds)
        for running in list(self._running.values()):
            running.given_up.set()  # their code ignores the exception: hand them back without it
        self._idle.wait(timeout=self.cold_grace_seconds)
        if self._cold.is_set():
            self.exit_code = 1
        if self._running:
            log.error("jobs not handed back", extra={"worker": self.name, "job_ids": [j.id for j in self.running_jobs]})
            self.exit_code = 1

    def _stop_running_jobs(self, exception: type[BaseException], job_id: str | None = None) -> None:
        for running in list(self._running.values()):
            if job_id is not None and running.job.id != job_id:
                continue
            if running.begun and running.code is not None:
                running.code.kill(exception, block=False)
            else:
                running.cancelled = exception

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ's ``stop-job`` / ``stop-execution`` commands call this with ``_stopped_job_id`` set. There is
        no horse here (RQ's version would signal this whole process group): stop that job's greenlet."""
        job_id = self._stopped_job_id
        if job_id is None or self._hub is None:
            return
        # The command arrives on RQ's pubsub thread; greenlets may only be touched from the hub's thread.
        self._hub.loop.run_callback_threadsafe(self._stop_running_jobs, _JobStopped, job_id)

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            log.warning("could not register worker death", extra={"worker": self.name, "error": str(exc)})
