"""Dial modes end to end: the simulator process, real ``dialer worker`` and ``dialer scheduler`` processes,
real Redis. Progressive never abandons; predictive dials ahead of the agents and keeps its abandon rate
under the cap over 500 calls; preview dials only what the agent accepts; the webhook events of every
call are written in order."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import redis

from dialer.agents import Agents
from dialer.campaigns import Campaigns
from dialer.notify import STREAM
from dialer.store import Store, call_key
from tests.e2e.conftest import Sim, ready_agents
from tests.worker.polling import wait_until

from .helpers import campaign_config

pytestmark = pytest.mark.slow

Start = Callable[..., Any]


def agents_scenario(sim: Sim, ids: list[str], talk_ms: int, rules: list[dict[str, Any]] | None = None) -> None:
    sim.scenario(agents=[{"id": agent, "answer_ms": 50, "talk_ms": talk_ms} for agent in ids], rules=rules or [])


def records(redis_client: redis.Redis, campaign: str) -> list[dict[str, str]]:
    keys = redis_client.keys(f"dialer:call:{campaign}:*")
    return [
        {k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()}
        for key in keys
        if not key.endswith(b":log")
    ]


def test_progressive_reserves_the_agent_before_dialling_so_nobody_is_abandoned(
    sim: Sim, redis_client: redis.Redis, dialer_processes: Start
) -> None:
    # Two agents, each conversation 400 ms, and an answered customer waits at most 0.3 s for an agent:
    # twenty customers dialled at once would mostly be abandoned.
    agent_ids = ["7001", "7002"]
    agents_scenario(sim, agent_ids, talk_ms=400)
    ready_agents(Store(redis_client), *agent_ids)
    campaigns = Campaigns(redis_client)
    campaigns.create(campaign_config("prog", dial_mode="progressive", max_concurrent=None, cps=None, retry={}))
    campaigns.add_contacts("prog", [{"contact_id": f"p{n}", "number": f"+1212555{n:04d}"} for n in range(20)])
    dialer_processes("worker", "--name", "pw1", "--concurrency", "50", DIALER_AGENT_WAIT_SECONDS="0.3")
    dialer_processes("scheduler")
    campaigns.start("prog")
    wait_until(lambda: campaigns.status("prog").state == "completed", 90)

    assert campaigns.status("prog").contacts_by_outcome == {"completed": 20}
    calls = records(redis_client, "prog")
    assert len(calls) == 20
    for call in calls:
        assert call["dial_mode"] == "progressive"
        assert float(call["agent_reserved_at"]) <= float(call["originated_at"]), call["call_id"]
        assert call["agent"] in agent_ids

    # every call's webhook events, in order and numbered 1, 2, ... (the campaign has a webhook)
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, fields in redis_client.xrange(STREAM):
        assert fields[b"campaign"] == b"prog"
        body = json.loads(fields[b"body"])
        events[body.get("call_id") or body["type"]].append(body)
    completed = events.pop("campaign.completed")
    assert [e["data"]["outcomes"] for e in completed] == [{"completed": 20}]
    expected = ["call.ringing", "call.early_media", "call.answered", "call.bridged", "call.ended", "contact.final"]
    assert len(events) == 20
    for call_id, call_events in events.items():
        assert [e["type"] for e in call_events] == expected, call_id
        assert [e["sequence"] for e in call_events[:-1]] == [1, 2, 3, 4, 5]
        assert call_events[-2]["data"]["outcome"] == "completed"
        assert call_events[-1]["data"] == {"outcome": "completed", "calls": 1}
    ids = [e["id"] for call_events in events.values() for e in call_events]
    assert len(set(ids)) == len(ids)
    assert "s3cret" not in json.dumps(events)  # the secret signs the events; it is never in them


def test_predictive_keeps_the_abandon_rate_under_the_cap_over_500_calls(
    sim: Sim, redis_client: redis.Redis, dialer_processes: Start
) -> None:
    # The answer rate jumps mid-campaign, as it does when people get home: 20% of the first 250 calls
    # reach a person, 70% of the last 250 (the rest: busy, rejected, machines, no answer). A ratio learnt
    # in the first half over-dials the second; ten agents talk 1 s each and an answered customer waits at
    # most 0.3 s, so without the cap many would be abandoned.
    agent_ids = [f"80{n:02d}" for n in range(10)]
    answer = {"ring_ms": 10, "early_media": False, "answer_ms": 300}
    endings = {
        "0": {"answer": "[01]", "busy": "[2-5]", "reject": "[679]", "machine": "8"},
        "1": {"answer": "[0-6]", "busy": "7", "machine": "8", "no_answer": "9"},
    }
    rules = [
        {"match": rf"\+1646555{phase}\d\d{digits}", "callee": {**answer, "outcome": outcome}}
        for phase, table in endings.items()
        for outcome, digits in table.items()
    ]
    agents_scenario(sim, agent_ids, talk_ms=1000, rules=rules)
    ready_agents(Store(redis_client), *agent_ids)
    campaigns = Campaigns(redis_client)
    config = campaign_config("pred", dial_mode="predictive", max_concurrent=None, cps=None, retry={}, max_attempts=1)
    campaigns.create({**config, "webhook_url": None, "webhook_secret": None})
    numbers = [f"+1646555{phase}{n:03d}" for phase in "01" for n in range(250)]  # dialled in contact id order
    rows = [{"contact_id": f"d{n:03d}", "number": number} for n, number in enumerate(numbers)]
    assert campaigns.add_contacts("pred", rows).accepted == 500
    for name in ("dw1", "dw2"):
        dialer_processes("worker", "--name", name, "--concurrency", "200", DIALER_AGENT_WAIT_SECONDS="0.3")
    dialer_processes("scheduler")
    started = time.monotonic()
    campaigns.start("pred")
    wait_until(lambda: campaigns.status("pred").state == "completed", 150)

    calls = records(redis_client, "pred")
    outcomes = Counter(call["outcome"] for call in calls)
    assert sum(outcomes.values()) == 500
    human = outcomes["completed"] + outcomes["abandoned"]
    assert human == 225, outcomes  # 50 + 175: every call that reached a person was counted
    assert outcomes["abandoned"] / human <= 0.03, outcomes
    modes = Counter(call["dial_mode"] for call in calls)
    assert modes["predictive"] >= 100, modes  # it did dial ahead once it had abandons to spare
    assert modes["progressive"] >= 30, modes  # ... and not before
    print(f"predictive: {dict(outcomes)} modes {dict(modes)} in {time.monotonic() - started:.1f} s")


def test_preview_dials_what_the_agent_accepts_and_nothing_it_skips(
    sim: Sim, redis_client: redis.Redis, dialer_processes: Start
) -> None:
    agents_scenario(sim, ["9001"], talk_ms=200)
    ready_agents(Store(redis_client), "9001")
    agents = Agents(redis_client)
    campaigns = Campaigns(redis_client)
    campaigns.create(campaign_config("prev", dial_mode="preview", max_concurrent=None, cps=None, retry={}))
    campaigns.add_contacts(
        "prev",
        [
            {"contact_id": "v1", "number": "+13125550101", "name": "Ada"},
            {"contact_id": "v2", "number": "+13125550102", "name": "Bob"},
        ],
    )
    dialer_processes("worker", "--name", "vw1", "--concurrency", "10")
    dialer_processes("scheduler")
    campaigns.start("prev")

    def offered() -> Any:
        return agents.get("9001").offer

    wait_until(lambda: offered() is not None, 20)
    first = offered()
    assert agents.get("9001").state.value == "reserved"
    assert not [o for o in sim.originates() if o["number"] == first.number]  # nothing dialled before a decision
    agents.decide("9001", "accept")
    wait_until(lambda: campaigns.contact("prev", first.contact_id).get("outcome") == "completed", 20)
    record = redis_client.hgetall(call_key(f"prev:{first.contact_id}:1"))
    assert record[b"agent"] == b"9001"

    wait_until(lambda: offered() is not None and offered().contact_id != first.contact_id, 20)
    second = offered()
    assert second.metadata["name"] in ("Ada", "Bob")
    agents.decide("9001", "skip")
    wait_until(lambda: campaigns.contact("prev", second.contact_id).get("state") == "pending", 20)
    assert float(campaigns.contact("prev", second.contact_id)["due_at"]) > time.time() + 200  # offered later
    assert not [o for o in sim.originates() if o["number"] == second.number]
    assert agents.get("9001").state.value == "available"
