"""Agents' phone registrations as FreeSWITCH reports them, kept in the agents' Redis hashes.

Every worker subscribes to the ``sofia::register``, ``sofia::unregister`` and ``sofia::expire`` events
(CUSTOM events with no channel, so no call claims them; ``Switch`` hands them to ``on_event``) and
records each for the agent it names (``from-user``): an unregistered agent leaves the available set and
is never offered a call (``Store.set_registration``). The same event reaches every worker; writing it
again is harmless.

Events can be missed (no worker was connected when the phone registered), and a phone that registers
again while marked unregistered would then stay out for good: so agents marked unregistered but
otherwise ready are asked about with ``sofia_contact`` every ``recheck_seconds``. A registration that
lapsed without an event is caught at the next call: ``sofia_contact`` before a progressive or preview call
(``Runtime``), the switch's USER_NOT_REGISTERED refusal of an answered customer's agent leg (``CallSession``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import gevent
from gevent.queue import Empty, Full, Queue

from dialer.esl import dialstring
from dialer.esl.errors import ESLError, UnsafeValueError
from dialer.esl.events import Event
from dialer.store import AgentState, Store
from dialer.switch import Switch

log = logging.getLogger(__name__)

SUBCLASSES = {"sofia::register": True, "sofia::unregister": False, "sofia::expire": False}
QUEUE_SIZE = 10_000


class RegistrationTracker:
    def __init__(self, store: Store, domain: str | None = None, recheck_seconds: float = 30.0) -> None:
        self.store = store
        self.domain = domain
        self.recheck_seconds = recheck_seconds
        self.switches: Sequence[Switch] = ()
        self._queue: Queue[tuple[str, bool, str]] = Queue(QUEUE_SIZE)

    def on_event(self, event: Event) -> None:
        """Runs in a switch's reader greenlet: never blocks (a full queue drops the event; the recheck
        and the check before each call make up for it)."""
        registered = SUBCLASSES.get(event.subclass or "") if event.name == "CUSTOM" else None
        if registered is None:
            return
        try:
            agent_id = dialstring.USER_ID.check("from-user", event.get("from-user") or event.get("username"))
        except UnsafeValueError:
            return
        try:
            self._queue.put_nowait((agent_id, registered, event.get("contact") or ""))
        except Full:
            log.warning("registration event dropped", extra={"agent": agent_id, "registered": registered})

    def run(self) -> None:
        """Record events as they come; recheck unregistered agents now and then. Runs until killed."""
        next_recheck = 0.0
        while True:
            try:
                agent_id, registered, contact = self._queue.get(timeout=1.0)
            except Empty:
                pass
            else:
                self._record(agent_id, registered, contact)
            now = gevent.get_hub().loop.now()
            if now >= next_recheck:
                next_recheck = now + self.recheck_seconds
                self.recheck()

    def _record(self, agent_id: str, registered: bool, contact: str) -> None:
        try:
            if self.store.set_registration(agent_id, registered, contact):
                log.info("agent registration", extra={"agent": agent_id, "registered": registered})
        except Exception:  # Redis down: the next event or recheck tells again
            log.exception("agent registration not recorded", extra={"agent": agent_id})

    def recheck(self) -> None:
        """Ask the switch about agents marked unregistered who would otherwise take calls."""
        switch = next((s for s in self.switches if s.connected), None)
        if switch is None:
            return
        ready = (AgentState.AVAILABLE.value, AgentState.WRAP_UP.value)
        try:
            for agent_id in self.store.unregistered_agents():
                if self.store.agent(agent_id).get("state") not in ready:
                    continue
                contact = switch.api(dialstring.sofia_contact(agent_id, self.domain), switch.command_timeout)
                if not contact.startswith("error/"):
                    self._record(agent_id, True, contact)
        except (ESLError, UnsafeValueError) as exc:
            log.warning("registration recheck failed", extra={"error": str(exc)})
        except Exception:
            log.exception("registration recheck failed")
