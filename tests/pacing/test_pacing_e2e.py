"""Pacing and failover measured on the switch's side: the simulator's record of originates (time,
endpoint, result) and its session counters, with real Redis, the simulator process over TCP, and real
`dialer worker` processes where the property is about several processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import gevent
import pytest
import redis
from rq.job import JobStatus

from dialer.callmodel import CallSpec, leg_uuid
from dialer.enqueue import enqueue_call
from dialer.pacing import GLOBAL_CPS, PacingTimeout, backoff_key, calls_key
from dialer.runtime import Runtime
from dialer.store import Store
from dialer.worker import ShutdownRequested
from tests.e2e.conftest import Sim, ready_agents
from tests.worker.polling import wait_until

from .windows import achieved_rate, max_in_any_window, shortest_span

pytestmark = pytest.mark.slow

BUSY_FAST = {"outcome": "busy", "ring_ms": 0, "early_media": False, "answer_ms": 30}
NETWORK_FAILURE = {"outcome": "network_failure", "ring_ms": 5, "early_media": False, "answer_ms": 0}


def number(n: int) -> str:
    return f"+1555{n:06d}0"  # ends in 0: none of the simulator's default rules (486, 503 ...) applies


def payload(contact: str, n: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "campaign": "pace",
        "contact_id": contact,
        "attempt": 1,
        "number": number(n),
        "gateway": "pstn",
        "caller_id_number": "+15550001111",
        "ring_timeout": 5,
    }
    values.update(overrides)
    return values


def spec(contact: str, n: int, **overrides: Any) -> CallSpec:
    values = payload(contact, n, **overrides)
    if "fallback_gateways" in values:
        values["fallback_gateways"] = tuple(values["fallback_gateways"])
    return CallSpec(**values)


def times_on(originates: list[dict[str, Any]], endpoint: str) -> list[float]:
    return [o["time"] for o in originates if o["endpoint"] == endpoint]


def live_leases(client: redis.Redis, key: str) -> list[str]:
    seconds, micros = client.time()
    return sorted(m.decode() for m in client.zrangebyscore(key, seconds * 1_000_000 + micros, "+inf"))


def place_all(runtimes: list[Runtime], specs: list[CallSpec], timeout: float = 30) -> list[dict[str, str]]:
    jobs = [gevent.spawn(runtimes[n % len(runtimes)].place, s) for n, s in enumerate(specs)]
    gevent.joinall(jobs, timeout=timeout, raise_error=True)
    assert all(job.ready() for job in jobs), "calls did not finish in time"
    return [job.value for job in jobs]


# ---------------------------------------------------------------------- several worker processes


def test_global_cps_holds_across_four_worker_processes(
    sim: Sim, workers: Callable[..., subprocess.Popen[str]], redis_client: redis.Redis
) -> None:
    """120 calls, 4 workers, global limit 20 CPS: never more than 20 originates in any one-second window
    of the switch's clock, and at least 95% of 20 per second while the queue is full."""
    sim.scenario(default=BUSY_FAST)
    jobs = [enqueue_call(redis_client, payload(f"g{n}", n)) for n in range(120)]
    for name in ("p1", "p2", "p3", "p4"):  # 4 x 30 slots: every call is waiting for a token at once
        workers(name, concurrency=30, DIALER_GLOBAL_CPS="20", DIALER_PACING_WAIT_TIMEOUT="60")
    wait_until(lambda: all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs), 40)
    originates = sim.originates()
    times = times_on(originates, "gateway/pstn")
    assert len(times) == len(originates) == 120  # each call dialled once, nothing else
    assert {o["variables"]["dialer_worker"] for o in originates} == {"p1", "p2", "p3", "p4"}
    peak, rate = max_in_any_window(times), achieved_rate(times)
    closest = shortest_span(times, 21)
    print(f"\n4 workers, 120 calls, limit 20: max {peak} in a 1 s window, 21 span >= {closest:.4f} s, {rate:.2f} CPS")
    assert peak <= 20
    assert rate >= 0.95 * 20
    assert {j.return_value()["outcome"] for j in jobs} == {"busy"}  # type: ignore[index]
    assert redis_client.keys("dialer:pacing:calls:*") == []


