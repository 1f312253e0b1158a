"""What one worker process shares among its call greenlets: the switch connections, the store, the
in-flight calls, and the two background loops that keep crashes from losing calls.

- The lease loop renews, every third of the lease, the in-flight lease of each call this process runs
  (and the agent it holds). A process that dies stops renewing.
- Pacing (``dialer.pacing``): a new attempt waits for its CPS tokens and concurrency leases right
  before it is claimed and dialled; the lease loop renews those leases too, and they are released
  when the call ends. A failover try on another gateway paces again on that gateway.
- The reaper loop adopts calls whose lease expired (their worker died) and finishes them from what
  the switch says (``CallSession.adopt``); it also frees agents whose reservation lease expired.
  Any worker may adopt; the adoption is an atomic compare-and-set in Redis.
- Agents first (``DialMode``): a progressive or preview attempt reserves a free, registered agent
  before it paces and dials (waiting at most ``DIALER_AGENT_RESERVE_TIMEOUT``); a preview attempt then
  shows the contact to the agent and waits for accept or skip. An attempt that gets no agent, or that
  the agent skips, is not dialled: ``NotDialled`` (its campaign contact goes back to the due set).
- The registration loop keeps agents' registrations from FreeSWITCH's events (``dialer.registrations``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TypeVar

import gevent

from dialer.callmodel import CallSpec, DialMode, Hangup
from dialer.campaigns.state import dialing_key
from dialer.dial import EVENTS, SUBCLASSES, CallSession, DialOptions, spec_from_record
from dialer.esl import dialstring
from dialer.esl.errors import ConnectionLost, ESLError, UnsafeValueError
from dialer.pacing import Pacer, PacingTimeout, Permit, config_from_settings
from dialer.registrations import RegistrationTracker
from dialer.store import HashWrite, Store, call_key
from dialer.switch import Switch
from dialer.worker import ShutdownRequested
from settings import Settings, get_settings

log = logging.getLogger(__name__)

AGENT_POLL = 0.1  # s between tries for a free agent (progressive, preview)
FOLLOWED_POLL = 0.5  # s between looks at a call this process already follows (a job run again)
DECISION_POLL = 0.2  # s between looks at a preview decision
PREVIEW_SKIPPED_RETRY = 300.0  # s before a contact an agent skipped is offered again
PREVIEW_UNANSWERED_RETRY = 60.0  # s before a contact nobody decided on is offered again
# Calls (or agents) per Redis command in the periodic loops: a script or pipeline over thousands holds up Redis
# and this process for milliseconds (11 ms renewing 1,000 calls' leases), and every call's reaction with them.
PAGE = 50
T = TypeVar("T")


class NotDialled(Exception):
    """The attempt was not dialled (no agent in time, skipped in preview): nothing was claimed; its
    contact may be tried again after ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def _pages(items: list[T], size: int = PAGE) -> Iterator[list[T]]:
    """``items`` a page at a time, yielding to the calls between pages."""
    for start in range(0, len(items), size):
        if start:
            gevent.sleep(0)
        yield items[start : start + size]


