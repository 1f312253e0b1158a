"""Dial modes at the dispatcher, against a real Redis: calls started per free agent, the dialing set
(calls that still need an agent) kept by dispatch, reservation and settlement, and predictive dialling
ahead of the agents only while the campaign has abandons to spare."""

from __future__ import annotations

import pytest
import redis

from dialer.callmodel import CallSpec
from dialer.campaigns import Campaigns
from dialer.campaigns.dispatch import Dispatcher
from dialer.campaigns.outcomes import call_finished, not_dialled
from dialer.campaigns.state import dialing_key, stats_key
from dialer.store import Store
from tests.e2e.conftest import ready_agents

from .helpers import campaign_config, queued_payloads


@pytest.fixture
def campaigns(redis_client: redis.Redis) -> Campaigns:
    return Campaigns(redis_client, region="US", default_zone="UTC")


def start(campaigns: Campaigns, contacts: int, **config: object) -> None:
    campaigns.create(campaign_config("spring", max_concurrent=None, cps=None, **config))
    rows = [{"contact_id": f"c{n}", "number": f"+1212555{n:04d}"} for n in range(contacts)]
    assert campaigns.add_contacts("spring", rows).accepted == contacts
    campaigns.start("spring")


def dialing(redis_client: redis.Redis) -> list[str]:
    return sorted(x.decode() for x in redis_client.zrange(dialing_key("spring"), 0, -1))


def test_progressive_starts_one_call_per_free_agent(campaigns: Campaigns, redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    ready_agents(store, "a1", "a2", "a3")
    start(campaigns, 10)
    dispatcher = Dispatcher(redis_client)
    assert dispatcher.run_once() == 3
    assert dispatcher.run_once() == 0  # every free agent is spoken for
    assert dialing(redis_client) == ["spring:c0:1", "spring:c1:1", "spring:c2:1"]
    assert {p["dial_mode"] for p in queued_payloads(redis_client)} == {"progressive"}
    # the first call takes its agent: it no longer needs one, but that agent is no longer free
    assert store.reserve_agent("default", "spring:c0:1", dialing_key("spring")) == "a1"
    assert dispatcher.run_once() == 0
    # it ends: the agent is free again, so one more call starts
    store.release_agent("a1", "spring:c0:1")
    spec = CallSpec("spring", "c0", 1, "+12125550000", "pstn", "+12125550100")
    call_finished(redis_client, spec, {"outcome": "completed"})
    assert dispatcher.run_once() == 1
    # a call that found no agent (or was skipped in preview) gives its place back and is due again later
    not_dialled(redis_client, CallSpec("spring", "c1", 1, "+12125550001", "pstn", "+12125550100"), 60)
    assert "spring:c1:1" not in dialing(redis_client)
    assert campaigns.contact("spring", "c1")["state"] == "pending"


def test_without_free_agents_nothing_is_dialled(campaigns: Campaigns, redis_client: redis.Redis) -> None:
    start(campaigns, 5, dial_mode="predictive")
    assert Dispatcher(redis_client).run_once() == 0
    assert queued_payloads(redis_client) == []


def test_predictive_dials_ahead_only_with_abandons_to_spare(campaigns: Campaigns, redis_client: redis.Redis) -> None:
    ready_agents(Store(redis_client), "a1", "a2", "a3", "a4")
    start(campaigns, 40, dial_mode="predictive", max_abandon_rate=0.03)
    dispatcher = Dispatcher(redis_client)
    # a fresh campaign has nothing to spare: progressive, one call per agent
    assert dispatcher.run_once() == 4
    assert {p["dial_mode"] for p in queued_payloads(redis_client)} == {"progressive"}
    # 100 people answered (3 abandons allowed at 3%), 310 calls: ratio ~2.95, so up to 11 calls for 4
    # agents, but only 3 beyond them, the abandons the campaign can still afford
    redis_client.hset(stats_key("spring"), mapping={"call:completed": 100, "call:busy": 210})
    assert dispatcher.run_once() == 3
    modes = [p["dial_mode"] for p in queued_payloads(redis_client)]
    assert modes.count("predictive") == 3
    assert len(dialing(redis_client)) == 7
    # the budget spent: back to progressive, and nothing more while every agent is spoken for
    redis_client.hset(stats_key("spring"), mapping={"call:completed": 97, "call:abandoned": 3})
    assert dispatcher.run_once() == 0