def test_gateway_concurrency_cap_holds_across_worker_processes(
    sim: Sim, workers: Callable[..., subprocess.Popen[str]], redis_client: redis.Redis
) -> None:
    """A cap of 5 calls on gateway pstn, two workers, 30 calls of ~0.3 s: the switch never holds more
    than 5 channels at once (its own peak counter; busy callees, so no agent legs), and does hold 5."""
    sim.scenario(default={**BUSY_FAST, "answer_ms": 300})
    limits = json.dumps({"pstn": {"max_concurrent": 5}})
    jobs = [enqueue_call(redis_client, payload(f"k{n}", n)) for n in range(30)]
    workers("q1", concurrency=15, DIALER_GATEWAY_LIMITS=limits)
    workers("q2", concurrency=15, DIALER_GATEWAY_LIMITS=limits)
    wait_until(lambda: all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs), 40)
    stats = json.loads(sim.api("sim stats"))
    assert stats["peak_sessions"] == 5
    assert stats["sessions_since_startup"] == 30
    assert {o["variables"]["dialer_worker"] for o in sim.originates()} == {"q1", "q2"}
    assert redis_client.zcard(calls_key("gateway", "pstn")) == 0  # every lease released


# ---------------------------------------------------------------------- in-process runtimes


def test_gateway_and_campaign_cps_hold_together(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default=BUSY_FAST)
    runtimes = [make_runtime(f"r{n}", gateway_limits={"pstn": {"cps": 10}}) for n in range(2)]
    slow = [spec(f"s{n}", n, campaign="slow", campaign_cps=4) for n in range(12)]
    fast = [spec(f"f{n}", 100 + n, campaign="fast") for n in range(12)]
    place_all(runtimes, slow + fast)
    originates = sim.originates()
    slow_numbers = {s.number for s in slow}
    on_pstn = times_on(originates, "gateway/pstn")
    slow_times = [o["time"] for o in originates if o["number"] in slow_numbers]
    assert len(on_pstn) == 24
    assert max_in_any_window(on_pstn) <= 10
    assert max_in_any_window(slow_times) <= 4
    assert max_in_any_window(slow_times) >= 3  # the campaign limit, not the gateway's, held it back


def test_campaign_concurrency_cap_holds_and_every_lease_is_released(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default={**BUSY_FAST, "answer_ms": 200})
    runtimes = [make_runtime(f"r{n}") for n in range(2)]
    records = place_all(runtimes, [spec(f"c{n}", n, campaign_max_concurrent=4) for n in range(20)])
    assert {r["outcome"] for r in records} == {"busy"}
    assert json.loads(sim.api("sim stats"))["peak_sessions"] == 4
    assert runtimes[0].pacer.holders(calls_key("campaign", "pace")) == []
    assert runtimes[0].permits == runtimes[1].permits == {}


def test_a_call_that_cannot_get_a_token_in_time_is_not_claimed_nor_dialled(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default=BUSY_FAST)
    runtime = make_runtime(global_cps=0.5, pacing_wait_timeout=0.3)
    assert runtime.place(spec("t1", 1))["outcome"] == "busy"
    with pytest.raises(PacingTimeout):
        runtime.place(spec("t2", 2))
    assert runtime.store.record("pace:t2:1") == {}  # a retry of the job dials it as a new attempt
    assert [o["number"] for o in sim.originates()] == [number(1)]


def test_an_originate_the_switch_reads_late_pushes_the_limit_back(sim: Sim, make_runtime: Any) -> None:
    """The switch takes 60 ms to read and acknowledge the originate, more than the 22.5 ms the window proof
    leaves: the next grant moves back by the excess, so it stays a full interval after the switch had it."""
    sim.scenario(default=BUSY_FAST)
    runtime = make_runtime(global_cps=2)  # interval 515 ms at the default 3 % margin
    sim.api("sim fault delay 60")
    assert runtime.place(spec("t1", 1))["outcome"] == "busy"
    sim.api("sim fault none")
    (received,) = sim.originates()
    next_grant = int(runtime.store.redis.get(GLOBAL_CPS)) / 1e6
    assert next_grant - received["time"] >= 0.515 - 0.0225 - 0.002  # without the push: 0.515 - 0.060


