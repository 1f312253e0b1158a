"""SIGTERM during a campaign: a worker with time to drain lets its calls finish; one without hands its calls
back (the legs stay up) and another worker finishes them. Nothing is lost, nobody is dialled twice."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from dialer.store import Store
from tests.e2e.conftest import DialerProcess, Sim, StartProcess

from . import campaign
from .audit import call_ids

pytestmark = pytest.mark.slow


def test_sigterm_mid_campaign_drains_or_hands_back_and_loses_nothing(
    sim: Sim,
    workers: Callable[..., DialerProcess],
    dialer_processes: StartProcess,
    redis_client: redis.Redis,
    fault_report: Callable[..., None],
) -> None:
    contacts = campaign.numbers(120)
    campaign.agents(sim, redis_client, talk_ms=2000)
    draining = workers("drains", DIALER_WORKER_DRAIN_TIMEOUT="30")
    leaving = workers("leaves", DIALER_WORKER_DRAIN_TIMEOUT="0.2")
    staying = workers("stays")
    dialer_processes("scheduler")
    campaigns = campaign.start(redis_client, "term", contacts)
    store = Store(redis_client)

    def bridged_by(worker: str) -> int:
        records = (store.record(c) for c in call_ids(redis_client, "term"))
        return sum(1 for r in records if r.get("owner") == worker and r.get("state") == "bridged")

    for worker in ("drains", "leaves"):
        deadline = time.monotonic() + 60
        while bridged_by(worker) < 2:  # talking customers on it when the signal comes
            assert time.monotonic() < deadline
            time.sleep(0.05)
    drained_calls = {c for c in call_ids(redis_client, "term") if store.record(c).get("owner") == "drains"}
    draining.terminate()
    code, log = leaving.stop()
    assert code == 0, log[-3000:]
    assert draining.wait(timeout=40) == 0, draining.stderr_text()[-3000:]
    workers("takes-over")

    campaign.wait_completed(campaigns, "term", timeout=90)
    campaign.audit_all(sim, redis_client, "term", contacts, fault_report)

    logs = {c: store.call_log(c) for c in call_ids(redis_client, "term")}
    handed_back = [c for c, log in logs.items() if any(e.get("event") == "handed_back" for e in log)]
    assert handed_back, "the leaving worker handed nothing back: the test did not test it"
    for call_id in handed_back:
        record = store.record(call_id)
        assert record["adopted_from"] == "leaves", record
        if record.get("bridged_at"):
            assert record["outcome"] == "completed", record  # the customer was not cut off
    for call_id in drained_calls:  # the draining worker finished its own calls
        assert store.record(call_id)["owner"] == "drains"
    assert staying.poll() is None
