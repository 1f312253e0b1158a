"""A call from claim to final record, over real TCP against the simulator process and a real Redis.

Each test checks the dialer's own record and, where it matters, what the switch saw (its record of
originates), so "dialled once" and "bridged" are measured on the switch's side.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import gevent
import pytest

from dialer.callmodel import CallSpec, leg_uuid
from dialer.enqueue import enqueue_call
from dialer.esl.errors import ConnectionLost
from dialer.runtime import Runtime
from dialer.store import INFLIGHT, AgentState, call_log_key
from settings import FreeSwitchNode
from tests.worker.polling import wait_until

from .conftest import Sim, call_fields, ready_agents, run_all, settings_for, start_sim


def spec(contact: str, number: str = "+15551230000", **overrides: Any) -> CallSpec:
    return CallSpec(**{**call_fields("e2e", contact, number), **overrides})


def test_answered_call_is_bridged_to_an_agent_and_every_step_is_recorded(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(agents=[{"id": "1001", "answer_ms": 50, "talk_ms": 300}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    record = runtime.place(spec("c1"))
    assert record["outcome"] == "completed"
    assert record["agent"] == "1001"
    for step in ("originated_at", "trying_at", "ringing_at", "early_media_at", "answered_at", "bridged_at", "ended_at"):
        assert float(record[step]) > 0, step
    assert float(record["ringing_at"]) <= float(record["answered_at"]) <= float(record["bridged_at"])
    states = [entry.get("state") for entry in runtime.store.call_log("e2e:c1:1") if entry.get("state")]
    assert states[:7] == ["originating", "trying", "ringing", "early_media", "answered", "connecting_agent", "bridged"]
    customer = next(o for o in sim.originates() if o["uuid"] == record["uuid"])
    assert customer["bridged_at"] is not None
    agent = runtime.store.agent("1001")
    assert agent["state"] in (AgentState.AVAILABLE.value, AgentState.WRAP_UP.value)
    assert runtime.store.in_flight() == []


def test_the_steps_handled_in_one_go_are_written_in_one_round_trip(
    sim: Sim, make_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered at once: the customer's events come together, so do the agent's. Every step is still in
    the record and its log, in order, but a call costs 4 or 5 record writes instead of one a step (8)."""
    instant = {"ring_ms": 0, "early_media": False, "answer_ms": 0}
    sim.scenario(default=instant, agents=[{"id": "1001", "answer_ms": 0, "talk_ms": 100}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    writes: list[str] = []
    for name in ("update", "finish"):
        method = getattr(runtime.store, name)
        monkeypatch.setattr(runtime.store, name, lambda *a, _m=method, _n=name, **k: writes.append(_n) or _m(*a, **k))
    record = runtime.place(spec("c-burst"))
    assert record["outcome"] == "completed"
    for step in ("originated_at", "trying_at", "ringing_at", "answered_at", "bridged_at", "hangup_at", "ended_at"):
        assert float(record[step]) > 0, step
    log = runtime.store.call_log("e2e:c-burst:1")
    states = [entry["state"] for entry in log if entry.get("state")]
    assert states == ["originating", "trying", "ringing", "answered", "connecting_agent", "bridged", "ended"]
    assert [entry["event"] for entry in log if not entry.get("state")] == ["agent_answer", "final"]
    assert len(writes) <= 5, writes
    assert writes[-1] == "finish"


def test_a_call_that_goes_well_logs_one_info_line_and_its_steps_at_debug(
    sim: Sim, make_runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim.scenario(agents=[{"id": "1001", "answer_ms": 0, "talk_ms": 100}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    with caplog.at_level(logging.DEBUG, logger="dialer.dial"):
        assert runtime.place(spec("c-log"))["outcome"] == "completed"
    mine = [r for r in caplog.records if r.name == "dialer.dial" and getattr(r, "call_id", "") == "e2e:c-log:1"]
    assert [r.getMessage() for r in mine if r.levelno >= logging.INFO] == ["call ended"]
    assert {r.getMessage() for r in mine if r.levelno == logging.DEBUG} >= {"call state"}
    ended = next(r for r in mine if r.getMessage() == "call ended")
    assert (ended.attempt, ended.state, ended.cause) == (1, "ended", "NORMAL_CLEARING")


@pytest.mark.parametrize(
    ("number", "outcome", "cause", "sip"),
    [
        ("+15551230486", "busy", "USER_BUSY", "486"),
        ("+15551230603", "rejected", "CALL_REJECTED", "603"),
        ("+15551230404", "invalid-number", "UNALLOCATED_NUMBER", "404"),
        ("+15551230503", "failed", "NORMAL_TEMPORARY_FAILURE", "503"),
    ],
)
def test_unanswered_calls_get_the_outcome_of_their_sip_failure(
    sim: Sim, make_runtime: Any, number: str, outcome: str, cause: str, sip: str
) -> None:
    runtime = make_runtime()
    record = runtime.place(spec("c-" + number[-3:], number))
    assert (record["outcome"], record["hangup_cause"], record["sip_status"]) == (outcome, cause, sip)
    assert record["q850"] != ""
    assert runtime.store.in_flight() == []


def test_no_answer_ends_at_the_ring_timeout(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime()
    record = runtime.place(spec("c-na", "+15551230408", ring_timeout=1))
    assert record["outcome"] == "no-answer"
    assert record["hangup_cause"] == "NO_ANSWER"


def test_answering_machine_is_hung_up_and_recorded(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    record = runtime.place(spec("c-am", "+15551230777"))
    assert record["outcome"] == "machine"
    assert runtime.store.agent("1001")["state"] == AgentState.AVAILABLE.value  # never offered


def test_a_hangup_lost_with_the_link_is_sent_again(sim: Sim, make_runtime: Any) -> None:
    """The link drops just as the dialer hangs up an answering machine, so that uuid_kill never reaches the
    switch: the call asks again once it hears nothing, instead of leaving the machine parked for hours."""
    runtime = make_runtime()
    runtime.options = replace(runtime.options, quiet_check=0.5)
    switch = runtime.switches[0]
    real_api, lost = switch.api, []

    def api(command: str, timeout: float | None = None) -> str:
        if command.startswith("uuid_kill") and not lost:
            lost.append(command)
            raise ConnectionLost("dropped under the uuid_kill")
        return real_api(command, timeout)

    switch.api = api
    with gevent.Timeout(15):
        record = runtime.place(spec("c-am-lost", "+15551230777"))
    assert lost
    assert record["outcome"] == "machine"
    assert sim.api(f"uuid_exists {record['uuid']}") == "false"


def test_unknown_gateway_fails_without_a_channel(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime()
    record = runtime.place(spec("c-gw", gateway="nosuchgw"))
    assert record["outcome"] == "failed"
    assert record["hangup_cause"] == "INVALID_GATEWAY"


def test_answer_with_no_free_agent_is_abandoned_within_the_window(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime(agent_wait_seconds=0.5)
    record = runtime.place(spec("c-ab"))
    assert record["outcome"] == "abandoned"
    waited = float(record["ended_at"]) - float(record["answered_at"])
    assert waited < 2.0, f"the customer waited {waited:.2f} s for nobody"
    # The answer, held back to go with the agent search's first write, is written when no agent is free,
    # not with the abandonment half a second later (stream ids carry Redis' time of the write, in ms).
    written = {f[b"event"]: int(i.split(b"-")[0]) for i, f in runtime.store.redis.xrange(call_log_key("e2e:c-ab:1"))}
    assert written[b"abandoned"] - written[b"answer"] >= 400


def test_agent_who_does_not_answer_is_skipped_for_the_next(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(agents=[{"id": "1003", "answer_ms": None}, {"id": "1001", "answer_ms": 50, "talk_ms": 200}])
    runtime = make_runtime(agent_wait_seconds=3.0)
    ready_agents(runtime.store, "1003")
    gevent.sleep(0.01)
    ready_agents(runtime.store, "1001")  # 1003 idles longest, so it is offered first
    record = runtime.place(spec("c-next"))
    assert record["outcome"] == "completed"
    assert record["agent"] == "1001"
    assert runtime.store.agent("1003")["missed"] == "1"
    agent_legs = [o for o in sim.originates() if o["endpoint"].startswith("user/")]
    assert [o["number"] for o in agent_legs] == ["1003", "1001"]


def test_unregistered_agents_are_never_rung_nor_count_as_tries(sim: Sim, make_runtime: Any) -> None:
    """An answered customer's agent is rung without asking ``sofia_contact`` first: the switch refuses
    ``user/<id>`` for a phone that is not registered before any channel exists. Nothing rings; the agent
    leaves the available set (not a missed call), and the call goes on to the next agent: three refusals
    do not use up the call's three tries."""
    absent = ["1004", "1005", "1006"]
    agents = [{"id": agent, "answer_ms": 50, "registered": False} for agent in absent]
    sim.scenario(agents=[*agents, {"id": "1001", "answer_ms": 50, "talk_ms": 200}])
    runtime = make_runtime(agent_wait_seconds=3.0)
    for agent in [*absent, "1001"]:  # offered in this order: the longest idle first
        ready_agents(runtime.store, agent)
        gevent.sleep(0.01)
    record = runtime.place(spec("c-unreg"))
    assert record["outcome"] == "completed"
    assert record["agent"] == "1001"
    legs = [(o["number"], o["placed"]) for o in sim.originates() if o["endpoint"].startswith("user/")]
    assert legs == [("1004", False), ("1005", False), ("1006", False), ("1001", True)]
    log = [entry for entry in runtime.store.call_log("e2e:c-unreg:1") if entry["event"] == "agent_not_registered"]
    assert [entry["agent"] for entry in log] == absent
    for agent in absent:  # still logged in and ready, but out of the available set until its phone registers
        assert runtime.store.agent(agent)["state"] == AgentState.AVAILABLE.value
        assert runtime.store.agent(agent)["registered"] == "0"
        assert runtime.store.agent(agent)["missed"] == "0"
    assert runtime.store.reserve_agent("default", "probe") in (None, "1001")


def slow_agent_leg_writes(runtime: Runtime, seconds: float) -> list[tuple[float, dict[str, str]]]:
    """Make the write of each agent's leg take ``seconds`` longer; returns the writes as they land."""
    update, landed = runtime.store.update, []

    def slow(call_id: str, fields: Any, note: Any = None, also: Any = ()) -> None:
        if "agent_uuid" in fields:
            gevent.sleep(seconds)
        update(call_id, fields, note, also)
        landed.append((time.time(), dict(fields)))

    runtime.store.update = slow  # type: ignore[method-assign]
    return landed


def test_an_agent_who_answers_at_once_is_bridged_without_waiting_for_the_record_of_its_leg(
    sim: Sim, make_runtime: Any
) -> None:
    """The agent's leg is written as soon as it is dialled (an adopter must know it) but in the background:
    the bridge does not wait for that write, and the call's later writes still land after it."""
    sim.scenario(agents=[{"id": "1001", "answer_ms": 0, "talk_ms": 200}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    landed = slow_agent_leg_writes(runtime, 0.5)
    record = runtime.place(spec("c-leg"))
    assert record["outcome"] == "completed"
    (agent_leg,) = [o for o in sim.originates() if o["endpoint"] == "user/1001"]
    assert record["agent_uuid"] == agent_leg["uuid"]
    (leg_landed,) = [at for at, fields in landed if "agent_uuid" in fields]
    assert agent_leg["bridge_requested_at"] < leg_landed - 0.3  # bridged while the write was under way
    after = [fields for at, fields in landed if at > leg_landed]
    assert any("agent_answered_at" in fields for fields in after)  # the agent's answer was written after it


def test_an_agent_refused_while_its_leg_is_being_written_is_released_after_that_write(
    sim: Sim, make_runtime: Any
) -> None:
    """The leg's write marks the agent RINGING; a refusal that comes back before the write has landed must
    not be overtaken by it, or the agent would stay RINGING, never to be offered a call again. With no other
    agent, the answered customer is abandoned."""
    sim.scenario(agents=[{"id": "1004", "answer_ms": 50, "registered": False}])
    runtime = make_runtime(agent_wait_seconds=0.5)
    ready_agents(runtime.store, "1004")
    slow_agent_leg_writes(runtime, 0.3)
    assert runtime.place(spec("c-refused"))["outcome"] == "abandoned"
    assert [o["placed"] for o in sim.originates() if o["endpoint"].startswith("user/")] == [False]
    agent = runtime.store.agent("1004")
    assert (agent["state"], agent["registered"]) == (AgentState.AVAILABLE.value, "0")
    assert runtime.store.reserve_agent("default", "probe") is None


def test_registration_events_take_an_agent_out_and_bring_it_back(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(agents=[{"id": "1001", "answer_ms": 50, "talk_ms": 100}])
    runtime = make_runtime(agent_wait_seconds=0.5)
    ready_agents(runtime.store, "1001")
    assert sim.api("sim unregister 1001").startswith("+OK")
    wait_until(lambda: runtime.store.agent("1001").get("registered") == "0", 5, gevent.sleep)
    assert runtime.place(spec("c-away"))["outcome"] == "abandoned"  # never offered while unregistered
    assert not [o for o in sim.originates() if o["endpoint"].startswith("user/")]
    assert sim.api("sim register 1001").startswith("+OK")
    wait_until(lambda: runtime.store.agent("1001").get("registered") == "1", 5, gevent.sleep)
    record = runtime.place(spec("c-back"))
    assert record["outcome"] == "completed"
    assert record["agent"] == "1001"


def test_customer_hanging_up_while_the_agent_rings_releases_the_agent(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(agents=[{"id": "1003", "answer_ms": None}])
    runtime = make_runtime(agent_wait_seconds=10.0, agent_ring_timeout=10)
    ready_agents(runtime.store, "1003")
    record = runtime.place(spec("c-bye", "+15551230222"))  # this callee hangs up 2 s after answering
    assert record["outcome"] == "abandoned"
    assert record["hangup_cause"] == "NORMAL_CLEARING"
    agent_leg = leg_uuid("e2e:c-bye:1", "agent-1")
    assert sim.api(f"uuid_exists {agent_leg}") == "false"
    assert runtime.store.agent("1003")["state"] == AgentState.AVAILABLE.value


def test_agent_hanging_up_first_ends_the_customer_leg(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(agents=[{"id": "1001", "answer_ms": 50, "talk_ms": 200}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    record = runtime.place(spec("c-agentbye"))
    assert record["outcome"] == "completed"
    assert sim.api(f"uuid_exists {record['uuid']}") == "false"


def test_a_bridged_call_sleeps_until_its_hangup_or_next_check(sim: Sim, make_runtime: Any) -> None:
    """A process holds hundreds of bridged calls: each one waits for its next event or its next quiet
    check (30 s), not a second at a time."""
    sim.scenario(agents=[{"id": "1001", "answer_ms": 0, "talk_ms": 3000}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    call = gevent.spawn(runtime.place, spec("c-held"))
    wait_until(lambda: getattr(runtime.active.get("e2e:c-held:1"), "bridged", False), 5, gevent.sleep)
    session = runtime.active["e2e:c-held:1"]
    turns = []  # each turn of its loop that finds the queue empty flushes before it waits again
    flush = session._flush
    session._flush = lambda: turns.append(1) or flush()  # type: ignore[method-assign]
    gevent.sleep(2.0)
    assert turns == []  # one wait since the bridge: no wake-up to find nothing
    assert call.get(timeout=10)["outcome"] == "completed"  # and the agent's hangup woke it at once


def test_a_call_job_reads_whether_its_attempt_is_claimed_once(
    sim: Sim, make_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's gate reads the attempt's record (with its campaign's state) in one round trip; the runtime
    takes its word for it instead of asking Redis again. Called directly, the runtime asks."""
    sim.scenario(agents=[{"id": "1001", "answer_ms": 0, "talk_ms": 100}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    asked: list[str] = []
    exists = runtime.store.redis.exists
    monkeypatch.setattr(runtime.store.redis, "exists", lambda *keys: asked.extend(keys) or exists(*keys))
    monkeypatch.setattr(Runtime, "_current", runtime)
    job = enqueue_call(runtime.store.redis, call_fields("e2e", "c-job", "+15551230000"))
    assert job.perform()["outcome"] == "completed"  # RQ's own call of the job function (``get_current_job`` works)
    assert asked == []
    assert runtime.place(spec("c-direct"))["outcome"] == "completed"
    assert asked == ["dialer:call:e2e:c-direct:1"]


def test_a_rerun_of_the_same_attempt_never_dials_again(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime()
    first = runtime.place(spec("c-rerun", "+15551230486"))
    second = runtime.place(spec("c-rerun", "+15551230486"))
    assert second["outcome"] == first["outcome"] == "busy"
    dialled = [o for o in sim.originates() if o["uuid"] == first["uuid"]]
    assert len(dialled) == 1


def test_a_rerun_in_the_process_that_follows_the_call_leaves_the_call_alone(sim: Sim, make_runtime: Any) -> None:
    """A job run again on the worker that still follows its call (it adopted it) must not take over the
    call's event route or lease: the call still hears its hangup and ends with its real cause, and the
    re-run reports that end."""
    sim.scenario(agents=[{"id": "1001", "answer_ms": 50, "talk_ms": 1000}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    call = gevent.spawn(runtime.place, spec("c-twice"))
    with gevent.Timeout(10):
        while runtime.store.record("e2e:c-twice:1").get("state") != "bridged":
            gevent.sleep(0.02)
    rerun = gevent.spawn(runtime.place, spec("c-twice"))
    record, reported = run_all([call, rerun])
    assert (record["outcome"], record["hangup_cause"], record["reason"]) == ("completed", "NORMAL_CLEARING", "")
    assert reported["outcome"] == "completed"  # the re-run waited for the call and reports how it ended
    assert len([o for o in sim.originates() if o["uuid"] == record["uuid"]]) == 1


def test_two_workers_racing_for_one_attempt_dial_once(sim: Sim, make_runtime: Any) -> None:
    one, two = make_runtime("w1"), make_runtime("w2")
    calls = [gevent.spawn(r.place, spec("c-race", "+15551230486")) for r in (one, two)]
    run_all(calls)
    assert len([o for o in sim.originates() if o["uuid"] == leg_uuid("e2e:c-race:1")]) == 1


def test_two_hundred_calls_at_once_with_twenty_agents(sim: Sim, make_runtime: Any) -> None:
    agents = [{"id": f"20{n:02d}", "answer_ms": 20, "talk_ms": 100} for n in range(20)]
    sim.scenario(agents=agents, limits={"max_sessions": 1000, "sessions_per_second": 1000})
    runtime = make_runtime(agent_wait_seconds=15.0)
    ready_agents(runtime.store, *(a["id"] for a in agents))
    calls = [gevent.spawn(runtime.place, spec(f"m{n}")) for n in range(200)]
    records = run_all(calls, timeout=60)
    outcomes = Counter(r["outcome"] for r in records)
    assert outcomes["completed"] == 200, outcomes
    # An agent talks to one customer at a time: the agents' bridged intervals never overlap.
    by_agent: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        by_agent.setdefault(r["agent"], []).append((float(r["bridged_at"]), float(r["ended_at"])))
    for agent, spans in by_agent.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"agent {agent} had two customers at once"
    assert runtime.store.in_flight() == []
    assert {a["state"] for a in runtime.store.agents()} <= {"available", "wrap-up"}


def test_esl_drop_mid_call_is_reconciled_and_the_call_completes(sim: Sim, make_runtime: Any) -> None:
    sim.scenario(agents=[{"id": "1001", "answer_ms": 50, "talk_ms": 1500}])
    runtime = make_runtime()
    ready_agents(runtime.store, "1001")
    call = gevent.spawn(runtime.place, spec("c-drop"))
    deadline = gevent.Timeout(10)
    with deadline:
        while runtime.store.record("e2e:c-drop:1").get("state") != "bridged":
            gevent.sleep(0.02)
    sim.api("sim fault drop")
    record = run_all([call])[0]
    assert record["outcome"] == "completed"
    assert any(entry.get("event") == "gap" for entry in runtime.store.call_log("e2e:c-drop:1"))
    assert runtime.switches[0].stats.reconnects >= 1


def test_call_that_ends_while_the_link_is_down_is_recorded_as_vanished(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime(agent_wait_seconds=30.0)
    call = gevent.spawn(runtime.place, spec("c-vanish"))
    with gevent.Timeout(10):
        while runtime.store.record("e2e:c-vanish:1").get("state") != "answered":
            gevent.sleep(0.02)
    with contextlib.suppress(ConnectionLost):  # the restart drops our control connection too
        sim.api("sim restart 0.3")  # every channel gone without a word, connections dropped
    record = run_all([call])[0]
    assert record["outcome"] == "abandoned"  # it had been answered, never bridged
    assert "ESL link was down" in record["reason"]


def test_calls_spread_over_several_nodes_each_call_on_one(sim: Sim, redis_url: str, redis_client: Any) -> None:
    port2, process2 = start_sim()
    try:
        settings = settings_for(sim.port, redis_url)
        settings.freeswitch = [
            FreeSwitchNode(name="fs-a", port=sim.port),
            FreeSwitchNode(name="fs-b", port=port2),
        ]
        runtime = Runtime(settings, worker_id="multi")
        runtime.start(wait=5)
        try:
            records = run_all([gevent.spawn(runtime.place, spec(f"n{n}", "+15551230486")) for n in range(20)])
            assert Counter(r["node"] for r in records).keys() == {"fs-a", "fs-b"}
            assert all(r["outcome"] == "busy" for r in records)
            on_a = {o["uuid"] for o in sim.originates()}
            for r in records:
                assert (r["uuid"] in on_a) == (r["node"] == "fs-a")
            assert len(runtime.switches) == 2  # one ESL connection per node in this process
        finally:
            runtime.stop()
    finally:
        process2.terminate()
        process2.wait(timeout=10)


def test_the_lease_loop_renews_every_call_of_a_process_page_by_page(sim: Sim, make_runtime: Any) -> None:
    runtime = make_runtime()
    store = runtime.store
    call_ids = [f"many:c{n}:1" for n in range(3 * 50 + 7)]  # more than three pages
    for call_id in call_ids:
        store.claim(call_id, {"owner": runtime.worker_id})
    runtime.active.update(dict.fromkeys(call_ids))  # only their ids matter to the renewal
    before = {call_id: store.redis.zscore(INFLIGHT, call_id) for call_id in call_ids}
    gevent.sleep(0.05)
    runtime.renew_leases()
    renewed = [c for c in call_ids if store.redis.zscore(INFLIGHT, c) > before[c]]
    assert renewed == call_ids
    runtime.active.clear()
