"""One call attempt, from claim to final record: the greenlet that drives a customer leg and its agent.

    claim the attempt in Redis (deterministic origination uuid)     -- never dial twice
    bgapi originate {origination_uuid=...}sofia/gateway/<gw>/<number> &park()
    follow the customer leg: trying, ringing (180), early media (183), answered (200)
    on answer: hold music, reserve an agent (progressive, preview: reserved before the call),
               originate the agent leg, uuid_bridge when the agent answers; next agent on no answer
               or an unregistered phone; abandon when no agent is found within the window
    on any hangup: hang up the other leg, release the agent into wrap-up, write the final record

Every wait is bounded; every exit path (exceptions and worker shutdown included) runs ``_cleanup``.
Events come from the call's own queue (``Switch.route``), so they arrive in order and a slow call
holds up no other. A ``GAP`` in the queue (the ESL link was re-established) makes the call ask the
switch whether its customer leg still exists before trusting its state again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import gevent
from gevent.queue import Empty

from dialer import metrics, notify
from dialer.callmodel import (
    EVENT_TRIGGERS,
    CallSpec,
    CallState,
    DialMode,
    Hangup,
    Trigger,
    classify,
    leg_uuid,
    next_state,
)
from dialer.campaigns.state import dialing_key
from dialer.esl import dialstring
from dialer.esl.errors import CommandError, ESLError, UnsafeValueError
from dialer.esl.events import Event
from dialer.pacing import PacingTimeout, is_network_failure
from dialer.store import AgentState, HashWrite, SetRemove, Store, Write, agent_key, call_log_entry
from dialer.switch import GAP, BackgroundJob, CallQueue, Switch

log = logging.getLogger(__name__)

#: The events a worker subscribes to: what calls need, and nothing else.
EVENTS = (
    "CHANNEL_CREATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
    "HEARTBEAT",
)
SUBCLASSES = ("sofia::register", "sofia::unregister", "sofia::expire")

AGENT_POLL = 0.05  # seconds between looks for a free agent while an answered customer waits
_ANSWERED_STATES = (CallState.ANSWERED, CallState.CONNECTING_AGENT, CallState.BRIDGED)
_BEFORE_PROGRESS = (CallState.QUEUED, CallState.ORIGINATING, CallState.TRYING)  # no 180/183/200 yet
#: States a webhook reports, by the event type it sends.
_WEBHOOK_STATES = {
    CallState.RINGING: "call.ringing",
    CallState.EARLY_MEDIA: "call.early_media",
    CallState.ANSWERED: "call.answered",
    CallState.BRIDGED: "call.bridged",
}


@dataclass(frozen=True)
class DialOptions:
    worker_id: str = "worker"
    agent_domain: str | None = None
    agent_wait: float = 2.0  # an answered customer waits at most this long for a free agent (safe harbour)
    agent_ring_timeout: int = 15
    max_agent_tries: int = 3
    wrap_up: float = 5.0
    hold_music: str | None = "local_stream://moh"
    abandon_message: str | None = None
    command_timeout: float = 5.0
    hangup_grace: float = 10.0  # after a deadline, how long the switch has to report the hangup
    #: A call that heard nothing for this long asks the switch whether its customer leg still exists: a lost
    #: hangup event must not keep a finished call (and its agent) open until ``max_call_seconds``.
    quiet_check: float = 30.0
    max_call_seconds: float = 4 * 3600
    #: Exceptions that mean "this process is shutting down": the call is handed back, not hung up.
    hand_back_on: tuple[type[BaseException], ...] = ()
    #: The switch sends this worker only events of legs it dialled (an ESL filter on the ``dialer_worker``
    #: channel variable): an adopted call's legs, dialled by another worker, need a filter of their own.
    events_filtered_by_worker: bool = False


@dataclass(frozen=True)
class JobDone:
    """Queue item: the bgapi originate of ``leg`` finished; ``error`` is its -ERR cause or None."""

    leg: str
    error: str | None


def _now() -> str:
    return f"{time.time():.6f}"


class CallSession:
    """Drives one attempt. ``run()`` (a new attempt) and ``adopt()`` (an orphaned one) return its record."""

    def __init__(
        self, spec: CallSpec, switch: Switch, store: Store, options: DialOptions, reserved_agent: str | None = None
    ) -> None:
        """``reserved_agent``: progressive and preview calls come with their agent already reserved."""
        self.spec, self.switch, self.store, self.options = spec, switch, store, options
        self.call_id = spec.call_id
        self.uuid = leg_uuid(self.call_id)
        self.state = CallState.QUEUED
        self.queue: CallQueue = switch.route(self.uuid)
        self.customer_up = False  # a customer leg may exist: cleanup must make sure it is gone
        self.answered = self.bridged = self.machine = False
        self.hangup: Hangup | None = None
        self.reason = ""
        # the agent currently reserved for this call, its leg, and the search for one
        self.agent: str | None = reserved_agent
        self.agent_uuid: str | None = None
        self.agent_answered = False
        self.agent_tries = 0  # agents rung (a phone not registered rang nobody: not a try)
        self.agent_legs = 0  # agent originates sent: each leg gets a uuid of its own
        self.agent_deadline: float | None = None  # until when we look for a free agent
        self.agent_ring_deadline = 0.0  # until when the agent we rang may answer
        # Where progress is shown besides the record (the RQ job's meta): given the new fields, the hash
        # field to write with the record's own update, in the same Redis round trip (or None).
        self.on_progress: Callable[[dict[str, str]], HashWrite | None] | None = None
        self.final: dict[str, str] | None = None  # the record as written at the end
        self.filtered_legs: list[str] = []  # legs whose events we asked for by Unique-ID (adopted calls)
        # gateway failover: given the failed gateway and hangup, the next gateway (already paced) or None
        self.next_gateway: Callable[[str, Hangup], str | None] | None = None
        # right before each customer originate: make sure its pacing tokens are still good (``Pacer.fresh``)
        self.before_originate: Callable[[], None] | None = None
        # and once the switch has acknowledged it: a late one pushes pacing back (``Pacer.delivered``)
        self.originate_acknowledged: Callable[[], None] | None = None
        self.tries = 1  # customer-leg originates of this attempt (one per gateway)
        self.ended_from = CallState.QUEUED  # the state the customer leg was in when it ended
        self.hanging_up: str | None = None  # the cause we hung the customer leg up with (asked again if it lingers)
        self.webhook_seq = 0  # webhook events of this call so far (kept in the record, for an adopter)
        # record writes held back (see ``_write``): the record's fields, then its log entries and what rides along
        self.held_fields: dict[str, str] = {}
        self.held: list[Write] = []
        self.writing: gevent.Greenlet | None = None  # a write sent in the background (``_flush``)

    # ------------------------------------------------------------------ logging and records

    def _log(self, message: str, level: int = logging.INFO, **extra: Any) -> None:
        """A line with the call's id, attempt, uuid, state and cause. Routine steps are DEBUG: at INFO a
        call that goes well is one line (``call ended``), and every step is in its Redis log anyway."""
        if not log.isEnabledFor(level):
            return
        fields = {"call_id": self.call_id, "attempt": self.spec.attempt, "uuid": self.uuid, "state": self.state.value}
        fields["cause"] = self.hangup.cause if self.hangup else ""
        fields.update(extra)
        log.log(level, message, extra=fields)

    def _note(self, event: str, **fields: str) -> None:
        """Add a line to the call's log stream (what an operator reads with ``dialer call --wait``)."""
        self._write({}, {"event": event, "at": _now(), **fields}, hold=True)

    def _write(
        self,
        fields: dict[str, str],
        note: dict[str, str] | None,
        also: list[Write] | None = None,
        *,
        hold: bool = False,
        background: bool = False,
    ) -> None:
        """Update the record. ``hold``: later, with the next write not held, or once the call has handled the
        events it has (``_follow`` flushes before it waits), or with the final record: what a call does in
        response to one burst of events is one round trip. A worker killed meanwhile loses what it would have
        lost had it died a moment earlier, before those events: its adopter asks the switch. ``background``:
        sent now, but the call goes on without waiting for it (the next write waits)."""
        self.held_fields.update(fields)
        if note:
            self.held.append(call_log_entry(self.call_id, note))
        self.held += also or []
        if not hold:
            self._flush(background=background)

    def _flush(self, *, background: bool = False) -> None:
        if self.held_fields or self.held:
            self._written()
            fields, writes = self._take_held()
            if background:
                self.writing = gevent.spawn(self.store.update, self.call_id, fields, also=writes)
            else:
                self.store.update(self.call_id, fields, also=writes)

    def _written(self) -> None:
        """Wait for the write sent in the background (bounded by Redis' socket timeout; its error is raised
        here, once): a call's writes, and those of the agent it holds, land in the order they were made."""
        if self.writing is not None:
            self.writing.join()  # interrupted (shutdown): still pending, waited for by the next write
            writing, self.writing = self.writing, None
            writing.get()

    def _take_held(self) -> tuple[dict[str, str], list[Write]]:
        held = self.held_fields, self.held
        self.held_fields, self.held = {}, []
        return held

    def _move(self, trigger: Trigger, **fields: str) -> None:
        """Apply a trigger; record the transition, or that it did not fit, in the call's log. Held (see
        ``_write``), except the agent's leg: an adopter must know it to hang it up. That one is written in the
        background, so that an agent who answers at once is bridged without waiting for it."""
        target = next_state(self.state, trigger)
        if target is None:
            self._write({}, {"event": trigger.value, "state": self.state.value, "fit": "no"}, hold=True)
            return
        self.state = target
        at = _now()
        shown = self.on_progress({"state": target.value, f"{target.value}_at": at}) if self.on_progress else None
        record = {"state": target.value, f"{target.value}_at": at, **fields}
        also: list[Write] = [shown] if shown is not None else []
        if target in _WEBHOOK_STATES:
            also += self._webhook(_WEBHOOK_STATES[target], record, {"state": target.value, "uuid": self.uuid, **fields})
        if trigger is Trigger.AGENT_DIALLED and self.agent is not None:  # what supervisors see; the lease decides
            also.append((agent_key(self.agent), "state", AgentState.RINGING.value))
        note = {"event": trigger.value, "state": target.value, "at": at}
        dialled = trigger is Trigger.AGENT_DIALLED
        self._write(record, note, also, hold=not dialled, background=dialled)
        self._log("call state", logging.DEBUG, trigger=trigger.value)

    def _webhook(self, kind: str, record: dict[str, str], data: dict[str, str]) -> list[Write]:
        """The webhook event for the campaign's CRM, written with the change it reports (``record`` gets the
        sequence number, so a worker that adopts the call goes on counting)."""
        if not self.spec.webhooks:
            return []
        self.webhook_seq += 1
        record["webhook_seq"] = str(self.webhook_seq)
        spec = self.spec
        return [
            notify.call_event(
                spec.campaign, spec.contact_id, spec.attempt, kind, self.webhook_seq, time.time(), dict(data)
            )
        ]

    # ------------------------------------------------------------------ entry points

    def run(self) -> dict[str, str]:
        claimed = self.store.claim(
            self.call_id,
            {
                "call_id": self.call_id,
                "campaign": self.spec.campaign,
                "contact_id": self.spec.contact_id,
                "attempt": str(self.spec.attempt),
                "number": self.spec.number,
                "agent_group": self.spec.agent_group,
                "uuid": self.uuid,
                "gateway": self.spec.gateway,
                "state": CallState.QUEUED.value,
                "owner": self.options.worker_id,
                "node": self.switch.name,
                "created_at": _now(),
                "dial_mode": self.spec.dial_mode.value,
                "webhooks": "1" if self.spec.webhooks else "",
                **({"agent": self.agent, "agent_reserved_at": _now()} if self.agent else {}),
            },
        )
        if claimed is not None:
            if self.agent is not None:  # reserved by a run that lost the race for the claim
                self.store.release_agent(self.agent, self.call_id)
                self.agent = None
            return self._rerun(claimed)
        handed_back = False
        try:
            self._originate_customer()
            self._follow()
            while self._fail_over():
                self._originate_customer()
                self._follow()
        except BaseException as exc:
            if isinstance(exc, self.options.hand_back_on):
                handed_back = True
                self._hand_back()
            raise
        finally:
            if not handed_back:
                self._cleanup()
        return self.final if self.final is not None else self.store.record(self.call_id)

    def _rerun(self, claimed: dict[str, str]) -> dict[str, str]:
        """A re-run of a claimed attempt (RQ retry, a handed-back job, a race): never dial again.

        Finished: report the outcome. Orphaned (its owner's lease expired or was handed back): adopt it
        here and follow it to the end. Still owned by a live worker: report what is known now.
        """
        self._log("attempt already claimed; not dialling", recorded_state=claimed.get("state"))
        if not claimed.get("outcome") and self.store.adopt(self.call_id, self.options.worker_id):
            return self.adopt(self.store.record(self.call_id))
        self.switch.unroute(self.uuid)
        return claimed

    def _hand_back(self) -> None:
        """The worker is shutting down mid-call: leave the legs up and let another worker adopt the call
        at once (its lease is expired now), instead of cutting off a customer."""
        self._log("handing the call back")
        self.switch.unroute(*(leg for leg in (self.uuid, self.agent_uuid) if leg))
        self.store.expire_lease(self.call_id)
        self._note("handed_back", worker=self.options.worker_id)
        self._flush()

    def adopt(self, record: dict[str, str]) -> dict[str, str]:
        """Finish an attempt whose worker died: ask the switch, never dial the customer again.

        A customer still talking to an agent is left talking and followed to the end. Any other live
        leg is hung up: by the time a lease expires the agent window is long over, so an answered
        customer still waiting is abandoned rather than kept on hold.
        """
        self.state = CallState(record.get("state", CallState.QUEUED.value))
        if record.get("uuid") and record["uuid"] != self.uuid:  # a failover try: its leg is the live one
            self.switch.unroute(self.uuid)
            self.uuid = record["uuid"]
            self.switch.route(self.uuid, self.queue)
        self.answered = self.state in _ANSWERED_STATES
        self.bridged = self.state is CallState.BRIDGED
        self.agent = record.get("agent") or None
        self.agent_uuid = record.get("agent_uuid") or None
        if self.agent_uuid:
            self.switch.route(self.agent_uuid, self.queue)
        self.agent_answered = self.bridged
        self.webhook_seq = int(record.get("webhook_seq") or 0)
        try:
            self._receive_events_of(self.uuid, self.agent_uuid)
            alive = self._api(dialstring.uuid_exists(self.uuid))
            if alive == "true":
                self.customer_up = True
                if not self.bridged:
                    self.reason = "hung up by the reaper: its worker died before the call was connected"
                    self._kill(self.uuid, "NORMAL_CLEARING")
                self._follow()
            elif alive == "false" and self.state is not CallState.ENDED:
                self.reason = "the channel ended while its worker was gone; hangup details were not seen"
                self._end(Hangup("UNKNOWN"))
        finally:
            self._cleanup()
        return self.final if self.final is not None else self.store.record(self.call_id)

    # ------------------------------------------------------------------ customer leg

    def _originate_customer(self) -> None:
        spec = self.spec
        variables = {
            "origination_uuid": self.uuid,
            "originate_timeout": str(spec.ring_timeout),
            "ignore_early_media": "true",
            "origination_caller_id_number": spec.caller_id_number,
            "dialer_worker": self.options.worker_id,
            **spec.variables,
        }
        if spec.caller_id_name:
            variables["origination_caller_id_name"] = spec.caller_id_name
        command = dialstring.originate(dialstring.Gateway(spec.gateway, spec.number), variables=variables)
        if self.before_originate is not None:
            try:
                self.before_originate()
            except PacingTimeout as exc:  # claimed, but never dialled
                self.reason = f"not dialled: {exc}"
                self._end(Hangup("UNKNOWN"))
                return
        self.customer_up = True  # set before the write: if the reply is lost, the leg may still exist
        job = self.switch.bgapi(command, timeout=self.options.command_timeout)
        if self.originate_acknowledged is not None:
            self.originate_acknowledged()
        metrics.originated("customer", spec.gateway)
        self._watch_job(job, self.uuid, spec.ring_timeout)
        self._move(Trigger.ORIGINATE_SENT, originated_at=_now())

    def _watch_job(self, job: BackgroundJob, leg: str, ring_timeout: float) -> None:
        queue = self.queue
        limit = ring_timeout + self.options.hangup_grace

        def wait() -> None:
            try:
                job.get(timeout=limit)
                queue.put(JobDone(leg, None))
            except CommandError as exc:
                queue.put(JobDone(leg, (exc.reply.split() or ["UNKNOWN"])[0]))
            except ESLError as exc:  # lost link or no BACKGROUND_JOB: the events (or a GAP) will tell
                self._log("background job unresolved", leg=leg, error=str(exc))

        gevent.spawn(wait)

    def _follow(self) -> None:
        """Consume the call's queue until the customer leg has ended; every wait here is bounded."""
        started = time.monotonic()
        give_up = started + self.spec.ring_timeout + self.options.hangup_grace
        heard = started
        while self.state is not CallState.ENDED:
            now = time.monotonic()
            # Only once the leg is known to exist: before that, "no such channel" may mean "not created yet".
            if now > heard + self.options.quiet_check and self.state not in (CallState.QUEUED, CallState.ORIGINATING):
                heard = now
                self._reconcile("quiet")
            if now > give_up:
                self._give_up(now > started + self.options.max_call_seconds + self.options.hangup_grace)
                give_up = now + self.options.hangup_grace
            ringing_agent = self.agent_uuid if self.agent is not None and not self.agent_answered else None
            if ringing_agent is not None and now > self.agent_ring_deadline:
                self._kill(ringing_agent, "ORIGINATOR_CANCEL")  # the switch did not end it in time
                self._agent_failed("NO_ANSWER")
            if self.answered and not self.bridged and self.agent is None and self.agent_deadline is not None:
                if now > self.agent_deadline:
                    self._abandon()
                else:
                    self._connect_agent()
            if self.queue.empty():
                self._flush()
            try:
                item = self.queue.get(timeout=self._wait(give_up, heard))
            except Empty:
                continue
            heard = time.monotonic()
            if item is GAP:
                self._reconcile("gap")
            elif isinstance(item, JobDone):
                self._on_job(item)
            elif isinstance(item, Event):
                if item.unique_id == self.uuid:
                    self._on_customer_event(item)
                elif item.unique_id == self.agent_uuid:
                    self._on_agent_event(item)
            if self.answered or self.bridged:
                give_up = max(give_up, started + self.options.max_call_seconds)

    def _wait(self, give_up: float, heard: float) -> float:
        """Seconds until ``_follow`` has something to check: a call that only waits for its hangup (the
        most a process holds) sleeps until its next quiet check, not a second at a time."""
        if self.agent_deadline is not None and self.agent is None:
            return AGENT_POLL  # looking for a free agent
        deadline = give_up
        if self.state not in (CallState.QUEUED, CallState.ORIGINATING):
            deadline = min(deadline, heard + self.options.quiet_check)
        if self.agent_uuid is not None and self.agent is not None and not self.agent_answered:
            deadline = min(deadline, self.agent_ring_deadline)
        return max(0.0, deadline - time.monotonic()) + 0.001  # just past it: the checks are strict

    def _fail_over(self) -> bool:
        """After a network failure before the customer was reached (no 180/183/200), set up a try on the
        next gateway and return True. Only once the failed leg is known gone (at most one live dial);
        the try gets its own deterministic uuid, and the record names it before it is dialled, so a
        worker that adopts the call follows the right leg."""
        hangup = self.hangup
        if self.next_gateway is None or hangup is None or self.answered or self.ended_from not in _BEFORE_PROGRESS:
            return False
        if not is_network_failure(hangup.cause, hangup.sip_status):
            return False
        failed, failed_uuid = self.spec.gateway, self.uuid
        tried = {"gateway": failed, "uuid": failed_uuid, "cause": hangup.cause, "try": str(self.tries)}
        self._note("gateway_failed", **tried)
        if self._api(dialstring.uuid_exists(failed_uuid)) != "false":
            return False
        gateway = self.next_gateway(failed, hangup)
        if gateway is None:
            return False
        self.tries += 1
        self.switch.unroute(failed_uuid)
        self.spec = replace(self.spec, gateway=gateway)
        self.uuid = leg_uuid(self.call_id, f"customer-{self.tries}")
        self.switch.route(self.uuid, self.queue)
        self.state, self.hangup, self.ended_from = CallState.QUEUED, None, CallState.QUEUED
        self.hanging_up = None
        self._write(
            {"uuid": self.uuid, "gateway": gateway, "tries": str(self.tries), "state": CallState.QUEUED.value},
            {"event": "gateway_try", "gateway": gateway, "uuid": self.uuid, "try": str(self.tries), "at": _now()},
        )
        self._log("failing over to the next gateway", gateway=gateway, failed_gateway=failed, cause=hangup.cause)
        return True

    def _give_up(self, overdue: bool) -> None:
        """A deadline passed without the switch reporting the end: hang up; if even that is not
        reported in time, end the record ourselves."""
        if overdue or not self.customer_up:
            self.reason = "the switch never reported the end of the call"
            self._end(Hangup("UNKNOWN"))
            return
        self._log("deadline passed; hanging up")
        self.customer_up = False  # asked once; the next deadline ends the record
        self._kill(self.uuid, "ALLOTTED_TIMEOUT" if self.answered else "NO_ANSWER")

    def _on_customer_event(self, event: Event) -> None:
        trigger = EVENT_TRIGGERS.get(event.name)
        if trigger is None:
            return
        if trigger is Trigger.BRIDGE:
            # FreeSWITCH fires CHANNEL_BRIDGE on the A leg only (the customer, first in uuid_bridge).
            peer = event.bridge_b_uuid or event.other_leg_uuid
            if peer is not None and peer == self.agent_uuid and not self.bridged:
                self.bridged = True
                self.agent_deadline = None
                self._move(trigger, bridged_at=_now(), agent=self.agent or "")
            return
        if trigger is Trigger.HANGUP:
            answered_at = event.caller_time_us("Answered")
            self.answered = self.answered or bool(answered_at)
            self._end(Hangup.from_event(event))
            return
        if trigger is Trigger.ANSWER:
            self.answered = True
            self.machine = (event.variable("amd_result") or "").upper() == "MACHINE"
            # Held: written with the agent's leg, answer -> agent originate is one round trip shorter.
            self._move(trigger, answered_at=_now())
            if self.machine:
                self._log("answering machine; hanging up")
                self._kill(self.uuid, "NORMAL_CLEARING")
                return
            if self.options.hold_music:
                # Its own greenlet: it is written first (at this greenlet's next wait), but the agent search
                # does not wait for the switch's reply; answer -> agent originate is one round trip shorter.
                gevent.spawn(self._api, dialstring.uuid_broadcast(self.uuid, self.options.hold_music, "aleg"))
            self.agent_deadline = time.monotonic() + self.options.agent_wait
            self._connect_agent()
            return
        self._move(trigger)

    def _on_job(self, done: JobDone) -> None:
        if done.error is None:
            return
        if done.leg == self.uuid:
            # A leg that existed reports its own hangup (with SIP status and Q.850) before the job
            # result; without a leg (bad gateway, throttled) the job's cause is all there is.
            self.customer_up = False
            self._end(Hangup(done.error))
        elif done.leg == self.agent_uuid and not self.agent_answered:
            self._agent_failed(done.error)

    # ------------------------------------------------------------------ agent leg

    def _connect_agent(self) -> None:
        """Ring the agent reserved before dialling (progressive, preview), or reserve the next free agent and
        ring it. No free agent: try again on the next loop turn, until ``agent_deadline``.

        The customer is on the line, so no ``sofia_contact`` first: the originate of ``user/<id>`` is the same
        question put to the same authority (FreeSWITCH looks the user up and, unregistered, refuses with
        USER_NOT_REGISTERED before any channel exists: nothing rings), one round trip shorter when the phone
        is there. ``_agent_failed`` then takes the agent out, as the check would have, and rings the next."""
        if self.agent is not None and self.agent_uuid is None:
            self._ring_agent(self.agent)
        while self.agent is None and self.agent_tries < self.options.max_agent_tries:
            agent = self.store.reserve_agent(self.spec.agent_group, self.call_id, dialing_key(self.spec.campaign))
            if agent is None:
                return
            self._ring_agent(agent)

    def _ring_agent(self, agent: str) -> None:
        """Originate the agent's leg; a failure to send it releases the agent (the search goes on)."""
        agent_uuid = leg_uuid(self.call_id, f"agent-{self.agent_legs + 1}")
        variables = {
            "origination_uuid": agent_uuid,
            "originate_timeout": str(self.options.agent_ring_timeout),
            "origination_caller_id_number": self.spec.number,
            "dialer_worker": self.options.worker_id,
        }
        try:
            command = dialstring.originate(dialstring.User(agent, self.options.agent_domain), variables=variables)
        except UnsafeValueError as exc:  # an id no interface accepts (Redis written by other code): never rung
            self._log("agent id refused; skipped", agent=agent, error=str(exc))
            self._note("agent_not_registered", agent=agent)
            self.store.release_agent(agent, self.call_id, unregistered=True)
            self.agent = None
            return
        self.agent_tries += 1
        self.agent_legs += 1
        self.agent, self.agent_answered, self.agent_uuid = agent, False, agent_uuid
        self.switch.route(agent_uuid, self.queue)
        try:
            job = self.switch.bgapi(command, timeout=self.options.command_timeout)
        except ESLError as exc:
            self._agent_failed(f"originate failed: {exc}")
            return
        metrics.originated("agent")
        self._watch_job(job, self.agent_uuid, self.options.agent_ring_timeout)
        self.agent_ring_deadline = time.monotonic() + self.options.agent_ring_timeout + 2.0
        self._move(Trigger.AGENT_DIALLED, agent=agent, agent_uuid=self.agent_uuid)

    def _on_agent_event(self, event: Event) -> None:
        if event.name == "CHANNEL_ANSWER" and self.agent is not None and self.agent_uuid is not None:
            self.agent_answered = True
            answered_at = _now()
            # Bridge first: the customer has waited long enough; the records follow.
            self._api(dialstring.uuid_bridge(self.uuid, self.agent_uuid))
            on_call = self.store.on_call(self.agent, self.call_id)
            self._write(
                {"agent_answered_at": answered_at}, {"event": "agent_answer", "agent": self.agent}, [on_call], hold=True
            )
        elif event.name == "CHANNEL_HANGUP_COMPLETE":
            if self.bridged:
                self._log("agent hung up first; ending the call", logging.DEBUG)
                self._kill(self.uuid, "NORMAL_CLEARING")
                self._release_agent(missed=False)
            elif not self.agent_answered:
                self._agent_failed(event.hangup_cause or "NO_ANSWER")
            else:  # answered but the bridge never happened: the customer is still waiting
                self._release_agent(missed=False)
                self.agent_deadline = time.monotonic() + self.options.agent_wait

    def _agent_failed(self, cause: str) -> None:
        if cause == "USER_NOT_REGISTERED":  # no phone to ring: not the agent's miss, nor one of the call's tries
            self._log("agent not registered; skipped", agent=self.agent, cause=cause)
            self._note("agent_not_registered", agent=self.agent or "")
            self.agent_tries -= 1
            self._release_agent(missed=False, unregistered=True)
        else:
            self._log("agent did not answer", agent=self.agent, cause=cause)
            self._note("agent_no_answer", agent=self.agent or "", cause=cause)
            self._release_agent(missed=True)
        self.agent_deadline = time.monotonic() + self.options.agent_wait  # look for the next one

    def _release_agent(self, *, missed: bool, unregistered: bool = False) -> None:
        if self.agent is None:
            return
        self._written()  # it may set the agent's state (RINGING): the release must come after it
        wrap_up = self.options.wrap_up if self.agent_answered else 0.0  # wrap-up only after a conversation
        self.store.release_agent(self.agent, self.call_id, wrap_up=wrap_up, missed=missed, unregistered=unregistered)
        self.agent = None

    def _abandon(self) -> None:
        self._log("no agent within the window; abandoning", tries=self.agent_tries)
        self.agent_deadline = None
        self.reason = "no agent answered within the window"
        self._note("abandoned", reason=self.reason)
        if self.options.abandon_message:
            self._api(dialstring.uuid_broadcast(self.uuid, self.options.abandon_message, "aleg"))
            self._api(dialstring.sched_hangup(self.uuid, 5, "NORMAL_CLEARING"))
        else:
            self._kill(self.uuid, "NORMAL_CLEARING")

    # ------------------------------------------------------------------ recovery and ending

    def _reconcile(self, why: str) -> None:
        """Events may have been lost (``gap``: the link was re-established; ``quiet``: nothing heard for a while).
        Ask the switch: a customer leg that is gone ends the call now; one still up that we hung up is hung up
        again. A quiet check is noted only when it finds something, or long calls would fill their log."""
        exists = self._api(dialstring.uuid_exists(self.uuid))
        if why == "gap" or exists == "false":
            self._note(why, leg_exists=str(exists))
        if exists == "false":
            self.customer_up = False
            self.reason = (
                "the channel ended while the ESL link was down; hangup details were not seen"
                if why == "gap"
                else "the channel ended but its hangup event never arrived; hangup details were not seen"
            )
            self._end(Hangup("UNKNOWN"))
        elif exists == "true":
            self._hang_up_again()

    def _hang_up_again(self) -> None:
        """The customer leg is still up although we hung it up: that uuid_kill never reached the switch (the
        link dropped under it). Without this an answering machine stayed parked until ``max_call_seconds``."""
        if self.hanging_up is not None:
            self._log("customer leg still up after hangup; hanging up again", cause=self.hanging_up)
            self._kill(self.uuid, self.hanging_up)

    def _end(self, hangup: Hangup) -> None:
        if self.state is CallState.ENDED:
            return
        self.hangup = hangup
        self.ended_from = self.state
        self.customer_up = False
        self._move(Trigger.HANGUP, hangup_at=_now())

    def _kill(self, unique_id: str, cause: str) -> None:
        """Hang up a leg; one that is already gone (the switch hung it up with its peer) is no failure."""
        if unique_id == self.uuid:
            self.hanging_up = cause
        try:
            self.switch.api(dialstring.uuid_kill(unique_id, cause), self.options.command_timeout)
        except CommandError as exc:
            if "No such channel" not in exc.reply:
                self._log("switch command failed", command="uuid_kill", error=str(exc))
        except ESLError as exc:
            self._log("switch command failed", command="uuid_kill", error=str(exc))

    def _api(self, command: str) -> str | None:
        """An API command whose failure is logged, not raised: for paths that must go on regardless."""
        try:
            return self.switch.api(command, self.options.command_timeout)
        except ESLError as exc:
            self._log("switch command failed", command=command.split(" ", 1)[0], error=str(exc))
            return None

    def _cleanup(self) -> None:
        """Every exit: hang up what we started, release what we hold, write the final record."""
        try:
            if self.customer_up:
                self._kill(self.uuid, "NORMAL_CLEARING")
            if self.agent is not None and self.agent_uuid is not None:
                self._kill(self.agent_uuid, "NORMAL_CLEARING")
            self._release_agent(missed=False)
        finally:
            self.switch.unroute(*(leg for leg in (self.uuid, self.agent_uuid) if leg))
            self._stop_receiving_events()
            self._write_final()

    def _receive_events_of(self, *legs: str | None) -> None:
        """Ask the switch for the events of legs another worker dialled (see ``events_filtered_by_worker``)."""
        if not self.options.events_filtered_by_worker:
            return
        for leg in legs:
            if leg and leg not in self.filtered_legs:
                try:
                    self.switch.add_filter("Unique-ID", leg)
                    self.filtered_legs.append(leg)
                except ESLError as exc:  # the reconnect re-applies it; a GAP makes the call reconcile
                    self._log("leg filter not added", leg=leg, error=str(exc))

    def _stop_receiving_events(self) -> None:
        legs, self.filtered_legs = self.filtered_legs, []
        for leg in legs:
            try:
                self.switch.delete_filter("Unique-ID", leg)
            except ESLError as exc:
                self._log("leg filter not removed", leg=leg, error=str(exc))

    def _write_final(self) -> None:
        hangup = self.hangup or Hangup("UNKNOWN")
        outcome = classify(
            hangup.cause,
            hangup.sip_status,
            answered=self.answered,
            bridged=self.bridged,
            machine=self.machine,
        )
        final = {
            "state": CallState.ENDED.value,
            "outcome": outcome.value,
            "hangup_cause": hangup.cause,
            "q850": "" if hangup.q850 is None else str(hangup.q850),
            "sip_status": "" if hangup.sip_status is None else str(hangup.sip_status),
            "disposition": hangup.disposition or "",
            "reason": self.reason,
            "ended_at": _now(),
        }
        shown = (
            self.on_progress({"state": CallState.ENDED.value, "outcome": outcome.value}) if self.on_progress else None
        )
        note = {"event": "final", "outcome": outcome.value, "cause": hangup.cause}
        # The call no longer needs an agent: out of its campaign's dialing set (see Dispatcher).
        also: list[Write] = [SetRemove(dialing_key(self.spec.campaign), self.call_id)]
        also += [shown] if shown is not None else []
        reported = {name: value for name, value in final.items() if name not in ("state", "ended_at")}
        also += self._webhook("call.ended", final, reported)
        self._write(final, note, also, hold=True)  # with what is still held, in one round trip
        self._written()
        fields, writes = self._take_held()
        self.final = self.store.finish(self.call_id, fields, None, also=writes)
        metrics.call_ended(self.final)
        self._log("call ended", outcome=outcome.value, cause=hangup.cause, sip_status=hangup.sip_status)


def spec_from_record(record: dict[str, str]) -> CallSpec:
    """Enough of a spec to adopt an orphaned attempt (it is never dialled again)."""
    return CallSpec(
        campaign=record.get("campaign", ""),
        contact_id=record.get("contact_id", ""),
        attempt=int(record.get("attempt", "0") or 0),
        number=record.get("number", ""),
        gateway="",
        caller_id_number="",
        agent_group=record.get("agent_group", "default"),
        dial_mode=DialMode(record.get("dial_mode") or DialMode.PREDICTIVE.value),
        webhooks=record.get("webhooks") == "1",
    )
