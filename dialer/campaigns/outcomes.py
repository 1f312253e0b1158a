"""Where a call job meets its campaign: the gate before dialling and the settlement after the call.

``jobs.calls.dial`` calls ``gate`` before placing an attempt and ``call_finished`` with the final
record (``not_dialled`` when the attempt found no agent or was skipped in preview). Calls not made for a
campaign contact (``dialer call``, tests) pass them all untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING

import redis

from dialer.campaigns.models import CampaignConfig, CampaignState, ContactState
from dialer.campaigns.state import CampaignRedis, campaign_key, contact_key, decode, text
from dialer.store import call_key

if TYPE_CHECKING:  # the call runtime (gevent) stays out of the API and CLI processes
    from dialer.callmodel import CallSpec

log = logging.getLogger(__name__)


def load_config(state: CampaignRedis, campaign: str) -> CampaignConfig | None:
    raw = state.campaign_field(campaign, "config")
    return None if raw is None else CampaignConfig.model_validate_json(raw)


def settle_call(
    state: CampaignRedis, campaign: str, contact_id: str, attempt: int, outcome: str, call_id: str | None = None
) -> int:
    """Apply a call's final outcome to its contact once: retry after the policy's delay, or final.
    ``call_id``: only if the contact's current attempt is that call."""
    with state.redis.pipeline(transaction=False) as pipe:  # one round trip
        pipe.hget(campaign_key(campaign), "config")
        pipe.hgetall(contact_key(campaign, contact_id))
        config, raw_contact = pipe.execute()
    contact = decode(raw_contact)
    if config is None or not contact or (call_id is not None and contact.get("call_id") != call_id):
        return 0
    calls = int(contact.get("calls", "0")) + 1
    earlier = int(contact.get(f"tries:{outcome}", "0"))
    delay = CampaignConfig.model_validate_json(config).retry_policy().retry_delay(outcome, calls, earlier)
    return state.settle(campaign, contact_id, attempt, outcome, counted=True, retry=delay)


def _text(value: bytes | str | None) -> str | None:
    return None if value is None else text(value)


def _is_campaign_call(state: CampaignRedis, spec: CallSpec) -> bool:
    return _text(state.redis.hget(contact_key(spec.campaign, spec.contact_id), "call_id")) == spec.call_id


class Gate(Enum):
    """What the gate says of an attempt."""

    NEW = "new"  # no record yet: dial it
    CLAIMED = "claimed"  # a re-run of an attempt already claimed: the call runtime reports or adopts it
    STOPPED = "stopped"  # its campaign is paused (the contact goes back to the due set) or canceled


def gate(client: redis.Redis[bytes], spec: CallSpec) -> Gate:
    """Whether this attempt may be dialled: STOPPED when its campaign is paused or canceled (the contact
    is final, ``canceled``). A re-run of an attempt already claimed is always let through: the call runtime
    reports or adopts it and never dials twice. One round trip for a call that may go."""
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(call_key(spec.call_id))
        pipe.hget(contact_key(spec.campaign, spec.contact_id), "call_id")
        pipe.hget(campaign_key(spec.campaign), "state")
        claimed, call_id, campaign_state = pipe.execute()
    if claimed:
        return Gate.CLAIMED
    if _text(call_id) != spec.call_id:  # not (or no longer) its contact's attempt: not the campaign's to stop
        return Gate.NEW
    state = CampaignRedis(client)
    if _text(campaign_state) == CampaignState.PAUSED:
        state.reschedule(spec.campaign, spec.contact_id, None, ContactState.PENDING, expected_call_id=spec.call_id)
        return Gate.STOPPED
    if _text(campaign_state) == CampaignState.CANCELED:
        state.settle(spec.campaign, spec.contact_id, spec.attempt, "canceled", counted=False, retry=None)
        return Gate.STOPPED
    return Gate.NEW


def not_dialled(client: redis.Redis[bytes], spec: CallSpec, retry_after: float) -> None:
    """The attempt was not dialled (no agent, skipped in preview): its contact is due again after
    ``retry_after`` seconds; the attempt is not counted as a call."""
    state = CampaignRedis(client)
    if _is_campaign_call(state, spec):
        due = state.time() + retry_after
        state.reschedule(spec.campaign, spec.contact_id, due, ContactState.PENDING, expected_call_id=spec.call_id)


def call_finished(client: redis.Redis[bytes], spec: CallSpec, record: Mapping[str, str]) -> None:
    outcome = record.get("outcome", "")
    if not outcome:  # still owned by a live worker (a race on re-run): the scheduler's sweep settles it later
        return
    settle_call(CampaignRedis(client), spec.campaign, spec.contact_id, spec.attempt, outcome, spec.call_id)
