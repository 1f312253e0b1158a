"""A campaign end to end with its webhooks: the simulator, real ``dialer worker``, ``dialer scheduler`` and
``dialer webhooks`` processes, real Redis, a real receiver. What the call path and the campaign scripts
emit arrives signed, every call's events numbered 1, 2, ... and in order, then the contacts' final
outcomes and the campaign's completion."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import redis

from dialer.campaigns import Campaigns
from dialer.store import Store
from dialer.webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, verify
from tests.e2e.conftest import Sim, ready_agents
from tests.webhooks.conftest import PROCESS_ENV, SECRET, Received, Receiver, create_campaign, settled
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow

ANSWERS = ["+12125551001", "+12125551002", "+12125551003"]
BUSY = "+12125550486"  # busy each time: two calls (the campaign retries busy once), then final
BLOCKED = "+12125559001"  # on the do-not-call list: a final outcome without a call
CALL = ["call.ringing", "call.early_media", "call.answered", "call.bridged", "call.ended"]


def test_a_campaigns_events_reach_its_receiver_signed_numbered_and_in_order(
    sim: Sim, redis_client: redis.Redis, receiver: Receiver, dialer_processes: Any
) -> None:
    agents = ["6101", "6102"]
    sim.scenario(agents=[{"id": agent, "answer_ms": 20, "talk_ms": 100} for agent in agents])
    ready_agents(Store(redis_client), *agents)
    create_campaign(redis_client, "hooked", receiver.url)
    campaigns = Campaigns(redis_client)
    campaigns.dnc_add("global", [BLOCKED])
    numbers = [*ANSWERS, BUSY, BLOCKED]
    campaigns.add_contacts("hooked", [{"contact_id": f"k{n}", "number": number} for n, number in enumerate(numbers)])
    dialer_processes("worker", "--name", "hw1", "--concurrency", "20")
    dialer_processes("scheduler")
    sender = dialer_processes("webhooks", **PROCESS_ENV)
    campaigns.start("hooked")

    wait_until(lambda: campaigns.status("hooked").state == "completed", 90, what="the campaign completed")
    wait_until(lambda: any(r.headers[EVENT_TYPE_HEADER] == "campaign.completed" for r in receiver.received), 30)
    wait_until(lambda: settled(redis_client), what="every event delivered")

    got = receiver.wait_for(1)
    assert all(verify(SECRET, r.body, r.headers[SIGNATURE_HEADER]) for r in got)
    assert all(r.headers[EVENT_ID_HEADER] == r.event["id"] for r in got)
    first: dict[str, Received] = {}
    for received in got:  # at least once: a duplicate is possible, and is the same event
        first.setdefault(received.event["id"], received)
    events = [r.event for r in first.values()]
    by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["type"].startswith("call."):
            by_call[event["call_id"]].append(event)
    finals = {e["contact_id"]: e for e in events if e["type"] == "contact.final"}
    completed = [e for e in events if e["type"] == "campaign.completed"]

    answered = {f"hooked:k{n}:1" for n in range(len(ANSWERS))}
    busy = {"hooked:k3:1", "hooked:k3:2"}
    assert set(by_call) == answered | busy
    for call_id, call_events in by_call.items():  # one sender: each call's events in the order they happened
        assert [e["sequence"] for e in call_events] == list(range(1, len(call_events) + 1)), call_id
        assert call_events[-1]["type"] == "call.ended"
    for call_id in answered:
        assert [e["type"] for e in by_call[call_id]] == CALL
    assert {e["data"]["outcome"] for call_id in busy for e in by_call[call_id][-1:]} == {"busy"}

    assert {contact: final["data"]["outcome"] for contact, final in finals.items()} == {
        "k0": "completed",
        "k1": "completed",
        "k2": "completed",
        "k3": "busy",
        "k4": "dnc-blocked",
    }
    assert finals["k3"]["call_id"] == "hooked:k3:2"
    assert not finals["k4"].get("call_id")
    arrival = {r.event["id"]: n for n, r in enumerate(first.values())}
    for contact, final in finals.items():  # a contact's final outcome comes after its last call's events
        if final.get("call_id"):
            assert arrival[final["id"]] > arrival[by_call[final["call_id"]][-1]["id"]], contact
    assert len(completed) == 1
    assert completed[0]["data"]["outcomes"] == {"completed": 3, "busy": 1, "dnc-blocked": 1}

    code, log = sender.stop()
    assert code == 0, log
    assert SECRET not in log
