"""GeventWorker run in-process against the real Redis: concurrency, RQ bookkeeping, timeouts, failures."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import gevent
import pytest
import redis
from rq import Retry
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend

from dialer.worker import GeventWorker
from tests.counting import CountingConnection, counting_client
from tests.worker import jobs_for_tests
from tests.worker.polling import wait_until

JOBS = "tests.worker.jobs_for_tests"


@pytest.fixture
def queue(redis_client: redis.Redis) -> Queue:
    return Queue("calls", connection=redis_client, serializer=JSONSerializer)


@pytest.fixture(autouse=True)
def no_sigalrm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job timeouts must not use SIGALRM: fail loudly if anything arms it."""

    def refuse(*_: Any) -> None:
        raise AssertionError("SIGALRM used")

    monkeypatch.setattr(signal, "alarm", refuse)


def make_worker(queue: Queue, **kwargs: Any) -> GeventWorker:
    kwargs.setdefault("concurrency", 10)
    return GeventWorker([queue], connection=queue.connection, **kwargs)


def fetch(queue: Queue, job: Job) -> Job:
    return Job.fetch(job.id, connection=queue.connection, serializer=JSONSerializer)


def statuses(queue: Queue, jobs: list[Job]) -> list[JobStatus]:
    return [fetch(queue, job).get_status() for job in jobs]


def assert_no_running_bookkeeping(queue: Queue) -> None:
    redis_client = queue.connection
    assert StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 0
    assert redis_client.keys("rq:execution:*") == []
    assert redis_client.keys("rq:executions:*") == []
    assert redis_client.keys("rq:worker:*:executions") == []
    assert redis_client.llen(queue.intermediate_queue_key) == 0  # else RQ fails them as stuck after a minute


def test_burst_runs_jobs_concurrently_and_leaves_rq_clean(queue: Queue) -> None:
    jobs_for_tests.peak = 0
    jobs = [queue.enqueue(f"{JOBS}.nap", 0.2, {"n": n}) for n in range(200)]
    worker = make_worker(queue, concurrency=100)

    started = time.monotonic()
    assert worker.work(burst=True)
    elapsed = time.monotonic() - started

    serial = 200 * 0.2
    assert elapsed < serial / 5, f"{elapsed:.1f}s is not concurrent (serial: {serial:.0f}s)"
    assert jobs_for_tests.peak == 100  # never more than the concurrency, and all of it used
    assert statuses(queue, jobs) == [JobStatus.FINISHED] * 200
    for n, job in enumerate(jobs):
        fetched = fetch(queue, job)
        assert fetched.return_value() == {"n": n}
    assert FailedJobRegistry(queue=queue).get_job_count() == 0
    assert_no_running_bookkeeping(queue)
    assert worker.exit_code == 0

    # RQ's maintenance, even with a clock far in the future, finds nothing left to abandon.
    clean_registries(queue)
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 10**6)
    assert statuses(queue, jobs) == [JobStatus.FINISHED] * 200
    assert FailedJobRegistry(queue=queue).get_job_count() == 0


def test_heartbeats_keep_long_jobs_alive_through_cleanup(queue: Queue) -> None:
    # Registry entries outlive a heartbeat by 1 s only; the jobs run 3 s, so without the heartbeat
    # greenlet the cleanup below would fail them as abandoned.
    jobs = [queue.enqueue(f"{JOBS}.nap", 3.0, n, job_timeout=30) for n in range(5)]
    worker = make_worker(queue, job_monitoring_interval=0.2, heartbeat_grace=1)
    assert worker.get_heartbeat_ttl(jobs[0]) < 3
    run = gevent.spawn(worker.work, burst=True)

    started = StartedJobRegistry(queue=queue)
    wait_until(lambda: started.get_job_count(cleanup=False) == 5, sleep=gevent.sleep)
    first_heartbeat = queue.connection.hget(worker.key, "last_heartbeat")
    while not run.ready():
        started.cleanup()
        clean_registries(queue)
        assert FailedJobRegistry(queue=queue).get_job_count() == 0
        gevent.sleep(0.25)

    assert run.get(timeout=10)
    assert statuses(queue, jobs) == [JobStatus.FINISHED] * 5
    assert FailedJobRegistry(queue=queue).get_job_count() == 0
    assert_no_running_bookkeeping(queue)
    assert first_heartbeat is not None
    # the worker's own heartbeat moved on while the jobs ran (worker key is deleted 60 s after death)
    assert queue.connection.hget(worker.key, "last_heartbeat") != first_heartbeat


