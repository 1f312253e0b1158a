"""The dispatcher: turns a running campaign's due contacts into call jobs, within its compliance rules.

One pass over every live campaign (``run_once``):

    how many calls, in which mode    from the dial mode, free agents and calls still needing one
                                     (``dialer.campaigns.predictive``)
    pop due contacts atomically      only while the campaign runs, only while fewer than its outstanding
                                     limit are queued or in progress (so pause and cancel act within
                                     that many calls, and the RQ queue never holds a whole campaign)
    do-not-call (global + lists)     -> final outcome ``dnc-blocked``, never dialled
    calling window, local time       closed -> back into the due set at the next opening (state
                                     ``outside-hours``); never opens -> final ``outside-calling-hours``
    otherwise                        next attempt number, ``enqueue_call`` with the campaign's fields

and a sweep of contacts whose call has been queued for long: an outcome recorded but not settled (its job
re-ran while another worker still followed the call) is settled; a job that never made it to the queue (a
dispatcher died between pop and enqueue) is put back as due. Pops and settlements are Lua scripts, so any
number of dispatchers may run; one is enough.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from dialer.callmodel import DialMode, leg_uuid
from dialer.campaigns.models import CampaignConfig, CampaignState, ContactState
from dialer.campaigns.outcomes import load_config, settle_call
from dialer.campaigns.predictive import CallResults, Plan, plan
from dialer.campaigns.state import CampaignRedis
from dialer.enqueue import enqueue_call
from dialer.store import call_key

log = logging.getLogger(__name__)

_JOB_GONE = (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)
MAX_UNDIALLED_ATTEMPTS = 3  # attempts whose job ended before dialling, before the contact is final "failed"
DIALING_GRACE = 300.0  # s: past ring time and preview time, a call still "needing an agent" was lost


@dataclass(frozen=True)
class DispatchLimits:
    max_outstanding: int = 100  # calls queued or in progress per campaign (capped at 2 x max_concurrent)
    batch: int = 200  # contacts popped per campaign per pass
    stale_seconds: float = 30.0  # a queued call older than this is checked by the sweep


def call_payload(
    config: CampaignConfig, contact_id: str, number: str, attempt: int, mode: DialMode | None = None
) -> dict[str, Any]:
    """The call job for one attempt: only validated campaign fields; never metadata or the webhook secret."""
    return {
        "campaign": config.id,
        "contact_id": contact_id,
        "attempt": attempt,
        "number": number,
        "gateway": config.gateway,
        "fallback_gateways": list(config.fallback_gateways),
        "caller_id_number": config.caller_id_number,
        "caller_id_name": config.caller_id_name,
        "agent_group": config.agent_group,
        "ring_timeout": config.ring_timeout,
        "campaign_cps": config.cps,
        "campaign_max_concurrent": config.max_concurrent,
        "dial_mode": (mode or config.dial_mode).value,
        "preview_timeout": config.preview_timeout,
        "webhooks": config.webhook_url is not None,
    }


class Dispatcher:
    def __init__(self, client: redis.Redis[bytes], limits: DispatchLimits | None = None) -> None:
        self.redis = client
        self.state = CampaignRedis(client)
        self.limits = limits or DispatchLimits()
        self._next_sweep: dict[str, float] = {}

    def run_once(self) -> int:
        """One pass over the live campaigns; returns how many calls were enqueued."""
        enqueued = 0
        for campaign in self.state.live():
            config = load_config(self.state, campaign)
            if config is None:
                self.state.leave_live(campaign)
                continue
            enqueued += self.dispatch(config)
            self._sweep_when_due(campaign)
        return enqueued

    def outstanding_limit(self, config: CampaignConfig) -> int:
        if config.max_concurrent is None:
            return self.limits.max_outstanding
        return max(1, min(self.limits.max_outstanding, 2 * config.max_concurrent))

    def dispatch(self, config: CampaignConfig) -> int:
        campaign = config.id
        if self.state.campaign_field(campaign, "state") == CampaignState.CANCELED:
            self._forget_when_settled(campaign)
            return 0
        room = self.agent_room(config)
        if room.calls <= 0:
            return 0
        due = self.state.pop_due(campaign, self.outstanding_limit(config), min(self.limits.batch, room.calls))
        if not due:
            return 0
        now = self.state.time()
        blocked = self.state.dnc_blocked([contact["number"] for contact in due], config.dnc_lists)
        window = config.calling_window.to_window()
        enqueued = 0
        for contact in due:
            contact_id, number = contact["contact_id"], contact["number"]
            zones = contact["zones"].split(",")
            if number in blocked:
                self.state.settle(campaign, contact_id, None, "dnc-blocked", counted=False, retry=None)
            elif not window.is_open(zones, now):
                opening = window.next_opening(zones, now)
                if opening is None:  # its zones' windows never overlap: it can never be called lawfully
                    self.state.settle(campaign, contact_id, None, "outside-calling-hours", counted=False, retry=None)
                else:
                    self.state.reschedule(campaign, contact_id, opening, ContactState.OUTSIDE_HOURS)
            else:
                enqueued += self._enqueue(config, contact_id, number, int(contact["attempt"] or 0) + 1, room.mode)
        return enqueued

    def agent_room(self, config: CampaignConfig) -> Plan:
        """How many calls the campaign's agents can take now, and in which mode (see ``predictive``)."""
        horizon = config.ring_timeout + config.preview_timeout + DIALING_GRACE
        free, dialing = self.state.agent_demand(config.id, config.agent_group, horizon)
        calls = self.state.call_counts(config.id)
        human = calls.get("completed", 0) + calls.get("abandoned", 0)
        results = CallResults(sum(calls.values()), human, calls.get("abandoned", 0))
        return plan(config.dial_mode, free, dialing, results, config.max_abandon_rate, config.max_dial_ratio)

    def _enqueue(self, config: CampaignConfig, contact_id: str, number: str, attempt: int, mode: DialMode) -> int:
        call_id = f"{config.id}:{contact_id}:{attempt}"
        # Marked first: the job's gate recognises the attempt as this contact's current call.
        self.state.dispatched(config.id, contact_id, attempt, call_id)
        try:
            enqueue_call(self.redis, call_payload(config, contact_id, number, attempt, mode))
        except ValueError as exc:  # pydantic's ValidationError: cannot happen for a stored campaign, but final
            log.error("call job refused", extra={"call_id": call_id, "error": str(exc)})
            self.state.settle(config.id, contact_id, attempt, "failed", counted=False, retry=None)
            return 0
        return 1

    def _forget_when_settled(self, campaign: str) -> None:
        _, in_progress, pending, _ = self.state.counts(campaign)
        if pending:  # contacts added in a race with cancel
            while self.state.cancel_pending(campaign):
                pass
        if not in_progress:
            self.state.leave_live(campaign)

    # ------------------------------------------------------------------ sweep

    def _sweep_when_due(self, campaign: str) -> None:
        now = time.monotonic()
        if now < self._next_sweep.get(campaign, 0.0):
            return
        self._next_sweep[campaign] = now + self.limits.stale_seconds / 3
        self.sweep(campaign)

    def sweep(self, campaign: str) -> None:
        now = self.state.time()
        for contact_id in self.state.stale_active(campaign, now - self.limits.stale_seconds):
            contact = self.state.contact(campaign, contact_id)
            if contact.get("state") != ContactState.QUEUED:  # popped, but its dispatcher died before enqueuing
                self.state.reschedule(campaign, contact_id, None, contact.get("state") or ContactState.PENDING)
                continue
            call_id = contact.get("call_id", "")
            _, _, attempt = call_id.rpartition(":")
            outcome = self.redis.hget(call_key(call_id), "outcome") if call_id else None
            if outcome:
                settle_call(self.state, campaign, contact_id, int(attempt), outcome.decode())
                continue
            job = Job.fetch_many([leg_uuid(call_id)], connection=self.redis, serializer=JSONSerializer)[0]
            if job is None:
                self.state.reschedule(campaign, contact_id, None, ContactState.PENDING, expected_call_id=call_id)
            elif job.get_status(refresh=False) in _JOB_GONE and not self.redis.exists(call_key(call_id)):
                # Never claimed, so nobody was dialled: its job ran out of RQ retries first (workers killed
                # while it waited for pacing use them up). Dial the contact afresh, a bounded number of times.
                undialled = int(attempt) - int(contact.get("calls", "0") or 0)
                if undialled < MAX_UNDIALLED_ATTEMPTS:
                    self.state.reschedule(campaign, contact_id, None, ContactState.PENDING, expected_call_id=call_id)
                else:
                    settle_call(self.state, campaign, contact_id, int(attempt), "failed")
            else:
                self.state.touch_active(campaign, contact_id, now)