def test_a_rerun_of_a_claimed_attempt_takes_no_token(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default=BUSY_FAST)
    runtime = make_runtime(global_cps=1)
    first = runtime.place(spec("r1", 1))
    tat = runtime.store.redis.get(GLOBAL_CPS)
    again = runtime.place(spec("r1", 1))  # an RQ retry of the same attempt
    assert again["outcome"] == first["outcome"] == "busy"
    assert runtime.store.redis.get(GLOBAL_CPS) == tat
    assert len(sim.originates()) == 1


# ---------------------------------------------------------------------- failover and back-off


def test_failover_from_an_invalid_gateway_to_the_next_one_in_order(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default=BUSY_FAST)  # the simulator knows pstn and pstn2, not "down"
    runtime = make_runtime()
    record = runtime.place(spec("f1", 1, gateway="down", fallback_gateways=["pstn", "pstn2"]))
    assert record["outcome"] == "busy"
    tries = [(o["endpoint"], o["uuid"], o["result"]) for o in sim.originates()]
    assert tries == [
        ("gateway/down", leg_uuid("pace:f1:1"), "-ERR INVALID_GATEWAY"),
        ("gateway/pstn", leg_uuid("pace:f1:1", "customer-2"), "-ERR USER_BUSY"),
    ]
    assert (record["uuid"], record["gateway"], record["tries"]) == (tries[1][1], "pstn", "2")
    log = [e for e in runtime.store.call_log("pace:f1:1") if e["event"] in ("gateway_failed", "gateway_try")]
    assert [(e["event"], e["gateway"], e.get("cause")) for e in log] == [
        ("gateway_failed", "down", "INVALID_GATEWAY"),
        ("gateway_try", "pstn", None),
    ]


def test_failover_after_a_503_only_once_the_failed_leg_is_gone(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default=BUSY_FAST, rules=[{"match": ".*", "gateway": "pstn", "callee": NETWORK_FAILURE}])
    runtime = make_runtime()
    record = runtime.place(spec("f2", 2, fallback_gateways=["pstn2"]))
    assert record["outcome"] == "busy"
    first, second = sim.originates()
    assert (first["endpoint"], first["hangup_cause"]) == ("gateway/pstn", "NORMAL_TEMPORARY_FAILURE")
    assert second["endpoint"] == "gateway/pstn2"
    assert second["uuid"] != first["uuid"]
    log = runtime.store.call_log("pace:f2:1")
    failed_at = next(n for n, e in enumerate(log) if e["event"] == "gateway_failed")
    ended_at = next(n for n, e in enumerate(log) if e.get("state") == "ended")
    assert ended_at < failed_at  # the first leg's hangup was seen before the next try


def test_no_failover_once_the_customer_was_reached_or_for_a_customer_cause(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default={**BUSY_FAST, "ring_ms": 10})  # 180 Ringing, then 486 Busy
    runtime = make_runtime()
    record = runtime.place(spec("n1", 1, fallback_gateways=["pstn2"]))
    assert record["outcome"] == "busy"
    assert [o["endpoint"] for o in sim.originates()] == ["gateway/pstn"]


def test_a_gateway_failing_repeatedly_is_backed_off_and_skipped(sim: Sim, make_runtime: Any) -> None:
    pstn2_fails_for_99 = {"match": r"\+15550000990", "gateway": "pstn2", "callee": NETWORK_FAILURE}
    rules = [{"match": ".*", "gateway": "pstn", "callee": NETWORK_FAILURE}, pstn2_fails_for_99]
    sim.scenario(default=BUSY_FAST, rules=rules)
    runtime = make_runtime(gateway_failure_threshold=2, gateway_backoff_seconds=30)
    for n in range(2):
        assert runtime.place(spec(f"b{n}", n, fallback_gateways=["pstn2"]))["outcome"] == "busy"
    assert runtime.store.redis.exists(backoff_key("pstn"))
    sim.api("sim clear")
    third = runtime.place(spec("b2", 2, fallback_gateways=["pstn2"]))
    assert third["outcome"] == "busy"
    assert [o["endpoint"] for o in sim.originates()] == ["gateway/pstn2"]  # pstn not even tried
    alone = runtime.place(spec("b3", 3))  # no other gateway: the backed-off one is still dialled
    assert alone["outcome"] == "failed"
    assert alone["hangup_cause"] == "NORMAL_TEMPORARY_FAILURE"
    sim.api("sim clear")
    last_resort = runtime.place(spec("b4", 99, fallback_gateways=["pstn2"]))  # pstn2 fails too: then pstn
    assert [o["endpoint"] for o in sim.originates()] == ["gateway/pstn2", "gateway/pstn"]
    assert (last_resort["outcome"], last_resort["tries"]) == ("failed", "2")


