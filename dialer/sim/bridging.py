"""Applications on answered legs and the bridges between legs: park, bridge, playback, hangup,
``uuid_bridge``, ``uuid_transfer ... inline``, and what happens to an A leg when its B leg leaves.

A mixin of :class:`~dialer.sim.switch.Switch`: the members it uses from the switch core are declared
under ``TYPE_CHECKING`` below, so mypy checks both sides.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .channels import Leg
from .dialplan import DialError, Originate, PendingOriginate, parse_inline, parse_targets, seconds

if TYPE_CHECKING:
    from .bus import Clock
    from .record import Record
    from .scenarios import Scenario


class Bridging:
    if TYPE_CHECKING:
        channels: dict[str, Leg]
        record: Record
        clock: Clock
        scenario: Scenario

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
        ) -> None: ...
        def after(self, leg: Leg | None, seconds: float, step: Callable[..., None], *args: Any) -> Any: ...
        def hangup(self, leg: Leg, cause: str = "NORMAL_CLEARING") -> None: ...
        def _state(self, leg: Leg, state: str) -> None: ...
        def _callstate(self, leg: Leg, call_state: str) -> None: ...
        def _try_next(self, pending: PendingOriginate) -> None: ...
        def _finish(self, pending: PendingOriginate, leg: Leg | None, cause: str | None) -> None: ...
        def _note_bridge_request(self, text: str) -> None: ...

    # ------------------------------------------------------------------ applications

    def _execute(self, leg: Leg, application: str, args: str) -> None:
        """Run the originate's application (or one step of an inline dialplan) on an answered leg."""
        if leg.state != "CS_EXECUTE":
            self._state(leg, "CS_EXECUTE")
        leg.application, leg.application_data = application, args
        leg.application_uuid = str(uuidlib.uuid4())
        leg.variables["current_application"] = application
        if args:
            leg.variables["current_application_data"] = args
        after: tuple[tuple[str, str], ...] = (("Application", application),)
        if args:
            after += (("Application-Data", args),)
        after += (("Application-UUID", leg.application_uuid),)
        self.fire("CHANNEL_EXECUTE", leg, after=after, variables=True,
                  calling=("switch_core_session.c", "switch_core_session_exec", "2941"))  # fmt: skip
        if application == "park":
            leg.parked = True
            self.fire("CHANNEL_PARK", leg, variables=True, calling=("switch_ivr.c", "switch_ivr_park", "996"))
        elif application == "bridge":
            self._bridge_app(leg, args)
        elif application == "hangup":
            self.hangup(leg, args or "NORMAL_CLEARING")
        elif application in ("playback", "sleep", "answer"):
            # playback "plays" for a second; sleep takes its milliseconds; answer (already answered) is instant
            duration = {"playback": 1.0, "answer": 0.0}.get(application, seconds(args, 1000.0) / 1000.0)
            self.after(leg, duration, self._app_done, leg, "FILE PLAYED")
        else:
            self.after(leg, 0.0, self._app_done, leg, "")

    def run_application(self, leg: Leg, application: str, args: str) -> None:
        """An application sent by ``sendmsg execute``: it interrupts the park, as in FreeSWITCH."""
        self._unpark(leg)
        self._execute(leg, application, args)

    def _app_done(self, leg: Leg, response: str) -> None:
        self._execute_complete(leg, response)
        self._next_step(leg)

    def _execute_complete(self, leg: Leg, response: str = "_none_") -> None:
        if not leg.application:
            return
        after: tuple[tuple[str, str], ...] = (("Application", leg.application),)
        if leg.application_data:
            after += (("Application-Data", leg.application_data),)
        after += (("Application-Response", response), ("Application-UUID", leg.application_uuid))
        self.fire("CHANNEL_EXECUTE_COMPLETE", leg, after=after, variables=True,
                  calling=("switch_core_session.c", "switch_core_session_exec", "2977"))  # fmt: skip
        leg.variables["last_app"] = leg.application
        leg.application = leg.application_data = ""

    def _unpark(self, leg: Leg) -> None:
        if leg.parked:
            leg.parked = False
            self.fire("CHANNEL_UNPARK", leg, variables=True, calling=("switch_ivr.c", "switch_ivr_park", "1180"))
        self._execute_complete(leg)

    def _bridge_app(self, a_leg: Leg, dial: str) -> None:
        """``bridge <dial string>`` on an answered A leg: dial B, bridge when it answers."""
        self._callstate(a_leg, "RING_WAIT")
        try:
            variables, targets = parse_targets(dial)
        except DialError as exc:
            self._bridge_failed(a_leg, exc.cause)
            return
        request = Originate(variables, targets, "park", "")
        timeout = seconds(variables.get("call_timeout") or variables.get("originate_timeout"), 60.0)
        pending = PendingOriginate(request, dial, lambda body: None, None, list(targets), True, timeout, a_leg)
        pending.reply = lambda body: self._bridge_result(a_leg, body)
        self._try_next(pending)

    def _bridge_result(self, a_leg: Leg, body: str) -> None:
        if body.startswith("-ERR") and not a_leg.gone:
            self._bridge_failed(a_leg, body[4:].strip())

    def _bridge_failed(self, a_leg: Leg, cause: str) -> None:
        a_leg.variables.update({"originate_disposition": cause, "DIALSTATUS": cause})
        self._execute_complete(a_leg, cause)
        if a_leg.variables.get("park_after_bridge") == "true":
            self._execute(a_leg, "park", "")
        elif a_leg.variables.get("continue_on_fail") == "true":
            self._next_step(a_leg)  # the dialplan goes on with its next application, if any
        else:
            # No continue_on_fail: the bridge application hangs the caller up with the B leg's cause.
            self.hangup(a_leg, cause)

    def _next_step(self, leg: Leg) -> None:
        """Run the inline dialplan's next application; past the last one the channel hangs up."""
        if leg.next_steps:
            application, args = leg.next_steps.pop(0)
            self._execute(leg, application, args)
        else:
            self.hangup(leg, "NORMAL_CLEARING")

    def _bridge_answered(self, a_leg: Leg, b_leg: Leg, pending: PendingOriginate) -> None:
        self._finish(pending, b_leg, None)
        if a_leg.gone:
            self.hangup(b_leg, "ORIGINATOR_CANCEL")
            return
        self._callstate(a_leg, "ACTIVE")
        self.fire("CHANNEL_OUTGOING", b_leg,
                  calling=("switch_core_session.c", "switch_core_session_outgoing_channel", "768"))  # fmt: skip
        self._link(a_leg, b_leg)
        dialed = {"dialed_user": b_leg.user or b_leg.number, "dialed_domain": self.scenario.domain}
        b_leg.variables.update({**dialed, "bridge_uuid": a_leg.uuid, "signal_bond": a_leg.uuid})
        a_leg.variables.update(dialed)
        a_leg.variables["originated_legs"] = f"ARRAY::{b_leg.uuid};{b_leg.channel_name};{b_leg.number}"
        a_leg.variables["originate_causes"] = f"ARRAY::{b_leg.uuid};NONE"
        a_leg.variables.update({"bridge_uuid": b_leg.uuid, "signal_bond": b_leg.uuid})
        a_leg.variables.update({"originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS"})
        self._bridge_events(a_leg, b_leg)
        self._state(b_leg, "CS_EXCHANGE_MEDIA")
        self._call_updates(a_leg, b_leg)

    def _link(self, a_leg: Leg, b_leg: Leg) -> None:
        now_us = self.clock.stamp()[0]
        a_leg.other, a_leg.other_type, a_leg.bridged = b_leg, "originatee", b_leg
        b_leg.other, b_leg.other_type, b_leg.bridged = a_leg, "originator", a_leg
        a_leg.bridged_us = b_leg.bridged_us = now_us
        a_leg.callee_name_shown = b_leg.callee_name_shown = True
        b_leg.call_uuid = a_leg.uuid

    def _bridge_events(self, a_leg: Leg, b_leg: Leg) -> None:
        now = time.time()
        for leg in (a_leg, b_leg):
            entry = self.record.get(leg.uuid)
            if entry is not None and entry.bridged_at is None:
                entry.bridged_at = now
        a_leg.variables["bridge_channel"] = b_leg.channel_name
        self.fire("CHANNEL_BRIDGE", a_leg, before=self._bridge_ids(a_leg, b_leg), variables=True,
                  calling=("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1640"))  # fmt: skip

    @staticmethod
    def _bridge_ids(a_leg: Leg, b_leg: Leg) -> tuple[tuple[str, str], ...]:
        return (("Bridge-A-Unique-ID", a_leg.uuid), ("Bridge-B-Unique-ID", b_leg.uuid))

    def _call_updates(self, a_leg: Leg, b_leg: Leg) -> None:
        update = ("switch_channel.c", "switch_channel_flip_cid", "3277")
        self.fire("CALL_UPDATE", b_leg, before=(("Direction", "SEND"),), variables=True, calling=update)
        self.fire("CALL_UPDATE", a_leg, before=(("Direction", "SEND"),), variables=True, calling=update)

    # ------------------------------------------------------------------ commands on live channels

    def uuid_bridge(self, a_uuid: str, b_uuid: str) -> str:
        a_leg, b_leg = self.channels.get(a_uuid), self.channels.get(b_uuid)
        if a_leg is None or b_leg is None or a_leg is b_leg:
            return "-ERR Invalid uuid\n"
        now = time.time()
        self.record.bridge_requested(a_uuid, now)
        self.record.bridge_requested(b_uuid, now)
        # uuid_bridge transfers both legs to each other first: the profiles change before the park ends
        now_us = self.clock.stamp()[0]
        a_leg.other, a_leg.other_type = b_leg, "originatee"
        b_leg.other, b_leg.other_type = a_leg, "originator"
        for leg, peer in ((a_leg, b_leg), (b_leg, a_leg)):
            leg.transfer_us = now_us
            leg.transfer_source = f"{now_us // 1_000_000}:{uuidlib.uuid4()}:uuid_br:{peer.uuid}"
            leg.variables["transfer_source"] = leg.transfer_source
        for leg in (b_leg, a_leg):
            self._unpark(leg)
            self._state(leg, "CS_HIBERNATE")
            self._state(leg, "CS_RESET")
        self._state(a_leg, "CS_SOFT_EXECUTE")
        self._state(b_leg, "CS_SOFT_EXECUTE")
        exec_ = ("switch_core_session.c", "switch_core_session_exec", "2941")
        for leg, peer in ((a_leg, b_leg), (b_leg, a_leg)):
            after = (("Application", "uuid_bridge"), ("Application-Data", peer.uuid),
                     ("Application-UUID", str(uuidlib.uuid4())))  # fmt: skip
            self.fire("CHANNEL_EXECUTE", leg, after=after, variables=True, calling=exec_)
        self._link(a_leg, b_leg)
        self._bridge_events(a_leg, b_leg)
        self._state(b_leg, "CS_EXCHANGE_MEDIA")
        self._call_updates(a_leg, b_leg)
        return f"+OK {b_uuid}\n"

    def uuid_transfer(self, uuid: str, destination: str, dialplan: str) -> str:
        leg = self.channels.get(uuid)
        if leg is None:
            return "-ERR No such channel!\n"
        self.record.bridge_requested(uuid, time.time())
        self._note_bridge_request(destination)
        self.after(leg, 0.0, self._transfer, leg, destination, dialplan)
        return "+OK\n"

    def _transfer(self, leg: Leg, destination: str, dialplan: str) -> None:
        other = leg.bridged
        if other is not None:
            self._unbridge(leg, other)
            self.hangup(other, "NORMAL_CLEARING")
        # the new caller profile is in place before the park ends, so UNPARK already carries it
        leg.transfer_us = self.clock.stamp()[0]
        leg.transfer_source = f"{leg.transfer_us // 1_000_000}:{uuidlib.uuid4()}:uuid_br:{leg.uuid}"
        leg.dialplan = dialplan
        leg.rdnis = True
        leg.variables.update({"max_forwards": "69", "transfer_source": leg.transfer_source})
        self._unpark(leg)
        self._state(leg, "CS_ROUTING")
        leg.rdnis = False
        self._state(leg, "CS_EXECUTE")
        steps = (parse_inline(destination) if dialplan == "inline" else []) or [("park", "")]
        application, args = steps[0]
        leg.next_steps = steps[1:]
        self._execute(leg, application, args)

    def _unbridge(self, leg: Leg, other: Leg) -> None:
        a_leg, b_leg = (leg, other) if leg.other_type == "originatee" else (other, leg)
        a_leg.variables.update({"last_bridge_to": b_leg.uuid, "last_bridge_role": "originator"})
        a_leg.variables["bridge_hangup_cause"] = b_leg.hangup_cause or "NORMAL_CLEARING"
        b_leg.variables["last_bridge_to"] = a_leg.uuid
        a_leg.bridged = b_leg.bridged = None
        self.fire("CHANNEL_UNBRIDGE", a_leg, before=self._bridge_ids(a_leg, b_leg), variables=True,
                  calling=("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1727"))  # fmt: skip

    def _after_bridge(self, leg: Leg) -> None:
        """The A leg after its B leg hung up: park if asked, else the rest of its dialplan (if any)."""
        self._execute_complete(leg)
        if leg.variables.get("park_after_bridge") == "true":
            self._execute(leg, "park", "")
        else:
            self._next_step(leg)
