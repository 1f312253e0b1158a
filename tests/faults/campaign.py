"""A campaign for fault tests: numbers whose endings pick the callee's behaviour, agents, and waits."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from dialer.campaigns import Campaigns
from dialer.esl.errors import ConnectionLost
from dialer.store import Store
from tests.campaigns.helpers import campaign_config
from tests.e2e.conftest import Sim, ready_agents
from tests.worker.polling import wait_until

from .audit import Audit, audit_campaign, audit_leftovers, call_ids, settle_rq, stuck_contacts, unfinished_jobs

#: the share of each behaviour, by the number's last three digits (the simulator's built-in rules);
#: "0xx" endings match no rule: the default callee, who answers
ENDINGS = ["0", "0", "0", "0", "0", "0", "486", "603", "404", "777"]
#: answers after ~0.5 s of ringing with early media, so that calls are caught in every state
CALLEE = {"ring_ms": 20, "early_media_ms": 100, "answer_ms": 400, "jitter_ms": 200}


def numbers(count: int) -> dict[str, str]:
    """contact id -> a valid New York number; the mix of ENDINGS, in turn."""
    result = {}
    for n in range(count):
        ending = ENDINGS[n % len(ENDINGS)]
        line = f"{n % 10}0{n % 100:02d}" if ending == "0" else f"{n % 10}{ending}"
        result[f"c{n:04d}"] = f"+1212{500 + n // 10:03d}{line}"
    return result


def agents(sim: Sim, client: redis.Redis, count: int = 40, talk_ms: int = 600, **callee: Any) -> list[str]:
    ids = [f"7{n:03d}" for n in range(count)]
    sim.scenario(
        default={**CALLEE, **callee},
        agents=[{"id": agent, "answer_ms": 50, "talk_ms": talk_ms} for agent in ids],
        limits={"max_sessions": 2000, "sessions_per_second": 500},
    )
    ready_agents(Store(client), *ids)
    return ids


def start(client: redis.Redis, campaign: str, contacts: dict[str, str], **config: Any) -> Campaigns:
    """Create and start a campaign (busy numbers get one retry after 0.5 s)."""
    campaigns = Campaigns(client, region="US", default_zone="UTC")
    values = {
        "cps": 30,
        "max_concurrent": None,
        "retry": {"busy": {"delay_seconds": 0.5, "max_retries": 1}},
        "max_attempts": 2,
        "fallback_gateways": [],
        **config,
    }
    campaigns.create(campaign_config(campaign, **values))
    rows = [{"contact_id": contact_id, "number": number} for contact_id, number in contacts.items()]
    result = campaigns.add_contacts(campaign, rows)
    assert (result.accepted, result.rejected) == (len(contacts), []), result
    campaigns.start(campaign)
    return campaigns


def wait_completed(campaigns: Campaigns, campaign: str, timeout: float) -> None:
    def completed() -> bool:
        return campaigns.status(campaign).state == "completed"

    try:
        wait_until(completed, timeout, sleep=_sleep, what=f"campaign {campaign} completed")
    except AssertionError:
        status = campaigns.status(campaign)
        stuck = "\n".join(stuck_contacts(campaigns.state.redis, campaign))
        raise AssertionError(f"campaign {campaign} not completed: {status.model_dump()}\n{stuck}") from None


def _sleep(seconds: float) -> None:
    time.sleep(max(seconds, 0.1))


def sim_api(sim: Sim, command: str, timeout: float = 10.0) -> str:
    """``sim.api`` across the test's own control connection being dropped by a fault (it reconnects)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sim.api(command)
        except ConnectionLost:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def originates(sim: Sim) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(sim_api(sim, "sim originates"))
    return result


def channels(sim: Sim) -> int:
    return int(json.loads(sim_api(sim, "sim stats"))["channels"])


def dials(sim: Sim, contacts: dict[str, str]) -> int:
    wanted = set(contacts.values())
    return sum(1 for o in originates(sim) if o["endpoint"].startswith("gateway/") and o["number"] in wanted)


def leftovers(sim: Sim, client: redis.Redis, timeout: float = 10.0) -> list[str]:
    """``audit_leftovers`` once they have had ``timeout`` to clear: the audit starts when every contact is
    settled, which the scheduler may do from a call's final record a moment before the reaper that adopted
    the call (outside any job) has given back what it held, or before the switch has torn down the last legs."""
    deadline = time.monotonic() + timeout
    while (problems := audit_leftovers(client, channels(sim))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return problems


def audit_all(sim: Sim, client: redis.Redis, name: str, contacts: dict[str, str], report: Any, **counts: int) -> Audit:
    """Every check of a campaign that completed (``audit``: contacts, attempts, the switch's record, leftovers,
    RQ after its own cleanup); records the counts and fails on any breach."""
    problems, unclaimed = settle_rq(client)
    audit = audit_campaign(client, originates(sim), name, list(contacts))
    problems += unfinished_jobs(client, call_ids(client, name))
    problems += leftovers(sim, client)
    report(audit, jobs_abandoned_unclaimed=unclaimed, **counts)
    breaches = audit.breaches() + problems
    assert breaches == [], "\n".join(breaches)  # a helper module: pytest does not rewrite its asserts
    return audit
