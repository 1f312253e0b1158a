"""Calls through real `dialer worker` processes: RQ bookkeeping, and a worker killed mid-call."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend

from dialer.enqueue import CALL_QUEUE, enqueue_call
from dialer.localredis import free_port
from dialer.store import Store
from tests.worker.polling import wait_until

from .conftest import DialerProcess, Sim, StartProcess, call_fields, ready_agents, start_sim

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(dialer_processes: StartProcess) -> Callable[..., DialerProcess]:
    def start(name: str, **env_overrides: str) -> DialerProcess:
        return dialer_processes("worker", "--concurrency", "100", "--name", name, **env_overrides)

    return start


def payload(contact: str, number: str = "+15551230000") -> dict[str, Any]:
    return call_fields("wk", contact, number)


def test_a_burst_through_two_workers_finishes_every_job_and_leaves_rq_clean(
    sim: Sim, workers: Callable[..., DialerProcess], redis_client: redis.Redis
) -> None:
    sim.scenario(agents=[{"id": f"30{n:02d}", "answer_ms": 20, "talk_ms": 100} for n in range(10)])
    ready_agents(Store(redis_client), *(f"30{n:02d}" for n in range(10)))
    expected = {"+15551230000": "completed", "+15551230486": "busy", "+15551230404": "invalid-number"}
    jobs = [enqueue_call(redis_client, payload(f"b{n}", number)) for n in range(20) for number in expected]
    processes = [workers("w1"), workers("w2")]
    wait_until(
        lambda: all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs), 60, what="every job FINISHED"
    )
    for job in jobs:
        result = job.return_value()
        assert result is not None
        assert result["outcome"] == expected[job.args[0]["number"]]
        assert job.get_meta(refresh=True)["outcome"] == result["outcome"]
        assert job.description == f"call wk/{job.args[0]['contact_id']} attempt 1"
    queue = Queue(CALL_QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert StartedJobRegistry(queue=queue).get_job_ids() == []
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    assert Store(redis_client).in_flight() == []
    for process in processes:
        code, stderr = process.stop()
        assert code == 0, stderr
        assert "Traceback" not in stderr


def test_sigkill_mid_call_is_adopted_finished_and_never_dialled_twice(
    sim: Sim, workers: Callable[..., DialerProcess], redis_client: redis.Redis
) -> None:
    agents = [f"40{n:02d}" for n in range(5)]
    sim.scenario(agents=[{"id": a, "answer_ms": 20, "talk_ms": 4000} for a in agents])
    store = Store(redis_client)
    ready_agents(store, *agents)
    doomed = workers("doomed")
    jobs = [enqueue_call(redis_client, payload(f"k{n}")) for n in range(5)]
    call_ids = [f"wk:k{n}:1" for n in range(5)]
    wait_until(lambda: all(store.record(c).get("state") == "bridged" for c in call_ids), 20, what="all calls bridged")
    doomed.kill()  # SIGKILL: no cleanup, no hand-back
    doomed.wait(timeout=10)
    rescuer = workers("rescuer")

    # Within the lease (3 s) plus a reaper pass, the rescuer adopts the calls; they stay bridged and end
    # when the agents hang up, with full hangup details.
    wait_until(lambda: all(store.record(c).get("outcome") for c in call_ids), 30, what="outcomes for all calls")
    for call_id in call_ids:
        record = store.record(call_id)
        assert record["outcome"] == "completed", record
        assert (record["adopted_from"], record["owner"]) == ("doomed", "rescuer")
    originates = sim.originates()
    customer_uuids = [store.record(c)["uuid"] for c in call_ids]
    for uuid in customer_uuids:
        assert sum(1 for o in originates if o["uuid"] == uuid) == 1
    assert store.in_flight() == []
    wait_until(lambda: {a["state"] for a in store.agents()} <= {"available", "wrap-up"}, 10, what="agents released")

    # RQ: the dead worker's jobs are abandoned once their heartbeat lapses; they are retried, and the
    # re-run finds each attempt finished and reports it without dialling.
    queue = Queue(CALL_QUEUE, connection=redis_client, serializer=JSONSerializer)
    registry = StartedJobRegistry(queue=queue)

    def cleaned() -> bool:
        registry.cleanup()
        return all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs)

    wait_until(cleaned, 30, what="the dead worker's jobs re-run to FINISHED")
    for job in jobs:
        assert job.return_value()["outcome"] == "completed"  # type: ignore[index]
    assert registry.get_job_ids() == []
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    assert len(sim.originates()) == len(originates)  # the re-runs dialled nobody
    code, stderr = rescuer.stop()
    assert code == 0, stderr


def test_sigterm_hands_calls_back_and_another_worker_finishes_them(
    sim: Sim, workers: Callable[..., DialerProcess], redis_client: redis.Redis
) -> None:
    sim.scenario(agents=[{"id": "5001", "answer_ms": 20, "talk_ms": 3000}])
    store = Store(redis_client)
    ready_agents(store, "5001")
    leaving = workers("leaving", DIALER_WORKER_DRAIN_TIMEOUT="0.5")
    job = enqueue_call(redis_client, payload("t1"))
    wait_until(lambda: store.record("wk:t1:1").get("state") == "bridged", 20, what="the call bridged")
    code, stderr = leaving.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert any(e.get("event") == "handed_back" for e in store.call_log("wk:t1:1"))
    assert sim.api(f"uuid_exists {store.record('wk:t1:1')['uuid']}") == "true"  # the customer was not cut off
    workers("taking-over")
    wait_until(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 30, what="the handed-back job finished")
    record = store.record("wk:t1:1")
    assert record["outcome"] == "completed"
    assert len([o for o in sim.originates() if o["uuid"] == record["uuid"]]) == 1


def test_a_second_sigterm_hangs_up_and_exits(
    sim: Sim, workers: Callable[..., DialerProcess], redis_client: redis.Redis
) -> None:
    sim.scenario(agents=[{"id": "5101", "answer_ms": 20, "talk_ms": 30000}])
    store = Store(redis_client)
    ready_agents(store, "5101")
    worker = workers("cold", DIALER_WORKER_DRAIN_TIMEOUT="60")
    enqueue_call(redis_client, payload("cold1"))
    wait_until(lambda: store.record("wk:cold1:1").get("state") == "bridged", 20, what="the call bridged")
    worker.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # a second signal within 1 s counts as the same Ctrl+C (signal_debounce_seconds)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 1  # cold shutdown
    stderr = worker.stderr_text()
    assert "Traceback" not in stderr
    record = store.record("wk:cold1:1")
    assert record["outcome"] == "completed"
    assert sim.api(f"uuid_exists {record['uuid']}") == "false"
    assert store.agent("5101")["state"] in ("available", "wrap-up")


def test_a_worker_takes_no_call_while_no_switch_is_connected(
    workers: Callable[..., DialerProcess], redis_client: redis.Redis
) -> None:
    port = free_port()  # nothing listens here yet: the worker cannot connect
    ready_agents(Store(redis_client), "3101")
    job = enqueue_call(redis_client, payload("nosw"))
    worker = workers("w-nosw", DIALER_FREESWITCH=json.dumps([{"name": "late", "host": "127.0.0.1", "port": port}]))
    wait_until(lambda: "not taking jobs" in worker.stderr_text(), 20, what="the worker saying it waits")
    time.sleep(1.0)
    assert job.get_status(refresh=True) == JobStatus.QUEUED  # not taken, so not failed without a dial
    late_port, late_sim = start_sim(["--port", str(port)])
    try:
        assert late_port == port
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 30, what="the call once connected")
        result = job.return_value()
        assert result is not None
        assert result["outcome"] != "failed"
    finally:
        late_sim.terminate()
        late_sim.wait(timeout=10)
    assert "taking jobs again" in worker.stderr_text()


def test_a_running_worker_suspended_takes_no_call_until_resumed(
    sim: Sim, workers: Callable[..., DialerProcess], redis_client: redis.Redis
) -> None:
    """``rq suspend`` is checked once per dequeue poll (1 s), not before every job: still honoured."""
    sim.scenario(agents=[{"id": "3201", "answer_ms": 0, "talk_ms": 50}])
    ready_agents(Store(redis_client), "3201")
    first = enqueue_call(redis_client, payload("sus1"))
    worker = workers("w-sus")
    wait_until(lambda: first.get_status(refresh=True) == JobStatus.FINISHED, 30, what="the first call")
    suspend(redis_client)
    wait_until(lambda: "suspended" in worker.stderr_text(), 10, what="the worker saying it is suspended")
    later = enqueue_call(redis_client, payload("sus2"))
    time.sleep(2.0)
    assert later.get_status(refresh=True) == JobStatus.QUEUED
    resume(redis_client)
    wait_until(lambda: later.get_status(refresh=True) == JobStatus.FINISHED, 30, what="the call once resumed")
    code, stderr = worker.stop()
    assert code == 0, stderr