class Runtime:
    _current: Runtime | None = None

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.store = Store.from_url(
            settings.redis_url,
            lease_seconds=settings.call_lease_seconds,
            timeout=settings.redis_timeout,
            max_missed=settings.agent_max_missed,
        )
        self.registrations = RegistrationTracker(self.store, settings.agent_domain)
        self.options = DialOptions(
            worker_id=self.worker_id,
            agent_domain=settings.agent_domain,
            agent_wait=settings.agent_wait_seconds,
            agent_ring_timeout=settings.agent_ring_timeout,
            wrap_up=settings.wrap_up_seconds,
            hold_music=settings.hold_music,
            abandon_message=settings.abandon_message,
            command_timeout=settings.esl_command_timeout,
            quiet_check=settings.call_quiet_check_seconds,
            hand_back_on=(ShutdownRequested,),
            events_filtered_by_worker=True,
        )
        # Each worker asks the switch only for the events of its own calls (their legs carry its id in
        # ``dialer_worker``, on every channel event it follows), plus the events that carry no channel
        # variables; without this every worker parses every event of every worker's calls.
        own_events = [("variable_dialer_worker", self.worker_id)]
        own_events += [("Event-Name", name) for name in ("BACKGROUND_JOB", "HEARTBEAT", "CUSTOM")]
        self.switches: list[Switch] = [
            Switch(
                node.host,
                node.port,
                node.password.get_secret_value(),
                name=node.name,
                events=EVENTS,
                subclasses=SUBCLASSES,
                filters=own_events,
                connect_timeout=settings.esl_connect_timeout,
                command_timeout=settings.esl_command_timeout,
                backoff_min=settings.esl_reconnect_min,
                backoff_max=settings.esl_reconnect_max,
                on_unclaimed=self.registrations.on_event,
            )
            for node in settings.freeswitch
        ]
        self.registrations.switches = self.switches
        self.active: dict[str, CallSession] = {}
        self.pacer = Pacer(self.store.redis, config_from_settings(settings))
        self.permits: dict[str, Permit] = {}  # pacing leases of the calls this process runs
        self.reserved: dict[str, str] = {}  # call id -> agent reserved before the call is claimed
        self.adopting: set[str] = set()  # calls this process is adopting (not in ``active`` yet)
        self._loops: list[gevent.Greenlet] = []

    @classmethod
    def current(cls) -> Runtime:
        """The process's runtime (started by the worker; on first use otherwise)."""
        return cls._current or cls.start_current(get_settings())

    @classmethod
    def start_current(cls, settings: Settings, worker_id: str | None = None, wait: float = 5.0) -> Runtime:
        runtime = cls(settings, worker_id)
        runtime.start(wait)
        cls._current = runtime
        return runtime

    def start(self, wait: float | None = None) -> None:
        for switch in self.switches:
            switch.start()
        if wait is not None:
            for switch in self.switches:
                switch.wait_connected(wait)
        self._loops = [gevent.spawn(loop) for loop in (self._lease_loop, self._reaper_loop, self.registrations.run)]

    def stop(self) -> None:
        gevent.killall(self._loops, timeout=5)
        for switch in self.switches:
            switch.stop()
        if Runtime._current is self:
            Runtime._current = None

    def connected(self) -> bool:
        """Whether any FreeSWITCH node is connected (new calls are taken only then)."""
        return any(switch.connected for switch in self.switches)

    # ------------------------------------------------------------------ calls

    def switch_for(self, call_id: str) -> Switch:
        """A call goes to one node: a stable choice among the connected ones."""
        candidates: Sequence[Switch] = [s for s in self.switches if s.connected] or self.switches
        return candidates[zlib.crc32(call_id.encode()) % len(candidates)]

    def place(
        self,
        spec: CallSpec,
        on_progress: Callable[[dict[str, str]], HashWrite | None] | None = None,
        *,
        unclaimed: bool = False,
    ) -> dict[str, str]:
        """Run one attempt. A new attempt first takes its agent (progressive, preview: ``NotDialled`` if
        none in time) and then waits for its pacing (``PacingTimeout`` if it cannot get it in time: then
        nothing was claimed nor dialled and the job may simply run again); a re-run of a claimed attempt
        never dials, so it takes neither. ``unclaimed``: the caller has just read that the attempt has no
        record (the claim itself is atomic: a worker that claimed it since only costs us the agent and the
        pacing, given back)."""
        call_id, gateways = spec.call_id, (spec.gateway, *spec.fallback_gateways)  # in failover order
        if self._follows(call_id):
            return self._wait_for_follower(call_id)
        switch = self.switch_for(call_id)
        agent = None
        try:
            if unclaimed or not self.store.redis.exists(call_key(call_id)):
                if spec.dial_mode is not DialMode.PREDICTIVE:
                    agent = self._agent_first(spec, switch)
                spec = self._pace(spec, gateways)
            elif self._follows(call_id):  # this process's reaper began adopting it while we looked
                return self._wait_for_follower(call_id)
            # From here to ``active`` nothing yields: the reaper cannot start adopting the call in between.
            session = CallSession(spec, switch, self.store, self.options, reserved_agent=agent)
            session.on_progress = on_progress
            tried = [spec.gateway]
            session.next_gateway = lambda failed, hangup: self._fail_over(spec, gateways, tried, hangup)
            session.before_originate = lambda: self._fresh_tokens(call_id)
            session.originate_acknowledged = lambda: self._delivered(call_id)
            self.active[call_id] = session
            self.reserved.pop(call_id, None)
            agent = None  # the session holds (and releases) the agent now
            return session.run()
        finally:
            if agent is not None:  # pacing failed: nobody was dialled
                self.store.release_agent(agent, call_id)
            self._forget(call_id)

    def _agent_first(self, spec: CallSpec, switch: Switch) -> str:
        """Reserve a free agent whose phone is registered (and, in preview, who accepts the contact)."""
        call_id = spec.call_id
        deadline = time.monotonic() + self.settings.agent_reserve_timeout
        while True:
            agent = self.store.reserve_agent(spec.agent_group, call_id, dialing_key(spec.campaign))
            if agent is not None:
                self.reserved[call_id] = agent
                if self._registered(agent, switch, call_id):
                    break
                self.reserved.pop(call_id, None)
            elif time.monotonic() > deadline:
                raise NotDialled(f"no free agent in group {spec.agent_group} within the reserve timeout")
            else:
                gevent.sleep(AGENT_POLL)
        if spec.dial_mode is DialMode.PREVIEW:
            self._preview(spec, agent)
        return agent

    def _registered(self, agent: str, switch: Switch, call_id: str) -> bool:
        try:
            contact = switch.api(dialstring.sofia_contact(agent, self.settings.agent_domain))
        except UnsafeValueError as exc:  # an id no interface accepts (Redis written by other code): never rung
            contact = f"error/{exc}"
        except ESLError as exc:  # cannot tell: do not dial a customer for an agent we cannot reach
            self.store.release_agent(agent, call_id)
            raise NotDialled(f"the switch did not answer sofia_contact: {exc}") from exc
        if contact.startswith("error/"):
            log.info("agent not registered; skipped", extra={"call_id": call_id, "agent": agent, "contact": contact})
            self.store.release_agent(agent, call_id, unregistered=True)
            return False
        return True

    def _preview(self, spec: CallSpec, agent: str) -> None:
        """Show the contact to the agent and wait for accept or skip (``Agents.decide``)."""
        call_id = spec.call_id
        self.store.offer(agent, call_id)
        deadline = time.monotonic() + spec.preview_timeout
        log.info("preview offered", extra={"call_id": call_id, "agent": agent})
        while (decision := self.store.agent(agent).get("offer_decision")) not in ("accept", "skip"):
            if time.monotonic() > deadline:
                self.store.release_agent(agent, call_id, missed=True)
                raise NotDialled(f"agent {agent} did not accept the preview in time", PREVIEW_UNANSWERED_RETRY)
            gevent.sleep(DECISION_POLL)
        log.info("preview decided", extra={"call_id": call_id, "agent": agent, "decision": decision})
        if decision == "skip":
            self.store.release_agent(agent, call_id)
            raise NotDialled(f"agent {agent} skipped the contact", PREVIEW_SKIPPED_RETRY)

    def _fresh_tokens(self, call_id: str) -> None:
        permit = self.permits.get(call_id)
        if permit is not None:
            fresh = self.pacer.fresh(permit)
            if fresh is not permit:
                log.info("pacing token went stale before the originate; took a fresh one", extra={"call_id": call_id})
            self.permits[call_id] = fresh

    def _delivered(self, call_id: str) -> None:
        permit = self.permits.get(call_id)
        late = self.pacer.delivered(permit) if permit is not None else 0.0
        if late:
            log.info(
                "switch acknowledged the originate late; pacing pushed back",
                extra={"call_id": call_id, "excess_ms": round(late * 1000, 1)},
            )

    def _forget(self, call_id: str) -> None:
        """The call is no longer this process's: stop renewing it and give back its pacing leases."""
        self.active.pop(call_id, None)
        self.reserved.pop(call_id, None)
        permit = self.permits.pop(call_id, None)
        if permit is not None:
            self.pacer.release(permit)

    def _pace(self, spec: CallSpec, gateways: Sequence[str]) -> CallSpec:
        """Wait for the first usable gateway's pacing; the spec to dial (on that gateway)."""
        gateway = self.pacer.next_gateway(gateways) or spec.gateway
        request = self.pacer.request(
            spec.call_id, gateway, spec.campaign, spec.campaign_cps, spec.campaign_max_concurrent
        )
        self.permits[spec.call_id] = self.pacer.acquire(request)
        return spec if gateway == spec.gateway else replace(spec, gateway=gateway)

    def _fail_over(self, spec: CallSpec, gateways: Sequence[str], tried: list[str], hangup: Hangup) -> str | None:
        """The customer leg on ``tried[-1]`` failed in the network: count it against the gateway, then
        pace and return the next gateway to try (None: no more gateways, or no token in time)."""
        call_id, failed = spec.call_id, tried[-1]
        if self.pacer.record_failure(failed, call_id):
            log.warning("gateway backed off", extra={"gateway": failed, "cause": hangup.cause})
        gateway = self.pacer.next_gateway(gateways, tried)
        if gateway is None:
            return None
        tried.append(gateway)
        held = self.permits.get(call_id)
        request = self.pacer.request(call_id, gateway, spec.campaign, spec.campaign_cps, spec.campaign_max_concurrent)
        if held is not None:  # the failed leg is gone: give back the leases the next try does not need
            keep = set(request.script_keys())
            self.pacer.release(held, [key for key in held.lease_keys if key not in keep])
            self.permits[call_id] = Permit(call_id, tuple(key for key in held.lease_keys if key in keep))
        try:
            self.permits[call_id] = self.pacer.acquire(request)
        except PacingTimeout as exc:
            log.warning("no pacing for the failover try", extra={"call_id": call_id, "error": str(exc)})
            return None
        return gateway

    def adopt(self, call_id: str) -> dict[str, str] | None:
        """Finish an orphaned call if we win its lease (another worker may be adopting it too)."""
        self.adopting.add(call_id)  # from now on a job run again for the call in this process waits (``place``)
        try:
            if not self.store.adopt(call_id, self.worker_id):
                return None
            record = self.store.record(call_id)
            switch = next((s for s in self.switches if s.name == record.get("node")), self.switch_for(call_id))
            session = CallSession(spec_from_record(record), switch, self.store, self.options)
            log.warning("adopting orphaned call", extra={"call_id": call_id, "from": record.get("owner")})
            self.active[call_id] = session
            try:
                if not record.get("outcome"):  # still live on the switch: it counts against the caps again
                    gateway, campaign = record.get("gateway", ""), record.get("campaign", "")
                    self.permits[call_id] = self.pacer.hold(call_id, gateway, campaign)
                return session.adopt(record)
            finally:
                self._forget(call_id)
        finally:
            self.adopting.discard(call_id)

    def _follows(self, call_id: str) -> bool:
        """Whether a session of this process follows the call, or is about to (an adoption under way)."""
        return call_id in self.active or call_id in self.adopting

    def _wait_for_follower(self, call_id: str) -> dict[str, str]:
        """This process already follows the attempt (its reaper adopted it, then RQ ran the job again): a
        second session would take over the first one's event route and lease, and the call would go
        unheard. Wait for that session instead (it ends with the call), and report the attempt as it ended."""
        while self._follows(call_id):
            gevent.sleep(FOLLOWED_POLL)
        return self.store.record(call_id)

    # ------------------------------------------------------------------ loops

    def _lease_loop(self) -> None:
        while True:
            gevent.sleep(self.store.lease_seconds / 3)
            try:
                self.renew_leases()
            except Exception:  # Redis down: keep trying; the lease has two more chances before it expires
                log.exception("lease renewal failed", extra={"worker": self.worker_id})

    def renew_leases(self) -> None:
        """The calls', their pacing permits' and their reserved agents' leases, a page at a time."""
        for call_ids in _pages(list(self.active)):
            self.store.renew(self.worker_id, call_ids)
        for permits in _pages(list(self.permits.values())):
            self.pacer.renew(permits)
        for call_id, agent in list(self.reserved.items()):  # not claimed yet: the record cannot renew it
            self.store.renew_agent(agent, call_id)

    def _reaper_loop(self) -> None:
        while True:
            gevent.sleep(self.settings.reaper_interval_seconds)
            try:
                for call_id in self.store.expired():
                    if not self._follows(call_id):
                        self.adopting.add(call_id)  # at once, not when the greenlet starts: a job run now waits
                        gevent.spawn(self._adopt_safely, call_id)
                self.store.free_orphaned_agents(pause=gevent.sleep)
            except Exception:
                log.exception("reaper pass failed", extra={"worker": self.worker_id})

    def _adopt_safely(self, call_id: str) -> None:
        try:
            self.adopt(call_id)
        except ConnectionLost as exc:
            log.warning("cannot adopt while the switch is unreachable", extra={"call_id": call_id, "error": str(exc)})
        except Exception:
            log.exception("adoption failed", extra={"call_id": call_id})
