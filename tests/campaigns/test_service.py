"""The Python campaign API and the dispatcher against a real Redis: lifecycle, intake, dispatch rules,
settlement of outcomes and retries, cancel. Call jobs are inspected in the RQ queue, not run."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from dialer.campaigns import CampaignExists, CampaignNotFound, Campaigns, InvalidTransition
from dialer.campaigns.dispatch import Dispatcher, DispatchLimits
from dialer.campaigns.outcomes import Gate, call_finished, gate, settle_call
from dialer.campaigns.service import INTAKE_CHUNK
from dialer.campaigns.state import CampaignRedis
from dialer.enqueue import CALL_QUEUE
from dialer.payload import CallPayload
from dialer.store import Store
from tests.counting import CountingConnection, counting_client
from tests.e2e.conftest import ready_agents

from .helpers import campaign_config, queued_payloads


@pytest.fixture
def campaigns(redis_client: redis.Redis) -> Campaigns:
    ready_agents(Store(redis_client), *(f"a{n}" for n in range(20)))  # the progressive default dials for free agents
    return Campaigns(redis_client, region="US", default_zone="UTC")


def rows(*numbers: str) -> list[dict[str, Any]]:
    return [{"contact_id": f"c{n}", "number": number} for n, number in enumerate(numbers)]


def test_lifecycle_transitions_and_refusals(campaigns: Campaigns) -> None:
    campaigns.create(campaign_config())
    with pytest.raises(CampaignExists):
        campaigns.create(campaign_config())
    with pytest.raises(InvalidTransition, match="cannot pause a campaign that is draft"):
        campaigns.pause("spring")
    campaigns.add_contacts("spring", rows("+12125551234"))
    assert campaigns.start("spring").state == "running"
    with pytest.raises(InvalidTransition):
        campaigns.start("spring")
    assert campaigns.pause("spring").state == "paused"
    assert campaigns.resume("spring").state == "running"
    assert campaigns.cancel("spring").state == "canceled"
    with pytest.raises(InvalidTransition):
        campaigns.resume("spring")
    with pytest.raises(InvalidTransition):
        campaigns.add_contacts("spring", rows("+12125551235"))
    with pytest.raises(CampaignNotFound):
        campaigns.start("nope")


def test_secret_and_metadata_are_stored_but_not_shown_or_in_the_config_record(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    campaigns.create(campaign_config())
    config = campaigns.get("spring")
    assert config.webhook_secret is not None
    assert config.webhook_secret.get_secret_value() == "s3cret-never-shown"
    assert config.metadata == {"owner": "sales; DROP TABLE"}
    assert "s3cret" not in json.dumps(config.public())
    assert config.public()["webhook_secret_set"] is True
    stored = redis_client.hget("dialer:campaign:spring", "config")
    assert stored is not None
    assert b"s3cret" not in stored
    assert b"DROP" not in stored


def test_contacts_are_idempotent_by_id_and_bad_rows_do_not_stop_the_batch(campaigns: Campaigns) -> None:
    campaigns.create(campaign_config())
    first = campaigns.add_contacts(
        "spring", [*rows("+12125551234", "oops"), {"contact_id": "c0", "number": "+12125559999"}]
    )
    assert (first.accepted, first.duplicates) == (1, 1)
    assert [(r.row, r.field) for r in first.rejected] == [(2, "number")]
    again = campaigns.add_contacts("spring", rows("+12125551234", "+12125551235"))
    assert (again.accepted, again.duplicates) == (1, 1)
    status = campaigns.status("spring")
    assert status.contacts == 2
    assert status.contacts_by_state["pending"] == 2
    assert campaigns.contact("spring", "c0")["zones"] == ["America/New_York"]


def test_a_batch_of_several_chunks_numbers_rows_and_finds_duplicates_across_chunks(campaigns: Campaigns) -> None:
    campaigns.create(campaign_config())
    batch: list[dict[str, Any]] = [
        {"contact_id": f"k{n}", "number": f"+1212{200 + n // 10_000}{n % 10_000:04d}"}
        for n in range(2 * INTAKE_CHUNK + 500)
    ]
    batch[INTAKE_CHUNK + 7] = {"contact_id": "k3", "number": "+12125551234"}  # row 1,008 repeats row 4's id
    batch[2 * INTAKE_CHUNK + 344]["number"] = "not a number"  # row 2,345, in the third chunk
    result = campaigns.add_contacts("spring", batch)
    assert [(r.row, r.contact_id, r.field) for r in result.rejected] == [(2 * INTAKE_CHUNK + 345, "k2344", "number")]
    assert (result.accepted, result.duplicates) == (len(batch) - 2, 1)
    status = campaigns.status("spring")
    assert status.contacts == len(batch) - 2
    assert status.contacts_by_state["pending"] == len(batch) - 2
    assert campaigns.contact("spring", "k3")["number"] == "+12122000003"  # the first row with the id won


def test_contacts_for_a_missing_or_canceled_campaign_are_refused(campaigns: Campaigns) -> None:
    with pytest.raises(CampaignNotFound):
        campaigns.add_contacts("nope", rows("+12125551234"))
    campaigns.create(campaign_config())
    campaigns.cancel("spring")
    with pytest.raises(InvalidTransition, match="canceled"):
        campaigns.add_contacts("spring", rows("+12125551234"))


def dispatcher(redis_client: redis.Redis, **limits: Any) -> Dispatcher:
    return Dispatcher(redis_client, DispatchLimits(**limits))


def test_dispatch_enqueues_calls_with_the_campaigns_fields_and_nothing_else(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    campaigns.create(campaign_config())
    campaigns.add_contacts("spring", [{"contact_id": "a", "number": "+12125551234", "crm_note": "secret stuff"}])
    assert dispatcher(redis_client).run_once() == 0  # draft: nothing is dialled
    campaigns.start("spring")
    assert dispatcher(redis_client).run_once() == 1
    [payload] = queued_payloads(redis_client)
    CallPayload.model_validate(payload)
    assert payload == {
        "campaign": "spring",
        "contact_id": "a",
        "attempt": 1,
        "number": "+12125551234",
        "gateway": "pstn",
        "fallback_gateways": ["backup"],
        "caller_id_number": "+12125550100",
        "caller_id_name": None,
        "agent_group": "default",
        "ring_timeout": 5,
        "campaign_cps": 20.0,
        "campaign_max_concurrent": 10,
        "variables": {},
        "dial_mode": "progressive",
        "preview_timeout": 30.0,
        "webhooks": True,
    }
    job = Queue(CALL_QUEUE, connection=redis_client, serializer=JSONSerializer).get_jobs()[0]
    assert "secret" not in json.dumps(job.meta)
    assert "secret" not in (job.description or "")
    assert campaigns.contact("spring", "a")["state"] == "queued"
    assert campaigns.status("spring").in_progress == 1


def test_outstanding_calls_are_bounded_by_twice_max_concurrent(campaigns: Campaigns, redis_client: redis.Redis) -> None:
    campaigns.create(campaign_config(max_concurrent=3))
    campaigns.add_contacts("spring", rows(*(f"+1212555{n:04d}" for n in range(20))))
    campaigns.start("spring")
    assert dispatcher(redis_client).run_once() == 6
    assert dispatcher(redis_client).run_once() == 0
    assert campaigns.status("spring").contacts_by_state["pending"] == 14


def test_dnc_numbers_are_blocked_from_global_and_campaign_lists(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    campaigns.create(campaign_config(dnc_lists=["spring-optout"]))
    campaigns.dnc_add("global", ["(212) 555-1000"])
    campaigns.dnc_add("spring-optout", ["+12125551001"])
    campaigns.dnc_add("other-list", ["+12125551002"])
    campaigns.add_contacts("spring", rows("+12125551000", "+12125551001", "+12125551002"))
    campaigns.start("spring")
    assert dispatcher(redis_client).run_once() == 1
    assert [p["number"] for p in queued_payloads(redis_client)] == ["+12125551002"]
    assert campaigns.contact("spring", "c0")["outcome"] == "dnc-blocked"
    assert campaigns.contact("spring", "c1")["outcome"] == "dnc-blocked"
    assert campaigns.status("spring").contacts_by_outcome == {"dnc-blocked": 2}


def test_a_contact_outside_its_window_is_rescheduled_for_the_next_opening(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    state = CampaignRedis(redis_client)
    now = state.time()
    # a one-hour window that starts 6 hours from now in Tokyo: closed now for a Tokyo contact
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    opens = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo("Asia/Tokyo")) + timedelta(hours=6)
    window = {"start": opens.strftime("%H:%M"), "end": (opens + timedelta(hours=1)).strftime("%H:%M")}
    campaigns.create(campaign_config(calling_window=window))
    campaigns.add_contacts("spring", [{"contact_id": "tokyo", "number": "+12125551234", "timezone": "Asia/Tokyo"}])
    campaigns.start("spring")
    assert dispatcher(redis_client).run_once() == 0
    contact = campaigns.contact("spring", "tokyo")
    assert contact["state"] == "outside-hours"
    assert 5.9 * 3600 < float(contact["due_at"]) - now < 6.1 * 3600
    assert queued_payloads(redis_client) == []
    assert campaigns.cancel("spring").contacts_by_outcome == {"outside-calling-hours": 1}


def settle(redis_client: redis.Redis, campaign: str, contact: str, attempt: int, outcome: str) -> int:
    return settle_call(CampaignRedis(redis_client), campaign, contact, attempt, outcome)


def test_busy_is_retried_after_its_delay_until_max_attempts_then_the_campaign_completes(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    campaigns.create(campaign_config(retry={"busy": {"delay_seconds": 0, "max_retries": 5}}, max_attempts=2))
    campaigns.add_contacts("spring", rows("+12125551486", "+12125551234"))
    campaigns.start("spring")
    dispatch = dispatcher(redis_client)
    assert dispatch.run_once() == 2
    assert settle(redis_client, "spring", "c0", 1, "busy") == 2  # retry scheduled
    assert settle(redis_client, "spring", "c0", 1, "busy") == 0  # the same attempt again: no effect
    assert settle(redis_client, "spring", "c1", 1, "completed") == 1
    assert campaigns.contact("spring", "c0")["state"] == "retry-wait"
    assert dispatch.run_once() == 1
    retry = [p for p in queued_payloads(redis_client) if p["attempt"] == 2]
    assert [(p["contact_id"], p["caller_id_number"]) for p in retry] == [("c0", "+12125550100")]
    assert settle(redis_client, "spring", "c0", 2, "busy") == 1  # max attempts: final
    status = campaigns.status("spring")
    assert status.state == "completed"
    assert status.contacts_by_outcome == {"busy": 1, "completed": 1}
    assert status.calls_by_outcome == {"busy": 2, "completed": 1}
    assert (status.attempts, status.calls_finished, status.answer_rate) == (3, 3, round(1 / 3, 4))


def test_queued_jobs_of_a_paused_campaign_go_back_and_of_a_canceled_one_are_not_dialled(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    campaigns.create(campaign_config())
    campaigns.add_contacts("spring", rows("+12125551234", "+12125551235", "+12125551236"))
    campaigns.start("spring")
    dispatcher(redis_client).run_once()
    specs = [CallPayload.model_validate(p).to_spec() for p in queued_payloads(redis_client)]
    campaigns.pause("spring")
    assert gate(redis_client, specs[0]) is Gate.STOPPED
    assert campaigns.contact("spring", "c0")["state"] == "pending"
    campaigns.resume("spring")
    assert gate(redis_client, specs[1]) is Gate.NEW
    campaigns.cancel("spring")
    assert gate(redis_client, specs[2]) is Gate.STOPPED
    assert campaigns.contact("spring", "c2")["outcome"] == "canceled"
    # the call that was let through finishes; no retry for a canceled campaign, even for busy
    call_finished(redis_client, specs[1], {"outcome": "busy"})
    assert campaigns.contact("spring", "c1")["outcome"] == "busy"
    status = campaigns.status("spring")
    assert status.state == "canceled"
    assert status.contacts_by_state["done"] == 3


def test_the_gate_and_the_settlement_of_a_call_cost_one_and_two_round_trips(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    campaigns.create(campaign_config())
    campaigns.add_contacts("spring", rows("+12125551234"))
    campaigns.start("spring")
    dispatcher(redis_client).run_once()
    [spec] = [CallPayload.model_validate(p).to_spec() for p in queued_payloads(redis_client)]
    counted = counting_client(redis_client)
    assert gate(counted, spec) is Gate.NEW
    assert CountingConnection.sent == 1
    call_finished(counted, spec, {"outcome": "busy"})
    assert CountingConnection.sent == 1 + 2  # what it needs to know, then the settlement itself
    assert campaigns.contact("spring", "c0")["state"] == "retry-wait"


def test_the_sweep_requeues_a_contact_whose_job_was_lost(campaigns: Campaigns, redis_client: redis.Redis) -> None:
    campaigns.create(campaign_config())
    campaigns.add_contacts("spring", rows("+12125551234"))
    campaigns.start("spring")
    dispatch = dispatcher(redis_client, stale_seconds=0.001)
    dispatch.run_once()
    for key in redis_client.keys("rq:*"):  # the job never reached the queue
        redis_client.delete(key)
    time.sleep(0.01)
    dispatch.sweep("spring")
    assert campaigns.contact("spring", "c0")["state"] == "pending"
    assert dispatch.run_once() == 1
    assert [p["attempt"] for p in queued_payloads(redis_client)] == [2]


def test_the_sweep_settles_an_outcome_recorded_but_not_applied(campaigns: Campaigns, redis_client: redis.Redis) -> None:
    campaigns.create(campaign_config())
    campaigns.add_contacts("spring", rows("+12125551234"))
    campaigns.start("spring")
    dispatch = dispatcher(redis_client, stale_seconds=0.001)
    dispatch.run_once()
    redis_client.hset("dialer:call:spring:c0:1", mapping={"outcome": "completed"})
    time.sleep(0.01)
    dispatch.sweep("spring")
    assert campaigns.contact("spring", "c0")["outcome"] == "completed"
    assert campaigns.status("spring").state == "completed"


def test_a_contact_whose_job_failed_before_dialling_is_dialled_afresh_a_bounded_number_of_times(
    campaigns: Campaigns, redis_client: redis.Redis
) -> None:
    """Workers killed while a job waited for pacing use up its RQ retries: the job ends FAILED, never claimed,
    nobody dialled. The contact gets a new attempt, up to MAX_UNDIALLED_ATTEMPTS, then is final failed."""
    from rq.job import Job

    from dialer.callmodel import leg_uuid
    from dialer.campaigns.dispatch import MAX_UNDIALLED_ATTEMPTS

    campaigns.create(campaign_config())
    campaigns.add_contacts("spring", rows("+12125551234"))
    campaigns.start("spring")
    dispatch = dispatcher(redis_client, stale_seconds=0.001)
    for attempt in range(1, MAX_UNDIALLED_ATTEMPTS + 1):
        assert dispatch.run_once() == 1
        job = Job.fetch(leg_uuid(f"spring:c0:{attempt}"), connection=redis_client, serializer=JSONSerializer)
        job.set_status("failed")  # abandoned three times: RQ's cleanup failed it
        time.sleep(0.01)
        dispatch.sweep("spring")
        contact = campaigns.contact("spring", "c0")
        if attempt < MAX_UNDIALLED_ATTEMPTS:
            assert (contact["state"], contact["calls"]) == ("pending", "0")
    assert (contact["state"], contact["outcome"]) == ("done", "failed")
