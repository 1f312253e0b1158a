"""The switch misbehaves mid-campaign: every ESL connection dropped, the switch restarted (its channels gone
without a word), and a slow switch that loses a fifth of its events. Workers reconnect with backoff and
reconcile; every campaign completes with every attempt recorded once and nothing left held."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable

import pytest
import redis

from dialer.esl.errors import ConnectionLost
from dialer.store import Store
from tests.e2e.conftest import DialerProcess, Sim, StartProcess

from . import campaign
from .audit import call_ids

pytestmark = pytest.mark.slow


def wait_dials(sim: Sim, contacts: dict[str, str], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while campaign.dials(sim, contacts) < count:
        assert time.monotonic() < deadline, f"fewer than {count} dials within {timeout} s"
        time.sleep(0.05)


def test_every_esl_connection_dropped_mid_campaign_is_reconnected_and_reconciled(
    sim: Sim,
    workers: Callable[..., DialerProcess],
    dialer_processes: StartProcess,
    redis_client: redis.Redis,
    fault_report: Callable[..., None],
) -> None:
    contacts = campaign.numbers(100)
    campaign.agents(sim, redis_client, talk_ms=1500)  # calls are bridged when the links drop
    running = [workers("d1"), workers("d2")]
    dialer_processes("scheduler")
    campaigns = campaign.start(redis_client, "drops", contacts)
    for at in (30, 60):
        wait_dials(sim, contacts, at)
        campaign.sim_api(sim, "sim fault drop")
    campaign.wait_completed(campaigns, "drops", timeout=60)
    campaign.audit_all(sim, redis_client, "drops", contacts, fault_report)
    store = Store(redis_client)
    gaps = [c for c in call_ids(redis_client, "drops") if any(e.get("event") == "gap" for e in store.call_log(c))]
    assert gaps, "no call saw the drop: the test did not test it"
    for worker in running:
        code, log = worker.stop()
        assert code == 0, log[-3000:]
        assert log.count("esl link lost") >= 2, log[-3000:]  # both drops seen ...
        assert "first=False" in log  # ... and reconnected


def test_switch_restart_mid_campaign_records_vanished_calls_with_the_reason(
    sim: Sim,
    workers: Callable[..., DialerProcess],
    dialer_processes: StartProcess,
    redis_client: redis.Redis,
    fault_report: Callable[..., None],
) -> None:
    contacts = campaign.numbers(100)
    campaign.agents(sim, redis_client, talk_ms=1500)
    running = [workers("r1"), workers("r2")]
    dialer_processes("scheduler")
    campaigns = campaign.start(redis_client, "restart", contacts)
    wait_dials(sim, contacts, 40)
    with contextlib.suppress(ConnectionLost):  # the restart drops the control connection too
        sim.api("sim restart 1.5")  # every channel gone without an event; connections refused for 1.5 s
    campaign.wait_completed(campaigns, "restart", timeout=60)
    campaign.audit_all(sim, redis_client, "restart", contacts, fault_report)

    store = Store(redis_client)
    vanished = [store.record(c) for c in call_ids(redis_client, "restart")]
    vanished = [r for r in vanished if "ESL link was down" in r.get("reason", "")]
    assert vanished, "no call vanished in the restart: the test did not test it"
    for record in vanished:
        assert record["hangup_cause"] == "UNKNOWN"
        expected = "completed" if record.get("bridged_at") else "abandoned" if record.get("answered_at") else "failed"
        assert record["outcome"] == expected, record
    for worker in running:
        code, log = worker.stop()
        assert code == 0, log[-3000:]
        retries = [float(x) for x in re.findall(r"esl connect failed.*retry_in=([0-9.]+)", log)]
        assert len(retries) >= 2, log[-3000:]  # refused while the switch was down ...
        assert retries[1] > retries[0]  # ... and retried with a growing delay
        assert "first=False" in log


def test_slow_switch_losing_a_fifth_of_its_events_hangs_nothing(
    sim: Sim,
    workers: Callable[..., DialerProcess],
    dialer_processes: StartProcess,
    redis_client: redis.Redis,
    fault_report: Callable[..., None],
) -> None:
    contacts = campaign.numbers(40)
    campaign.agents(sim, redis_client, talk_ms=800)
    sim.api("sim fault delay 30")  # every reply 30 ms late
    sim.api("sim fault lose 0.2")  # one event in five never sent
    running = [workers("s1"), workers("s2")]
    dialer_processes("scheduler")
    campaigns = campaign.start(redis_client, "slow", contacts, cps=10, retry={}, max_attempts=1)
    campaign.wait_completed(campaigns, "slow", timeout=90)
    lost = int(json.loads(campaign.sim_api(sim, "sim stats"))["events_lost"])
    campaign.sim_api(sim, "sim fault none")
    assert lost > 0
    campaign.audit_all(sim, redis_client, "slow", contacts, fault_report)
    logs = ""
    for worker in running:
        code, log = worker.stop()
        assert code == 0, log[-3000:]
        logs += log
    assert "background job unresolved" in logs  # the waits for lost BACKGROUND_JOB events timed out