def test_job_over_its_timeout_fails_alone_by_gevent_timeout(queue: Queue) -> None:
    slow = queue.enqueue(f"{JOBS}.nap", 30.0, job_timeout=1)
    others = [queue.enqueue(f"{JOBS}.nap", 0.3, n) for n in range(5)]

    started = time.monotonic()
    make_worker(queue).work(burst=True)

    assert time.monotonic() - started < 10
    slow = fetch(queue, slow)
    assert slow.get_status() == JobStatus.FAILED
    assert "JobTimeoutException" in (slow.latest_result().exc_string or "")
    assert slow.id in FailedJobRegistry(queue=queue)
    assert statuses(queue, others) == [JobStatus.FINISHED] * 5
    assert_no_running_bookkeeping(queue)


def test_exception_fails_only_that_job_with_its_traceback(queue: Queue) -> None:
    bad = queue.enqueue(f"{JOBS}.boom", "no route to gateway")
    good = [queue.enqueue(f"{JOBS}.nap", 0.1, n) for n in range(5)]

    make_worker(queue).work(burst=True)

    bad = fetch(queue, bad)
    assert bad.get_status() == JobStatus.FAILED
    assert "ValueError: no route to gateway" in (bad.latest_result().exc_string or "")
    assert "in boom" in (bad.latest_result().exc_string or "")  # the traceback reaches into the job's own frame
    assert FailedJobRegistry(queue=queue).get_job_ids() == [bad.id]
    assert statuses(queue, good) == [JobStatus.FINISHED] * 5
    assert_no_running_bookkeeping(queue)


def test_failed_job_is_retried_as_its_retry_says(queue: Queue) -> None:
    job = queue.enqueue(f"{JOBS}.count_attempt_then_boom", "test:attempts", retry=Retry(max=1))

    make_worker(queue).work(burst=True)

    assert queue.connection.get("test:attempts") == b"2"
    job = fetch(queue, job)
    assert job.get_status() == JobStatus.FAILED
    assert FailedJobRegistry(queue=queue).get_job_ids() == [job.id]
    assert_no_running_bookkeeping(queue)


def test_rq_stop_job_command_stops_only_that_job(queue: Queue) -> None:
    stopped = queue.enqueue(f"{JOBS}.nap", 30.0)
    worker = make_worker(queue, concurrency=1)
    run = gevent.spawn(worker.work, burst=True)
    wait_until(lambda: StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 1, sleep=gevent.sleep)
    other = queue.enqueue(f"{JOBS}.nap", 0.1, "next")

    send_stop_job_command(queue.connection, stopped.id, serializer=JSONSerializer)

    assert run.get(timeout=10)
    assert fetch(queue, stopped).get_status() == JobStatus.STOPPED
    assert fetch(queue, other).return_value() == "next"  # the worker itself carried on
    assert_no_running_bookkeeping(queue)


def test_heartbeat_racing_a_job_end_leaves_no_stub_keys(queue: Queue) -> None:
    job = queue.enqueue(f"{JOBS}.nap", 30.0)
    worker = make_worker(queue)
    run = gevent.spawn(worker.work, burst=True)
    wait_until(lambda: StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 1, sleep=gevent.sleep)
    [execution] = worker.executions.values()

    # As if the job's end had been committed while the heartbeat pipeline was in flight: the heartbeat's
    # HSET recreates the execution hash, and the worker must notice and delete it again.
    queue.connection.delete(execution.key)
    worker.maintain_running_heartbeats()
    assert not queue.connection.exists(execution.key)
    assert fetch(queue, job).get_status() == JobStatus.STARTED

    worker.drain_timeout = 0  # stopped and handed back as soon as it is asked to stop
    worker.request_warm_shutdown()
    assert run.get(timeout=10)
    assert fetch(queue, job).get_status() == JobStatus.QUEUED
    assert queue.get_job_ids() == [job.id]
    assert_no_running_bookkeeping(queue)


def test_several_queues_are_served_in_priority_order(queue: Queue) -> None:
    low = Queue("calls-low", connection=queue.connection, serializer=JSONSerializer)
    later = [low.enqueue(f"{JOBS}.nap", 0.05, n) for n in range(3)]
    first = [queue.enqueue(f"{JOBS}.nap", 0.05, n) for n in range(3)]

    GeventWorker([queue, low], connection=queue.connection, concurrency=1).work(burst=True)

    finished = [fetch(queue, job) for job in first + later]
    assert [job.get_status() for job in finished] == [JobStatus.FINISHED] * 6
    started_at = [job.started_at for job in finished]
    assert started_at == sorted(started_at)
    assert_no_running_bookkeeping(queue)
    assert_no_running_bookkeeping(low)


