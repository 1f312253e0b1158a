"""The simulated switch core: channels, originate, callee and agent behaviour, answer, hangup
(applications and bridges are in :mod:`.bridging`, the directory of agents in :mod:`.agents`).

Nothing here touches a socket. Each step of a call is a gevent loop timer (a C-level callback, no
greenlet and no sleeping loop per channel), so thousands of concurrent channels cost little more
than their dictionaries. Events go to :class:`~dialer.sim.bus.Bus`, which only gets them built
when some connection is listening.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import gevent

from .agents import Directory
from .bridging import Bridging
from .bus import Bus, Clock, Sent, SimEvent
from .channels import CALLSTATE_NUMBER, Leg
from .dialplan import DialError, PendingOriginate, Reply, Target, parse_originate, seconds
from .record import OriginateRecord, Record
from .scenarios import Agent, Callee, CalleeBook, Scenario

log = logging.getLogger(__name__)

UUID_IN_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# What each failing callee answers: (hangup cause, SIP status, sip_hangup_disposition).
FAILURES = {
    "busy": ("USER_BUSY", 486, "recv_refuse"),
    "reject": ("CALL_REJECTED", 603, "recv_refuse"),
    "invalid": ("UNALLOCATED_NUMBER", 404, "recv_refuse"),
    "network_failure": ("NORMAL_TEMPORARY_FAILURE", 503, "recv_refuse"),
}
SIP_PORTS = {"pstn": 5090, "pstn2": 5091}

# Over sessions-per-second or max-sessions FreeSWITCH refuses to create the session
# (switch_core_session_request_uuid: "Throttle Error!" / "Over Session Limit!"), and mod_sofia's
# outgoing_channel then returns its default cause, DESTINATION_OUT_OF_ORDER: the originate fails
# at once with that cause and no channel event is ever fired. We do the same.
LIMIT_CAUSE = "DESTINATION_OUT_OF_ORDER"


class Switch(Bridging):
    def __init__(self, scenario: Scenario | None = None, *, hostname: str = "sim", seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.bus = Bus(self.rng)
        self.clock = Clock()
        self.record = Record()
        self.hostname = hostname
        self.channels: dict[str, Leg] = {}
        self.load(scenario or Scenario())
        self.core_uuid = str(uuidlib.uuid4())
        self.started = time.time()
        self.sessions_since_startup = 0
        self.peak_sessions = 0
        self._sps_second = 0
        self._sps_count = 0
        self._loop: Any = gevent.get_hub().loop
        self.refused = 0

    # ------------------------------------------------------------------ configuration

    def load(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.callees = CalleeBook(scenario)
        self.gateways = set(scenario.gateways)
        if not hasattr(self, "directory"):
            self.directory = Directory(self.fire)
        self.directory.load(scenario.agents, scenario.domain)
        self.agents = self.directory.agents

    # ------------------------------------------------------------------ events

    def fire(
        self,
        name: str,
        leg: Leg | None = None,
        *,
        before: tuple[tuple[str, str], ...] = (),
        after: tuple[tuple[str, str], ...] = (),
        variables: bool = False,
        subclass: str | None = None,
        body: str | None = None,
        calling: tuple[str, str, str] = ("switch_channel.c", "switch_channel_perform_event", "0"),
        sent: Sent | None = None,
    ) -> None:
        seq = self.bus.next_sequence()
        if not self.bus.interested(name, subclass):
            if sent is not None:
                sent(time.time())
            return
        stamp_us, local, gmt = self.clock.stamp()
        headers: list[tuple[str, str]] = [("Event-Name", name)]
        if subclass:
            headers.append(("Event-Subclass", subclass))
        headers += (
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", "127.0.0.1"),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", local),
            ("Event-Date-GMT", gmt),
            ("Event-Date-Timestamp", str(stamp_us)),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", calling[2]),
            ("Event-Sequence", str(seq)),
        )
        headers += before
        if leg is not None:
            leg.channel_headers(headers)
        headers += after
        if variables and leg is not None:
            leg.variable_headers(headers)
        self.bus.publish(SimEvent(name, headers, body, subclass), sent=sent)

    def _state(self, leg: Leg, state: str) -> None:
        leg.state = state
        self.fire(
            "CHANNEL_STATE", leg, calling=("switch_channel.c", "switch_channel_perform_set_running_state", "2408")
        )

    def _callstate(self, leg: Leg, call_state: str) -> None:
        before = (
            ("Original-Channel-Call-State", leg.call_state),
            ("Channel-Call-State-Number", CALLSTATE_NUMBER[call_state]),
        )
        leg.call_state = call_state
        self.fire("CHANNEL_CALLSTATE", leg, before=before,
                  calling=("switch_channel.c", "switch_channel_perform_set_callstate", "301"))  # fmt: skip

    def fire_api(self, command: str, argument: str) -> None:
        after = (("API-Command", command),) + ((("API-Command-Argument", argument),) if argument else ())
        self.fire("API", after=after, calling=("switch_loadable_module.c", "switch_api_execute", "2954"))

    def background_job(self, job_uuid: str, command: str, argument: str, body: str) -> None:
        after: tuple[tuple[str, str], ...] = (("Job-UUID", job_uuid), ("Job-Command", command))
        if argument:
            after += (("Job-Command-Arg", argument),)
        self.fire("BACKGROUND_JOB", after=after, body=body, calling=("mod_event_socket.c", "api_exec", "1572"))

    # ------------------------------------------------------------------ timers

    def after(self, leg: Leg | None, seconds: float, step: Callable[..., None], *args: Any) -> Any:
        """Run ``step(*args)`` in ``seconds`` on a loop timer; a leg's timers die with the leg."""
        timer = self._loop.timer(max(0.0, seconds))
        if leg is not None:
            leg.timers.append(timer)
        timer.start(self._run_step, timer, leg, step, args)
        return timer

    def _run_step(self, timer: Any, leg: Leg | None, step: Callable[..., None], args: tuple[Any, ...]) -> None:
        timer.close()
        if leg is not None:
            if timer in leg.timers:
                leg.timers.remove(timer)
            if leg.gone:
                return
        try:
            step(*args)
        except Exception:  # one broken call must not take the simulator down
            log.exception("simulated call step %s failed", getattr(step, "__name__", step))

    # ------------------------------------------------------------------ limits

    def _admit(self) -> str | None:
        """None when a new session may be created, else the cause the originate fails with.

        FreeSWITCH refills its sessions-per-second budget once a second; a window per monotonic
        second is the same rule (at most ``sessions_per_second`` sessions start in any such second).
        """
        second = int(time.monotonic())
        if second != self._sps_second:
            self._sps_second, self._sps_count = second, 0
        limits = self.scenario.limits
        if self._sps_count >= limits.sessions_per_second or len(self.channels) + 1 > limits.max_sessions:
            self.refused += 1
            return LIMIT_CAUSE
        self._sps_count += 1
        return None

    # ------------------------------------------------------------------ originate

    def originate(self, argument: str, reply: Reply, job_uuid: str | None = None) -> None:
        """``originate <argument>``; ``reply`` gets ``+OK <uuid>\\n`` or ``-ERR <CAUSE>\\n`` when known."""
        try:
            request = parse_originate(argument)
        except DialError as exc:
            reply(f"-ERR {exc.cause}\n")
            return
        self._note_bridge_request(argument)
        timeout = seconds(request.variables.get("originate_timeout"), 60.0)
        pending = PendingOriginate(
            request, argument, reply, job_uuid, list(request.targets),
            ignore_early_media=request.variables.get("ignore_early_media", "false") == "true",
            timeout_s=timeout,
        )  # fmt: skip
        self._try_next(pending)

    def _try_next(self, pending: PendingOriginate) -> None:
        if not pending.targets:
            self._finish(pending, None, pending.causes[-1] if pending.causes else "DESTINATION_OUT_OF_ORDER")
            return
        target = pending.targets.pop(0)
        cause = self._start_leg(pending, target)
        if cause is not None:
            pending.causes.append(cause)
            self._try_next(pending)

    def _start_leg(self, pending: PendingOriginate, target: Target) -> str | None:
        """Record the attempt, then create and dial the leg; a cause when no channel could be created.

        Every attempt is recorded, refused ones too (with their ``-ERR``), so a test can see a dial
        that the switch refused as well as one it placed.
        """
        variables = {**pending.request.variables, **target.variables}
        uuid = variables.get("origination_uuid") or str(uuidlib.uuid4())
        endpoint = f"gateway/{target.name}" if target.kind == "gateway" else f"user/{target.name}"
        entry = OriginateRecord(time.time(), uuid, target.number, endpoint, dict(variables), pending.job_uuid)
        cause = self._refusal(target, uuid)
        self.record.add(entry, live=cause is None)
        if cause is not None:
            entry.result, entry.placed = f"-ERR {cause}", False
            return cause
        self._create_leg(pending, target, variables, uuid)
        return None

    def _refusal(self, target: Target, uuid: str) -> str | None:
        """Why no session can be created for this target, as the cause FreeSWITCH reports, or None."""
        if target.kind == "gateway" and target.name not in self.gateways:
            return "INVALID_GATEWAY"
        if target.kind == "user":
            agent = self.agents.get(target.name)
            if agent is None or not agent.registered:
                return "USER_NOT_REGISTERED"
        if uuid in self.channels:  # "Duplicate UUID!": the session cannot be created
            return LIMIT_CAUSE
        return self._admit()

    def _create_leg(self, pending: PendingOriginate, target: Target, variables: dict[str, str], uuid: str) -> None:
        agent = self.agents.get(target.name) if target.kind == "user" else None
        now_us = self.clock.stamp()[0]
        if agent is not None:
            domain = target.domain or self.scenario.domain
            name = f"sofia/dialer/{target.name}@127.0.0.1:5070"
            leg = Leg(uuid, target.name, name, now_us, presence_id=f"{target.name}@{domain}", user=target.name)
            leg.agent = agent.config
            leg.dialplan = "inline" if pending.bridge_from is not None else None
            leg.cid_name_shown = leg.network = True
        else:
            leg = Leg(uuid, target.number, f"sofia/dialer/{target.number}", now_us, gateway=target.name)
            leg.callee = self.callees.callee_for(target.number, target.name)
        leg.cid_number = variables.get("origination_caller_id_number", leg.cid_number)
        leg.cid_name = variables.get("origination_caller_id_name", leg.cid_name)
        leg.variables = dict(variables)
        leg.job = pending
        a_leg = pending.bridge_from
        if a_leg is not None:
            leg.call_uuid = a_leg.uuid
            leg.cid_number = a_leg.number
            leg.other, leg.other_type = a_leg, "originator"
        self.channels[uuid] = leg
        self.sessions_since_startup += 1
        self.peak_sessions = max(self.peak_sessions, len(self.channels))
        port = SIP_PORTS.get(target.name, 5070 if agent else 5090)
        leg.set_create_variables(port)
        self.fire("CHANNEL_OUTGOING", leg,
                  calling=("switch_core_session.c", "switch_core_session_outgoing_channel", "768"))  # fmt: skip
        self._state(leg, "CS_INIT")
        run = ("switch_core_state_machine.c", "switch_core_session_run", "626")
        self.fire("CHANNEL_CREATE", leg, variables=True, calling=run)
        self.fire("CHANNEL_ORIGINATE", leg, variables=True, calling=run)
        self._state(leg, "CS_ROUTING")
        if leg.presence_id:
            self._presence(leg)
        self._state(leg, "CS_CONSUME_MEDIA")
        # leg_timeout ([] per leg) overrides the originate's timeout, as in switch_ivr_originate
        timeout = seconds(variables.get("leg_timeout") or variables.get("call_timeout"), pending.timeout_s)
        self.after(leg, timeout, self._originate_timeout, leg)
        if agent is not None:
            self._dial_agent(leg, agent.config)
        else:
            self._dial_callee(leg, leg.callee or Callee())

    def _dial_callee(self, leg: Leg, callee: Callee) -> None:
        outcome = callee.outcome
        if outcome in ("invalid", "network_failure"):  # refused before any ringing
            cause, status, disposition = FAILURES[outcome]
            delay = callee.delay(callee.ring_ms + callee.answer_ms, self.rng)
            self.after(leg, delay, self._fail, leg, cause, status, disposition)
            return
        self.after(leg, callee.delay(callee.ring_ms, self.rng), self._ring, leg, callee)

    def _dial_agent(self, leg: Leg, agent: Agent) -> None:
        # A sip.js phone answers 180 and 183 at once, like the SIPp phone of the recordings.
        self.after(leg, 0.0, self._ring_agent, leg, agent)

    def _presence(self, leg: Leg) -> None:
        info = {"hangup": "terminated", "answered": "active"}.get(leg.answer_state, "progressing")
        after = (
            ("proto", "any"), ("login", "src/switch_channel.c"), ("from", leg.presence_id or ""),
            ("rpid", "unknown"), ("status", leg.state), ("event_type", "presence"), ("alt_event_type", "dialog"),
            ("presence-call-info-state", info), ("presence-call-direction", "outbound"), ("event_count", "0"),
            ("Presence-Calling-File", "src/switch_core_state_machine.c"),
            ("Presence-Calling-Function", "check_presence"), ("Presence-Calling-Line", "521"),
        )  # fmt: skip
        self.fire("PRESENCE_IN", leg, after=after,
                  calling=("switch_channel.c", "switch_channel_perform_presence", "805"))  # fmt: skip

    def _ring_agent(self, leg: Leg, agent: Agent) -> None:
        self._progress(leg)
        self._early_media(leg)
        if agent.answer_ms is not None:
            self.after(leg, agent.answer_ms / 1000.0, self._answer, leg)

    def _ring(self, leg: Leg, callee: Callee) -> None:
        self._progress(leg)
        if callee.outcome in ("busy", "reject"):
            cause, status, disposition = FAILURES[callee.outcome]
            self.after(leg, callee.delay(callee.answer_ms, self.rng), self._fail, leg, cause, status, disposition)
        elif callee.outcome == "no_answer":
            return  # rings until the originate timeout
        elif callee.early_media:
            self.after(leg, callee.delay(callee.early_media_ms, self.rng), self._early_then_answer, leg, callee)
        else:
            self.after(leg, callee.delay(callee.answer_ms, self.rng), self._answer, leg)

    def _early_then_answer(self, leg: Leg, callee: Callee) -> None:
        self._early_media(leg)
        self.after(leg, callee.delay(callee.answer_ms, self.rng), self._answer, leg)

    def _progress(self, leg: Leg) -> None:
        leg.progress_us = self.clock.stamp()[0]
        leg.network = True
        if "sip_call_id" not in leg.variables:
            leg.set_progress_variables(SIP_PORTS.get(leg.gateway or "", 5070))
        self.fire("CHANNEL_PROGRESS", leg, variables=True,
                  calling=("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "1230"))  # fmt: skip
        self._callstate(leg, "RINGING")

    def _early_media(self, leg: Leg) -> None:
        leg.progress_media_us = self.clock.stamp()[0]
        leg.answer_state = "early"
        leg.set_early_media_variables()
        self.fire("CHANNEL_PROGRESS_MEDIA", leg, variables=True,
                  calling=("switch_channel.c", "switch_channel_perform_mark_pre_answered", "3652"))  # fmt: skip
        self._callstate(leg, "EARLY")
        self._codec(leg)
        pending = leg.job
        if isinstance(pending, PendingOriginate) and not pending.ignore_early_media and pending.bridge_from is None:
            # Without ignore_early_media the originate returns at early media (answer_earlymedia_plain).
            self._originate_succeeded(leg, pending, call_update_direction="RECV")

    def _codec(self, leg: Leg) -> None:
        leg.media = True
        read = (("channel-read-codec-name", "PCMU"), ("channel-read-codec-rate", "8000"),
                ("channel-read-codec-bit-rate", "64000"))  # fmt: skip
        self.fire("CODEC", leg, after=read,
                  calling=("switch_core_codec.c", "switch_core_session_set_real_read_codec", "168"))  # fmt: skip
        self.fire("CODEC", leg, after=(("Channel-Write-codec-bit-rate", "64000"),),
                  calling=("switch_core_codec.c", "switch_core_session_set_write_codec", "450"))  # fmt: skip

    def _answer(self, leg: Leg) -> None:
        if not leg.media:
            self._codec(leg)
        leg.set_media_variables()
        leg.answered_us = self.clock.stamp()[0]
        leg.answer_state = "answered"
        leg.sip_status = 200
        leg.variables["endpoint_disposition"] = "ANSWER"
        callee = leg.callee
        if callee is not None and callee.outcome == "machine":
            # The marker the dialer reads, as an AMD module would set it before the dialer sees the answer.
            leg.variables["amd_result"] = "MACHINE"
            leg.variables["amd_cause"] = "LONGGREETING"
        entry = self.record.get(leg.uuid)
        # Stamped when the event is written to a socket, not when it is built: the record's answer-to-bridge
        # time is then the client's alone, without the simulator's own work of laying out and queueing it.
        self.fire("CHANNEL_ANSWER", leg, variables=True, sent=entry.answer_sent if entry is not None else None,
                  calling=("switch_channel.c", "switch_channel_perform_mark_answered", "3846"))  # fmt: skip
        if leg.presence_id:
            self._presence(leg)
        self._callstate(leg, "ACTIVE")
        pending = leg.job
        if isinstance(pending, PendingOriginate) and not pending.done:
            if pending.bridge_from is not None:
                self._bridge_answered(pending.bridge_from, leg, pending)
            else:
                self._originate_succeeded(leg, pending, call_update_direction="RECV")
        if callee is not None and callee.hangup_after_ms is not None:
            self.after(leg, callee.delay(callee.hangup_after_ms, self.rng), self.remote_hangup, leg)
        if leg.agent is not None and leg.agent.talk_ms is not None:
            self.after(leg, leg.agent.talk_ms / 1000.0, self.remote_hangup, leg)

    def _originate_succeeded(self, leg: Leg, pending: PendingOriginate, call_update_direction: str) -> None:
        leg.flipped = leg.cid_name_shown = True
        leg.callee_name_shown = False
        leg.hit_dialplan = True
        leg.variables.update({"pre_transfer_caller_id_number": leg.cid_number, "channel_cid_flipped": "yes"})
        self.fire("CALL_UPDATE", leg, before=(("Direction", call_update_direction),), variables=True,
                  calling=("switch_channel.c", "switch_channel_flip_cid", "3277"))  # fmt: skip
        self._finish(pending, leg, None)
        request = pending.request
        self._execute(leg, request.application, request.application_args)

    def _finish(self, pending: PendingOriginate, leg: Leg | None, cause: str | None) -> None:
        """Answer the originate command once: ``+OK <uuid>`` or ``-ERR <cause>``."""
        if pending.done:
            return
        pending.done = True
        if leg is not None:
            leg.job = None
        body = f"+OK {leg.uuid}\n" if leg is not None and cause is None else f"-ERR {cause}\n"
        entry = self.record.get(leg.uuid) if leg is not None else None
        if entry is not None and not entry.result:
            entry.result = body.strip()
        if pending.bridge_from is None:
            self.fire_api("originate", pending.command_arg)
        pending.reply(body)

    def remote_hangup(self, leg: Leg) -> None:
        """The far end sends BYE."""
        leg.disposition, leg.sip_status = "recv_bye", 200
        self.hangup(leg, "NORMAL_CLEARING")

    def _fail(self, leg: Leg, cause: str, status: int, disposition: str) -> None:
        leg.sip_status, leg.disposition = status, disposition
        if "sip_call_id" not in leg.variables:  # the final response still brings the dialog's details
            leg.network = True
            leg.set_progress_variables(SIP_PORTS.get(leg.gateway or "", 5070))
        self.hangup(leg, cause)

    def _originate_timeout(self, leg: Leg) -> None:
        if leg.answered_us or leg.job is None:
            return
        leg.sip_status, leg.disposition = 487, "send_cancel"
        self.hangup(leg, "NO_ANSWER")

    def hangup(self, leg: Leg, cause: str = "NORMAL_CLEARING") -> None:
        """Hang a leg up with the real event sequence; a bridged peer follows with NORMAL_CLEARING."""
        if leg.gone:
            return
        leg.gone = True
        for timer in leg.timers:
            timer.close()
        leg.timers.clear()
        now_us = self.clock.stamp()[0]
        leg.hangup_cause, leg.hangup_us, leg.answer_state = cause, now_us, "hangup"
        if leg.disposition is None:
            leg.disposition = "send_bye" if leg.answered_us else "send_cancel"
        if leg.sip_status is None and not leg.answered_us and leg.disposition == "send_cancel":
            leg.sip_status = 487
        leg.variables["hangup_cause"] = cause
        self.fire("CHANNEL_HANGUP", leg, variables=True,
                  calling=("switch_channel.c", "switch_channel_perform_hangup", "3081"))  # fmt: skip
        peer = leg.bridged
        b_side_peer: Leg | None = None
        if peer is not None:
            leg.bridged = peer.bridged = None  # the peer's own hangup must not come back here
            if leg.other_type == "originator":
                # The B leg went first: the A leg's bridge ends now, and the A leg hangs up once
                # this leg is gone (nothing follows the bridge in its dialplan).
                self._unbridge(peer, leg)
                b_side_peer = peer
            else:
                self.hangup(peer, "NORMAL_CLEARING")
                self._unbridge(leg, peer)
        self._unpark(leg)
        self._state(leg, "CS_HANGUP")
        self._callstate(leg, "HANGUP")
        if leg.presence_id:
            self._presence(leg)
        self._state(leg, "CS_REPORTING")
        leg.set_hangup_variables(now_us)
        entry = self.record.get(leg.uuid)
        if entry is not None:
            entry.hangup_cause = cause
        self.fire("CHANNEL_HANGUP_COMPLETE", leg, variables=True,
                  calling=("switch_core_state_machine.c", "switch_core_session_reporting_state", "1034"))  # fmt: skip
        pending = leg.job
        if isinstance(pending, PendingOriginate):
            leg.job = None
            if entry is not None and not entry.result:
                entry.result = f"-ERR {cause}"  # this leg failed, whatever the next failover leg does
            pending.causes.append(cause)
            if pending.targets and not pending.done:
                self._try_next(pending)
            else:
                self._finish(pending, None, cause)
        self.fire("CHANNEL_DESTROY", leg, variables=True,
                  calling=("switch_core_session.c", "switch_core_session_perform_destroy", "1584"))  # fmt: skip
        self._state(leg, "CS_DESTROY")
        self.channels.pop(leg.uuid, None)
        if b_side_peer is not None:
            self._after_bridge(b_side_peer)

    def hupall(self, cause: str) -> None:
        for leg in list(self.channels.values()):
            self.hangup(leg, cause)

    def sched_hangup(self, seconds: float, uuid: str, cause: str) -> bool:
        leg = self.channels.get(uuid)
        if leg is None:
            return False
        self.after(leg, seconds, self.hangup, leg, cause)
        return True

    def _note_bridge_request(self, text: str) -> None:
        """An originate or transfer naming an existing leg (``&bridge``, ``uuid_bridge`` vars ...)."""
        now = time.time()
        for found in UUID_IN_TEXT.findall(text):
            leg = self.channels.get(found)
            if leg is not None and leg.answered_us:
                self.record.bridge_requested(found, now)

    # ------------------------------------------------------------------ agents (the directory)

    def register(self, agent_id: str, expires: int = 3600) -> None:
        self.directory.register(agent_id, expires)

    def unregister(self, agent_id: str, *, expired: bool = False) -> bool:
        return self.directory.unregister(agent_id, expired=expired)

    def contact(self, agent_id: str) -> str:
        return self.directory.contact(agent_id)

    # ------------------------------------------------------------------ restart and stats

    def reset(self) -> None:
        """All channels gone without a single event, as after a crash and restart; a new Core-UUID."""
        for leg in list(self.channels.values()):
            leg.gone = True
            for timer in leg.timers:
                timer.close()
            leg.timers.clear()
            pending = leg.job
            if isinstance(pending, PendingOriginate) and pending.job_uuid is None and pending.bridge_from is None:
                # a blocking ``api originate`` must not wait forever for a channel that no longer exists
                pending.done = True
                pending.reply("-ERR SYSTEM_SHUTDOWN\n")
        self.channels.clear()
        self.core_uuid = str(uuidlib.uuid4())
        self.started = time.time()
        self.sessions_since_startup = 0
        self.peak_sessions = 0

    def stats(self) -> dict[str, Any]:
        return {
            "channels": len(self.channels),
            "sessions_since_startup": self.sessions_since_startup,
            "peak_sessions": self.peak_sessions,
            "originates": len(self.record.originates),
            "refused_by_limits": self.refused,
            "events_published": self.bus.published,
            "events_lost": self.bus.lost,
            "event_sequence": self.bus.sequence,
            "core_uuid": self.core_uuid,
            "registered_agents": self.directory.registered_ids(),
        }
