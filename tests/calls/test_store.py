"""Redis state: attempt claims, leases, adoption and agent reservation, against a real Redis."""

from __future__ import annotations

import threading
import time

import redis

from dialer.store import INFLIGHT, AgentState, Store, agent_lease_key


def make_store(client: redis.Redis, lease: float = 30.0) -> Store:
    return Store(client, lease_seconds=lease)


def test_an_attempt_is_claimed_once_even_when_racing(redis_client: redis.Redis) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(16)

    def contender(n: int) -> None:
        store = make_store(redis.Redis.from_url(_url(redis_client)))
        barrier.wait()
        if store.claim("c1:42:1", {"owner": f"w{n}", "state": "queued"}) is None:
            winners.append(n)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    record = make_store(redis_client).record("c1:42:1")
    assert record["owner"] == f"w{winners[0]}"
    assert redis_client.zscore(INFLIGHT, "c1:42:1") is not None


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_a_second_claim_returns_the_existing_record(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    assert store.claim("c:1:1", {"owner": "a", "state": "queued"}) is None
    store.update("c:1:1", {"state": "ringing"})
    again = store.claim("c:1:1", {"owner": "b", "state": "queued"})
    assert again is not None
    assert again["owner"] == "a"
    assert again["state"] == "ringing"


def test_finish_drops_the_lease_and_keeps_the_log(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    store.claim("c:1:1", {"owner": "a"})
    store.update("c:1:1", {"state": "ringing"}, {"event": "progress"})
    store.finish("c:1:1", {"state": "ended", "outcome": "busy"}, {"event": "final"})
    assert store.in_flight() == []
    assert [entry["event"] for entry in store.call_log("c:1:1")] == ["progress", "final"]


def test_only_expired_leases_can_be_adopted_and_only_once(redis_client: redis.Redis) -> None:
    store = make_store(redis_client, lease=0.3)
    store.claim("c:1:1", {"owner": "dead"})
    assert store.expired() == []
    assert not store.adopt("c:1:1", "w2")
    time.sleep(0.35)
    assert store.expired() == ["c:1:1"]
    assert store.adopt("c:1:1", "w2")
    assert not store.adopt("c:1:1", "w3")  # the new lease runs
    assert store.record("c:1:1")["owner"] == "w2"
    assert store.record("c:1:1")["adopted_from"] == "dead"


def test_renew_keeps_only_the_owners_leases(redis_client: redis.Redis) -> None:
    store = make_store(redis_client, lease=0.5)
    store.claim("mine", {"owner": "w1"})
    store.claim("theirs", {"owner": "w2"})
    time.sleep(0.3)
    assert store.renew("w1", ["mine", "theirs"]) == 1
    time.sleep(0.3)
    assert store.expired() == ["theirs"]


def test_agent_reservation_is_exclusive_across_many_contenders(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    for n in range(5):
        store.add_agent(f"a{n}", "sales", f"user/a{n}")
        store.set_agent_ready(f"a{n}")
    got: list[str] = []
    barrier = threading.Barrier(20)

    def contender(n: int) -> None:
        mine = make_store(redis.Redis.from_url(_url(redis_client)))
        barrier.wait()
        agent = mine.reserve_agent("sales", f"call{n}")
        if agent:
            got.append(agent)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == [f"a{n}" for n in range(5)]
    assert store.reserve_agent("sales", "late") is None
    assert {a["state"] for a in store.agents()} == {AgentState.RESERVED.value}


def test_wrap_up_delays_the_next_reservation(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    store.add_agent("a1", "g", "user/a1")
    store.set_agent_ready("a1")
    assert store.reserve_agent("g", "call1") == "a1"
    assert not store.release_agent("a1", "someone-else", wrap_up=0.3)  # not the holder
    assert store.release_agent("a1", "call1", wrap_up=0.3)
    assert store.agent("a1")["state"] == AgentState.WRAP_UP.value
    assert store.reserve_agent("g", "call2") is None
    time.sleep(0.35)
    assert store.reserve_agent("g", "call2") == "a1"


def test_paused_and_offline_agents_are_never_reserved(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    store.add_agent("a1", "g", "user/a1")
    store.add_agent("a2", "g", "user/a2")
    store.set_agent_ready("a1")
    store.agent_action("a1", AgentState.PAUSED, [AgentState.AVAILABLE], "lunch")
    assert store.reserve_agent("g", "call1") is None


def test_an_agent_held_by_a_dead_worker_is_freed_when_its_lease_expires(redis_client: redis.Redis) -> None:
    store = make_store(redis_client, lease=0.3)
    store.add_agent("a1", "g", "user/a1")
    store.set_agent_ready("a1")
    assert store.reserve_agent("g", "call1") == "a1"
    assert store.free_orphaned_agents() == []
    time.sleep(0.35)
    assert not redis_client.exists(agent_lease_key("a1"))
    assert store.free_orphaned_agents() == ["a1"]
    assert store.reserve_agent("g", "call2") == "a1"


def test_orphaned_agents_are_found_a_page_at_a_time_with_a_pause_between(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    for n in range(300):  # past Redis's compact set encoding, which SSCAN returns whole
        store.add_agent(f"a{n}", "g", f"user/a{n}")
        store.set_agent_ready(f"a{n}")
    reserved = [store.reserve_agent("g", f"call{n}") for n in range(5)]
    dead = sorted(agent for agent in reserved[:3] if agent is not None)
    redis_client.delete(*(agent_lease_key(agent) for agent in dead))  # their workers died
    pauses: list[None] = []
    assert store.free_orphaned_agents(pause=lambda: pauses.append(None), page=20) == dead
    assert len(pauses) >= 5  # 300 agents, about 20 a page (SSCAN's COUNT is a hint)
    assert store.free_orphaned_agents() == []