def test_a_job_left_dequeued_by_a_dead_worker_is_requeued_after_a_heartbeat_ttl(queue: Queue) -> None:
    """A worker killed between taking a job off the queue and starting it leaves the job QUEUED in RQ's
    intermediate queue; maintenance puts it back at the front once it has sat there a heartbeat TTL."""
    stuck = queue.enqueue(f"{JOBS}.nap", 0, "stuck")
    later = queue.enqueue(f"{JOBS}.nap", 0, "later")
    connection = queue.connection
    assert connection.lmove(queue.key, queue.intermediate_queue_key) == stuck.id.encode()  # what a dequeue does
    worker = make_worker(queue, heartbeat_grace=1, job_monitoring_interval=1)
    worker.clean_registries()  # RQ's cleanup sees it for the first time: nothing happens yet
    assert connection.lrange(queue.intermediate_queue_key, 0, -1) == [stuck.id.encode()]
    assert queue.job_ids == [later.id]
    past = time.time() - 2.5  # first seen longer ago than the TTL (1 + 1 s)
    connection.set(queue.intermediate_queue.get_first_seen_key(stuck.id), past)
    worker.clean_registries()
    assert queue.job_ids == [stuck.id, later.id]
    assert connection.llen(queue.intermediate_queue_key) == 0
    assert fetch(queue, stuck).get_status() == JobStatus.QUEUED
    worker.work(burst=True)
    assert statuses(queue, [stuck, later]) == [JobStatus.FINISHED, JobStatus.FINISHED]


def test_rq_bookkeeping_costs_six_round_trips_a_job(queue: Queue) -> None:
    """Dequeue (2), start (1), success (3: WATCH, the dependents, the transaction): the per-job worker
    heartbeat, suspension check and ``last_heartbeat`` write of RQ's own worker are not paid per job."""
    counted = counting_client(queue.connection)
    counted_queue = Queue(queue.name, connection=counted, serializer=JSONSerializer)

    def burst_of(count: int) -> int:
        jobs = [queue.enqueue(f"{JOBS}.nap", 0, n) for n in range(count)]
        CountingConnection.sent = 0
        GeventWorker([counted_queue], connection=counted, concurrency=1).work(burst=True)
        assert statuses(queue, jobs) == [JobStatus.FINISHED] * count
        return CountingConnection.sent

    # A burst's start-up and teardown cancel out; RQ's pubsub thread adds a few, depending on timing.
    per_job = (burst_of(210) - burst_of(10)) / 200
    assert 6 <= per_job < 6.2
    assert_no_running_bookkeeping(queue)


def test_a_running_job_is_started_and_its_worker_busy(queue: Queue) -> None:
    job = queue.enqueue(f"{JOBS}.nap", 30.0)
    worker = make_worker(queue)
    run = gevent.spawn(worker.work, burst=True)
    wait_until(lambda: fetch(queue, job).get_status() == JobStatus.STARTED, sleep=gevent.sleep)

    started = fetch(queue, job)
    assert started.worker_name == worker.name
    assert started.started_at is not None
    assert started.last_heartbeat is not None
    assert queue.connection.hget(worker.key, "state") == b"busy"
    assert queue.connection.llen(queue.intermediate_queue_key) == 0
    assert StartedJobRegistry(queue=queue).get_job_ids(cleanup=False) == [job.id]

    worker.drain_timeout = 0
    worker.request_warm_shutdown()
    assert run.get(timeout=10)
    assert_no_running_bookkeeping(queue)


def test_a_suspended_worker_in_burst_mode_takes_no_job(queue: Queue) -> None:
    job = queue.enqueue(f"{JOBS}.nap", 0)
    suspend(queue.connection)
    assert not make_worker(queue).work(burst=True)
    assert fetch(queue, job).get_status() == JobStatus.QUEUED
    resume(queue.connection)
    assert make_worker(queue).work(burst=True)
    assert fetch(queue, job).get_status() == JobStatus.FINISHED


def test_rq_logs_no_line_of_its_own_per_successful_job_at_info(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    def lines_naming(jobs: list[Job]) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "rq.worker" and any(j.id in r.getMessage() for j in jobs)]

    caplog.set_level(logging.INFO)
    quiet = [queue.enqueue(f"{JOBS}.nap", 0, n) for n in range(3)]
    make_worker(queue).work(burst=True)
    assert statuses(queue, quiet) == [JobStatus.FINISHED] * 3
    assert lines_naming(quiet) == []

    caplog.set_level(logging.DEBUG, logger="rq.worker")
    shown = [queue.enqueue(f"{JOBS}.nap", 0, n) for n in range(3)]
    make_worker(queue).work(burst=True)
    completed = [r for r in lines_naming(shown) if r.getMessage().startswith("Successfully completed")]
    assert len(completed) == 3
    assert {r.levelname for r in completed} == {"DEBUG"}
