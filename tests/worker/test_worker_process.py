"""``dialer worker`` as a real process: SIGTERM drains, a drain deadline hands jobs back, a second SIGTERM exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from tests.e2e.conftest import Sim, sim
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JOBS = "tests.worker.jobs_for_tests"
__all__ = ["sim"]  # the simulator fixture


@pytest.fixture
def queue(redis_client: redis.Redis) -> Queue:
    return Queue("calls", connection=redis_client, serializer=JSONSerializer)


@pytest.fixture
def start_worker(redis_url: str, sim: Sim) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """A worker process; connected to a simulator, since a worker takes no job while no switch is connected."""
    procs: list[subprocess.Popen[str]] = []
    switch = json.dumps([{"name": "sim", "host": "127.0.0.1", "port": sim.port}])

    def start(*options: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DIALER_FREESWITCH": switch}
        argv = [sys.executable, "-m", "dialer.cli", "worker", "--redis-url", redis_url, *options]
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def running_count(queue: Queue) -> int:
    return StartedJobRegistry(queue=queue).get_job_count(cleanup=False)


def stop(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def fetch(queue: Queue, job: Job) -> Job:
    return Job.fetch(job.id, connection=queue.connection, serializer=JSONSerializer)


def test_sigterm_drains_running_jobs_and_takes_no_more(
    queue: Queue, start_worker: Callable[..., subprocess.Popen[str]]
) -> None:
    running = [queue.enqueue(f"{JOBS}.nap", 1.5, n) for n in range(4)]
    waiting = [queue.enqueue(f"{JOBS}.nap", 0.1, n) for n in range(3)]
    proc = start_worker("--concurrency", "4", "--drain-timeout", "20")
    wait_until(lambda: running_count(queue) == 4)

    proc.send_signal(signal.SIGTERM)
    returncode, stderr = stop(proc, timeout=15)

    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    assert [fetch(queue, job).get_status() for job in running] == [JobStatus.FINISHED] * 4
    assert [fetch(queue, job).return_value() for job in running] == [0, 1, 2, 3]
    assert queue.get_job_ids() == [job.id for job in waiting]  # never taken
    assert running_count(queue) == 0
    assert queue.connection.keys("rq:execution:*") == []


def test_drain_deadline_stops_jobs_and_hands_them_back(
    queue: Queue, start_worker: Callable[..., subprocess.Popen[str]]
) -> None:
    calls = [queue.enqueue(f"{JOBS}.call_like", 60.0) for _ in range(3)]
    later = queue.enqueue(f"{JOBS}.nap", 0.1)
    proc = start_worker("--concurrency", "3", "--drain-timeout", "0.5")
    wait_until(lambda: running_count(queue) == 3)

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    returncode, stderr = stop(proc, timeout=15)

    assert time.monotonic() - started < 10
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    ids = {job.id for job in calls}
    # ShutdownRequested was raised inside each job: its except and finally blocks ran, having seen the drain
    for marker in ("test:stopped", "test:finally", "test:saw-drain"):
        assert {job_id.decode() for job_id in queue.connection.lrange(marker, 0, -1)} == ids, marker
    # ... and each job is back at the front of its queue, QUEUED, with no trace of the stopped run
    assert set(queue.get_job_ids()[:3]) == ids
    assert queue.get_job_ids()[3] == later.id
    assert {fetch(queue, job).get_status() for job in calls} == {JobStatus.QUEUED}
    assert running_count(queue) == 0
    assert FailedJobRegistry(queue=queue).get_job_count() == 0
    assert queue.connection.keys("rq:execution:*") == []


def test_second_sigterm_exits_promptly(queue: Queue, start_worker: Callable[..., subprocess.Popen[str]]) -> None:
    calls = [queue.enqueue(f"{JOBS}.call_like", 60.0) for _ in range(3)]
    proc = start_worker("--concurrency", "3", "--drain-timeout", "60", "--name", "second-signal")
    wait_until(lambda: running_count(queue) == 3)

    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: queue.connection.hexists("rq:worker:second-signal", "shutdown_requested_date"))
    time.sleep(1.1)  # a second signal within 1 s is taken for the same Ctrl+C delivered twice
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    returncode, stderr = stop(proc, timeout=10)

    assert time.monotonic() - started < 5
    assert returncode == 1  # a cold shutdown is not a clean one
    assert "Traceback" not in stderr
    assert {fetch(queue, job).get_status() for job in calls} == {JobStatus.QUEUED}
    assert set(queue.get_job_ids()) == {job.id for job in calls}
    assert running_count(queue) == 0


def test_worker_command_imports_nothing_that_uses_sockets_before_patching() -> None:
    # gevent.monkey.patch_all() runs first thing in main(); modules imported before it keep blocking sockets.
    code = (
        "import sys, dialer.cli, dialer.worker_main\n"
        "print(sorted(m for m in ('socket', 'ssl', 'redis', 'rq', 'gevent', 'settings') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_burst_in_a_patched_process_runs_jobs_concurrently(
    queue: Queue, start_worker: Callable[..., subprocess.Popen[str]]
) -> None:
    jobs = [queue.enqueue(f"{JOBS}.nap", 0.5, n) for n in range(100)]
    proc = start_worker("--burst", "--concurrency", "100")
    returncode, stderr = stop(proc, timeout=30)

    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    finished = [fetch(queue, job) for job in jobs]
    assert [job.return_value() for job in finished] == list(range(100))
    # every job overlapped with the others: the whole run spans far less than the serial 50 s
    span = max(job.ended_at for job in finished) - min(job.started_at for job in finished)
    assert span.total_seconds() < 100 * 0.5 / 5
    assert running_count(queue) == 0
    assert queue.connection.keys("rq:execution:*") == []
