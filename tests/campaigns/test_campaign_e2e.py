"""Campaigns end to end: the simulator process, real ``dialer worker`` and ``dialer scheduler`` processes,
real Redis. What the switch was asked to dial is read from the simulator's record of originates."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from dialer.campaigns import Campaigns
from dialer.store import Store
from tests.e2e.conftest import Sim, ready_agents
from tests.worker.polling import wait_until

from .helpers import campaign_config

pytestmark = pytest.mark.slow

Start = Callable[..., subprocess.Popen[str]]
AGENT_IDS = [f"60{n:02d}" for n in range(12)]


def open_now_in_new_york() -> dict[str, str]:
    """A calling window open now in New York (and so closed in Tokyo, 13-14 hours ahead)."""
    local = datetime.now(UTC).astimezone(ZoneInfo("America/New_York"))
    return {
        "start": (local - timedelta(hours=1)).strftime("%H:%M"),
        "end": (local + timedelta(hours=2)).strftime("%H:%M"),
    }


def dialled(sim: Sim, number: str) -> list[dict[str, Any]]:
    return [o for o in sim.originates() if o["number"] == number and o["endpoint"].startswith("gateway/")]


@pytest.fixture
def campaigns(sim: Sim, redis_client: redis.Redis) -> Campaigns:
    sim.scenario(agents=[{"id": agent, "answer_ms": 20, "talk_ms": 100} for agent in AGENT_IDS])
    ready_agents(Store(redis_client), *AGENT_IDS)
    return Campaigns(redis_client, region="US", default_zone="UTC")


def test_a_mixed_campaign_runs_to_completed_with_retries_dnc_and_the_calling_window(
    sim: Sim, campaigns: Campaigns, dialer_processes: Start
) -> None:
    expected = {f"+121255510{n:02d}": "completed" for n in range(12)}
    expected |= {f"+1212555{d}486": "busy" for d in range(4)}
    expected |= {f"+1212555{d}603": "rejected" for d in range(3)}
    expected |= {f"+1212555{d}404": "invalid-number" for d in range(3)}
    expected |= {f"+1212555{d}777": "machine" for d in range(2)}
    expected |= {f"+1212555{d}408": "no-answer" for d in range(3)}
    dnc = {"+12125559001": "global", "+12125559002": "global", "+12125559003": "e2e-optout"}
    expected |= dict.fromkeys(dnc, "dnc-blocked")
    assert len(expected) == 30
    window = open_now_in_new_york()
    config = campaign_config(
        "e2e", calling_window=window, dnc_lists=["e2e-optout"], max_concurrent=None, cps=None, max_attempts=2
    )
    campaigns.create(config)  # retry: busy after 1 s, max 2 attempts
    for number, name in dnc.items():
        campaigns.dnc_add(name, [number])
    rows = [
        {"contact_id": f"k{n}", "number": number, "note": "VIP, call after lunch"} for n, number in enumerate(expected)
    ]
    assert campaigns.add_contacts("e2e", rows).accepted == 30
    # the same window for a contact in Tokyo: closed now, so it waits and is never dialled
    campaigns.create(campaign_config("tokyo", calling_window=window))
    campaigns.add_contacts("tokyo", [{"contact_id": "t1", "number": "+12125558000", "timezone": "Asia/Tokyo"}])

    dialer_processes("worker", "--name", "cw1", "--concurrency", "100")
    dialer_processes("scheduler")
    campaigns.start("e2e")
    campaigns.start("tokyo")
    wait_until(lambda: campaigns.status("e2e").state == "completed", 60)

    status = campaigns.status("e2e")
    outcomes = {number: campaigns.contact("e2e", f"k{n}")["outcome"] for n, number in enumerate(expected)}
    assert outcomes == expected
    assert status.contacts_by_state["done"] == 30
    assert status.in_progress == 0
    assert status.calls_by_outcome["busy"] == 8  # each busy number: two calls, then final
    assert status.attempts == 27 + 4  # every contact but the DNC ones once, busy ones twice
    for number, outcome in expected.items():
        calls = dialled(sim, number)
        if outcome == "dnc-blocked":
            assert calls == [], number
        elif outcome == "busy":
            assert len(calls) == 2, number
            assert calls[1]["time"] - calls[0]["time"] >= 1.0  # the retry waited for its delay
            assert {c["variables"].get("origination_caller_id_number") for c in calls} == {"+12125550100"}
        else:
            assert len(calls) == 1, number

    wire = json.dumps(sim.originates())  # free text stays in Redis: metadata and the secret never reach the switch
    assert "lunch" not in wire
    assert "DROP TABLE" not in wire
    assert "s3cret" not in wire

    tokyo = campaigns.contact("tokyo", "t1")
    assert tokyo["state"] == "outside-hours"
    assert float(tokyo["due_at"]) > time.time() + 3600  # rescheduled for its next opening
    assert dialled(sim, "+12125558000") == []
    assert campaigns.status("tokyo").state == "running"
    assert campaigns.cancel("tokyo").contacts_by_outcome == {"outside-calling-hours": 1}


def test_pause_stops_new_dials_resume_continues_and_cancel_stops_pending_ones(
    sim: Sim, campaigns: Campaigns, dialer_processes: Start
) -> None:
    # every call in this campaign rings 1.5 s and is busy (no retry): slow enough to act in between
    rule = {"match": r"\+1310555\d{4}", "callee": {"outcome": "busy", "early_media": False, "answer_ms": 1500}}
    sim.scenario(agents=[{"id": agent, "answer_ms": 20} for agent in AGENT_IDS], rules=[rule])
    numbers = [f"+131055501{n:02d}" for n in range(20)]
    campaigns.create(campaign_config("paced", max_concurrent=2, cps=None, retry={}, max_attempts=1))
    campaigns.add_contacts("paced", [{"contact_id": f"p{n}", "number": number} for n, number in enumerate(numbers)])
    dialer_processes("worker", "--name", "cw2", "--concurrency", "50")
    dialer_processes("scheduler")

    def dials() -> int:
        return sum(1 for o in sim.originates() if o["number"] in numbers)

    campaigns.start("paced")
    wait_until(lambda: dials() >= 2, 15)
    campaigns.pause("paced")
    wait_until(lambda: campaigns.status("paced").in_progress == 0, 20)
    at_pause = dials()
    time.sleep(1.5)
    assert dials() == at_pause  # nothing new while paused
    assert campaigns.status("paced").contacts_by_state["pending"] > 0

    campaigns.resume("paced")
    wait_until(lambda: dials() > at_pause, 15)
    canceled = campaigns.cancel("paced")
    assert canceled.state == "canceled"
    wait_until(lambda: campaigns.status("paced").in_progress == 0, 20)
    at_cancel = dials()
    time.sleep(1.0)
    assert dials() == at_cancel  # pending contacts are never dialled
    status = campaigns.status("paced")
    assert status.contacts_by_state["done"] == 20
    assert status.contacts_by_outcome.get("canceled", 0) == 20 - at_cancel
    assert status.contacts_by_outcome.get("busy", 0) == at_cancel  # calls in progress finished normally
