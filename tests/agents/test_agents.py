"""Agents against a real Redis: the operator actions and their refusals, what a call does to an agent
(pending pause, automatic pause after missed calls, registration), preview decisions, the HTTP API and
the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from dialer.agents import AgentConflict, AgentIn, AgentNotFound, Agents
from dialer.campaigns import Campaigns
from dialer.cli_agent import main as agent_cli
from dialer.http_api import create_app
from dialer.store import AgentState, Store, agent_lease_key, available_key

TOKEN = "agent-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def agents(redis_client: redis.Redis) -> Agents:
    return Agents(redis_client, domain="agents.example.com")


def ready(agents: Agents, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        agents.put(agent_id)
        agents.act(agent_id, "ready")


def test_log_in_ready_pause_and_log_out(agents: Agents) -> None:
    view = agents.put("1001", AgentIn(group="sales"))
    assert (view.state, view.endpoint, view.registered) == (AgentState.OFFLINE, "user/1001@agents.example.com", None)
    with pytest.raises(AgentConflict, match="cannot pause an agent who is offline"):
        agents.act("1001", "pause")
    assert agents.act("1001", "login").state is AgentState.PAUSED  # logged in, not ready yet
    assert agents.get("1001").pause_reason == "not-ready"
    assert agents.store.reserve_agent("sales", "c1") is None
    assert agents.act("1001", "ready").state is AgentState.AVAILABLE
    paused = agents.act("1001", "pause", "lunch")
    assert (paused.state, paused.pause_reason) == (AgentState.PAUSED, "lunch")
    assert agents.store.reserve_agent("sales", "c1") is None
    agents.act("1001", "ready")
    assert agents.store.reserve_agent("sales", "c1") == "1001"
    assert agents.act("1001", "logout").pending is AgentState.OFFLINE  # on a call: once it ends
    with pytest.raises(AgentNotFound):
        agents.act("nobody", "ready")


def a1_and_a2_reserved_for_c1_and_c2(agents: Agents) -> Store:
    store = agents.store
    ready(agents, "a1", "a2")
    assert store.reserve_agent("default", "c1") == "a1"
    assert store.reserve_agent("default", "c2") == "a2"
    return store


def test_a_pause_or_log_out_during_a_call_applies_when_the_call_releases_the_agent(agents: Agents) -> None:
    store = a1_and_a2_reserved_for_c1_and_c2(agents)
    store.agent_on_call("a1", "c1")
    assert agents.act("a1", "pause", "coaching").state is AgentState.ON_CALL
    assert agents.act("a2", "logout").state is AgentState.RESERVED
    assert store.release_agent("a1", "c1", wrap_up=30)
    assert store.release_agent("a2", "c2")
    assert (agents.get("a1").state, agents.get("a1").pause_reason) == (AgentState.PAUSED, "coaching")
    assert agents.get("a2").state is AgentState.OFFLINE
    assert store.reserve_agent("default", "c3") is None


def test_an_agent_goes_on_call_with_its_calls_record_update_even_after_redis_lost_its_scripts(
    agents: Agents, redis_client: redis.Redis
) -> None:
    store = a1_and_a2_reserved_for_c1_and_c2(agents)
    store.update("c1", {"agent_answered_at": "1"}, {"event": "agent_answer"}, [store.on_call("a1", "c1")])
    redis_client.script_flush()  # as after a Redis restart: the next update's script is unknown to Redis
    store.update("c2", {"agent_answered_at": "2"}, {"event": "agent_answer"}, [store.on_call("a2", "c2")])
    store.update("c3", {"agent_answered_at": "3"}, None, [store.on_call("a1", "c3")])  # not its agent
    assert agents.get("a1").state is AgentState.ON_CALL
    assert agents.get("a2").state is AgentState.ON_CALL
    assert [store.record(c)["agent_answered_at"] for c in ("c1", "c2", "c3")] == ["1", "2", "3"]
    assert [entry["event"] for entry in store.call_log("c2")] == ["agent_answer"]


def test_an_on_call_held_until_the_final_record_is_applied_even_after_redis_lost_its_scripts(
    agents: Agents, redis_client: redis.Redis
) -> None:
    store = a1_and_a2_reserved_for_c1_and_c2(agents)
    redis_client.script_flush()
    final = store.finish("c1", {"state": "ended"}, {"event": "final"}, [store.on_call("a1", "c1")])
    assert final["state"] == "ended"
    assert agents.get("a1").state is AgentState.ON_CALL
    assert [entry["event"] for entry in store.call_log("c1")] == ["final"]


def test_missed_calls_in_a_row_pause_the_agent(redis_client: redis.Redis) -> None:
    store = Store(redis_client, max_missed=2)
    agents = Agents(redis_client)
    ready(agents, "a1")
    assert store.reserve_agent("default", "c1") == "a1"
    store.release_agent("a1", "c1", missed=True)
    assert store.reserve_agent("default", "c2") == "a1"  # one miss: still offered calls
    store.release_agent("a1", "c2", missed=True)
    view = agents.get("a1")
    assert (view.state, view.pause_reason, view.missed) == (AgentState.PAUSED, "missed-calls", 2)
    assert store.reserve_agent("default", "c3") is None
    assert agents.act("a1", "ready").missed == 0


def test_an_unregistered_agent_is_never_reserved_and_comes_back_when_it_registers(agents: Agents) -> None:
    store = agents.store
    ready(agents, "a1")
    assert store.set_registration("a1", False)
    assert agents.get("a1").registered is False
    assert store.unregistered_agents() == ["a1"]  # the ones the workers ask the switch about again
    assert store.reserve_agent("default", "c1") is None
    assert not store.set_registration("stranger", True)  # only agents we know
    store.set_registration("a1", True, "sofia/internal/sip:a1@10.0.0.5")
    assert store.unregistered_agents() == []
    assert store.reserve_agent("default", "c1") == "a1"
    # a paused agent that registers stays paused
    store.release_agent("a1", "c1")
    agents.act("a1", "pause", "break")
    store.set_registration("a1", False)
    store.set_registration("a1", True)
    assert store.reserve_agent("default", "c2") is None


def test_a_reservation_takes_the_call_out_of_its_campaigns_dialing_set(agents: Agents) -> None:
    store = agents.store
    ready(agents, "a1")
    store.redis.zadd("dialer:campaign:spring:dialing", {"spring:c1:1": 1.0, "spring:c2:1": 1.0})
    assert store.reserve_agent("default", "spring:c1:1", "dialer:campaign:spring:dialing") == "a1"
    assert store.redis.zrange("dialer:campaign:spring:dialing", 0, -1) == [b"spring:c2:1"]


def test_an_agent_left_by_a_dead_worker_takes_calls_again_unless_a_pause_was_asked_for(
    agents: Agents, redis_client: redis.Redis
) -> None:
    store = a1_and_a2_reserved_for_c1_and_c2(agents)
    store.agent_on_call("a2", "c2", AgentState.RINGING)
    agents.act("a2", "pause", "meeting")
    redis_client.delete(agent_lease_key("a1"), agent_lease_key("a2"))  # both workers died
    assert sorted(store.free_orphaned_agents()) == ["a1", "a2"]
    assert agents.get("a1").state is AgentState.AVAILABLE
    assert agents.get("a2").state is AgentState.PAUSED


def test_a_group_change_moves_a_ready_agent_to_its_new_group(agents: Agents, redis_client: redis.Redis) -> None:
    agents.put("a1", AgentIn(group="sales"))
    agents.act("a1", "ready")
    agents.put("a1", AgentIn(group="support"))
    assert redis_client.zscore(available_key("sales"), "a1") is None
    assert agents.store.reserve_agent("support", "c1") == "a1"


def test_preview_offers_are_decided_once(agents: Agents, redis_client: redis.Redis) -> None:
    campaigns = Campaigns(redis_client)
    campaigns.create({"id": "spring", "caller_id_number": "+12125550100", "gateway": "pstn"})
    campaigns.add_contacts("spring", [{"contact_id": "c1", "number": "+12125551234", "name": "Ada"}])
    ready(agents, "a1")
    with pytest.raises(AgentConflict, match="no offer"):
        agents.decide("a1", "accept")
    assert agents.store.reserve_agent("default", "spring:c1:1") == "a1"
    agents.store.offer("a1", "spring:c1:1")
    offer = agents.get("a1").offer
    assert offer is not None
    assert (offer.contact_id, offer.number, offer.metadata, offer.decision) == (
        "c1",
        "+12125551234",
        {"name": "Ada"},
        None,
    )
    assert agents.decide("a1", "skip").offer.decision == "skip"  # type: ignore[union-attr]
    with pytest.raises(AgentConflict, match="already decided"):
        agents.decide("a1", "accept")
    agents.store.release_agent("a1", "spring:c1:1")
    assert agents.get("a1").offer is None


@pytest.fixture
def api(redis_client: redis.Redis) -> Iterator[TestClient]:
    app = create_app(Campaigns(redis_client), [TOKEN], Agents(redis_client))
    with TestClient(app) as client:
        yield client


def test_the_agent_api(api: TestClient) -> None:
    assert api.get("/agents/1001", headers=AUTH).status_code == 404
    assert api.put("/agents/1001", json={"group": "sales"}).status_code == 401
    created = api.put("/agents/1001", json={"group": "sales"}, headers=AUTH)
    assert created.status_code == 200, created.text
    assert created.json()["state"] == "offline"
    assert api.post("/agents/1001/login", headers=AUTH).json()["state"] == "paused"
    assert api.post("/agents/1001/ready", headers=AUTH).json()["state"] == "available"
    paused = api.post("/agents/1001/pause", json={"reason": "lunch"}, headers=AUTH).json()
    assert (paused["state"], paused["pause_reason"]) == ("paused", "lunch")
    assert [agent["id"] for agent in api.get("/agents", headers=AUTH).json()] == ["1001"]
    refused = api.post("/agents/1001/offer/accept", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"][0]["loc"] == ["offer"]
    assert api.post("/agents/1001/logout", headers=AUTH).json()["state"] == "offline"
    assert api.post("/agents/1001/pause", headers=AUTH).status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/agents/1000%20%26bridge(user)", {}, "agent_id"),
        ("/agents/1001", {"group": "sales,api_on_answer=x"}, "group"),
        ("/agents/1001", {"domain": "${system(id)}"}, "domain"),
        ("/agents/1001", {"group": "g", "extra": "no"}, "extra"),
    ],
)
def test_the_agent_api_refuses_unsafe_values_naming_the_field(
    api: TestClient, path: str, body: dict[str, str], field: str
) -> None:
    response = api.put(path, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field


def test_the_agent_cli(redis_url: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> int:
        return agent_cli(["--redis-url", redis_url, *args])

    assert run("add", "1001", "--group", "sales") == 0
    assert run("login", "1001", "--ready") == 0
    assert run("pause", "1001", "--reason", "training") == 0
    capsys.readouterr()
    assert run("list") == 0
    line = capsys.readouterr().out.split()
    assert line[:3] == ["1001", "sales", "paused"]
    assert "training" in line
    assert run("add", "10 01") == 2
    assert "agent_id" in capsys.readouterr().out
    assert run("pause", "1001", "--reason", "x\nbgapi") == 2
    assert run("ready", "ghost") == 2
    assert "no agent 'ghost'" in capsys.readouterr().out