def test_each_failover_try_takes_the_next_gateways_token_and_lease(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default={**BUSY_FAST, "answer_ms": 300})
    runtime = make_runtime(gateway_limits={"pstn": {"max_concurrent": 1}, "down": {"max_concurrent": 1}})
    held: list[list[str]] = []
    call = gevent.spawn(runtime.place, spec("l1", 1, gateway="down", fallback_gateways=["pstn"]))
    wait_until(lambda: bool(runtime.pacer.holders(calls_key("gateway", "pstn"))), 5, sleep=gevent.sleep)
    held.append(runtime.pacer.holders(calls_key("gateway", "down")))
    call.get(timeout=10)
    assert held == [[]]  # the failed gateway's lease was given back before the next try
    assert runtime.pacer.holders(calls_key("gateway", "pstn")) == []


def test_calls_adopted_from_a_killed_worker_count_against_the_cap_again(
    sim: Sim, workers: Callable[..., subprocess.Popen[str]], redis_client: redis.Redis
) -> None:
    """A worker dies (SIGKILL) with two bridged calls: its pacing leases expire with it, and the worker
    that adopts the calls takes them again while the customers are still talking."""
    agents = [f"60{n:02d}" for n in range(2)]
    sim.scenario(agents=[{"id": a, "answer_ms": 20, "talk_ms": 6000} for a in agents])
    store = Store(redis_client)
    ready_agents(store, *agents)
    limits = json.dumps({"pstn": {"max_concurrent": 2}})
    doomed = workers("doomed", DIALER_GATEWAY_LIMITS=limits)
    for n in range(2):
        enqueue_call(redis_client, payload(f"a{n}", n))
    call_ids = [f"pace:a{n}:1" for n in range(2)]
    wait_until(lambda: all(store.record(c).get("state") == "bridged" for c in call_ids), 20)
    assert live_leases(redis_client, calls_key("gateway", "pstn")) == call_ids
    doomed.kill()
    doomed.wait(timeout=10)
    workers("rescuer", DIALER_GATEWAY_LIMITS=limits)
    wait_until(lambda: all(store.record(c).get("owner") == "rescuer" for c in call_ids), 20)
    # The adopter takes a call's lease a moment after it wins the call (the owner is set first).
    wait_until(lambda: live_leases(redis_client, calls_key("gateway", "pstn")) == call_ids, 5)  # not the expired ones
    assert all(store.record(c).get("state") == "bridged" for c in call_ids)
    wait_until(lambda: all(store.record(c).get("outcome") == "completed" for c in call_ids), 20)
    wait_until(lambda: redis_client.zcard(calls_key("gateway", "pstn")) == 0, 5)


def test_a_worker_shutting_down_during_the_wait_leaves_the_attempt_unclaimed(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(default=BUSY_FAST)
    runtime = make_runtime(global_cps=2)
    runtime.place(spec("w1", 1))
    waiting = gevent.spawn(runtime.place, spec("w2", 2))
    gevent.sleep(0.1)  # within the ~0.5 s until the next token
    waiting.kill(ShutdownRequested("warm shutdown"), block=True, timeout=5)
    assert isinstance(waiting.exception, ShutdownRequested)  # the worker hands the job back
    assert runtime.store.record("pace:w2:1") == {}
    assert runtime.permits == {}
    assert runtime.place(spec("w2", 2))["outcome"] == "busy"  # the re-run dials it; the turnstile is free
    assert [o["number"] for o in sim.originates()] == [number(1), number(2)]
