"""Agents as operators and supervisors see them: create/update, log in, ready, pause, log out, and the
answer to a preview offer. The HTTP API, the CLI (``dialer agent``) and Python call ``Agents``.

An agent's state, and what moves it (the calls move it between ``reserved`` and ``wrap-up``)::

    offline     logged out (at once; during a call: when the call ends)
    paused      logged in but not ready, paused with a reason, or paused automatically after
                ``DIALER_AGENT_MAX_MISSED`` missed calls in a row (reason ``missed-calls``)
    available   ready: may be offered a call, if its phone is registered
    reserved    a call holds the agent (progressive and preview: before the customer is dialled;
                predictive: once the customer answered); a preview offer waits for its decision here
    ringing     the agent's phone rings
    on-call     the agent answered
    wrap-up     after a conversation, for ``DIALER_WRAP_UP_SECONDS``; then available

Registration comes from FreeSWITCH (``sofia::register`` / ``unregister`` / ``expire`` events, followed by
every worker, ``sofia_contact`` before a progressive or preview call, and a ``USER_NOT_REGISTERED`` refusal of
the agent's originate): an agent known to be unregistered is never offered a call, and the switch rings none.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import redis
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dialer.campaigns.state import CampaignRedis
from dialer.errors import RequestRefused
from dialer.esl import dialstring
from dialer.store import BUSY_STATES, AgentActionRefused, AgentState, NoOffer, Store, available_key

S = AgentState
#: action -> (state it moves to, states it may start from). From a busy state (on a call), pause and
#: log out are kept pending until the call releases the agent.
ACTIONS: dict[str, tuple[AgentState, tuple[AgentState, ...]]] = {
    "login": (S.PAUSED, (S.OFFLINE,)),
    "ready": (S.AVAILABLE, (S.OFFLINE, S.PAUSED, S.WRAP_UP, S.AVAILABLE)),
    "pause": (S.PAUSED, (S.AVAILABLE, S.WRAP_UP, S.PAUSED, *BUSY_STATES)),
    "logout": (S.OFFLINE, tuple(S)),
}
REASON = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$"


class AgentError(RequestRefused):
    """What the agent API refuses (``dialer.errors``)."""

    kind = "agent_error"
    default_field = "agent_id"


class AgentNotFound(AgentError):
    status = 404
    kind = "not_found"


class AgentConflict(AgentError):
    status = 409
    kind = "invalid_transition"


def _group(value: str) -> str:
    return dialstring.USER_ID.check("group", value)


def _domain(value: str) -> str:
    return dialstring.DOMAIN.check("domain", value)


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group: Annotated[str, AfterValidator(_group)] = "default"
    domain: Annotated[str, AfterValidator(_domain)] | None = Field(None, description="default: DIALER_AGENT_DOMAIN")


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("break", pattern=REASON, description="shown to supervisors, e.g. lunch, training")


class Offer(BaseModel):
    call_id: str
    campaign: str
    contact_id: str
    number: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    decision: str | None = None


class AgentView(BaseModel):
    id: str
    group: str
    endpoint: str
    state: AgentState
    registered: bool | None = Field(description="the phone's registration as FreeSWITCH reported it; null: unknown")
    pause_reason: str | None = None
    pending: AgentState | None = Field(None, description="pause or log-out that applies when the call ends")
    missed: int = Field(0, description="missed calls in a row")
    call_id: str | None = None
    offer: Offer | None = Field(None, description="preview mode: the contact offered, waiting for accept/skip")


class Agents:
    def __init__(self, client: redis.Redis[bytes], domain: str | None = None) -> None:
        self.store = Store(client)
        self.campaigns = CampaignRedis(client)
        self.domain = domain

    def put(self, agent_id: str, agent: AgentIn | None = None) -> AgentView:
        """Create an agent (logged out) or change its group/domain."""
        agent = agent or AgentIn()
        dialstring.USER_ID.check("agent_id", agent_id)
        endpoint = str(dialstring.User(agent_id, agent.domain or self.domain))
        self.store.add_agent(agent_id, agent.group, endpoint)
        return self.get(agent_id)

    def get(self, agent_id: str) -> AgentView:
        raw = self.store.agent(agent_id)
        if not raw:
            raise AgentNotFound(f"no agent {agent_id!r}")
        return self._view(raw)

    def list_agents(self) -> list[AgentView]:
        return [self._view(raw) for raw in self.store.agents()]

    def act(self, agent_id: str, action: str, reason: str = "") -> AgentView:
        """``login`` / ``ready`` / ``pause`` / ``logout``; AgentConflict when the state does not allow it."""
        target, allowed = ACTIONS[action]
        if target is S.PAUSED:
            reason = reason or ("not-ready" if action == "login" else "break")
        try:
            self.store.agent_action(agent_id, target, allowed, reason if target is S.PAUSED else "")
        except AgentActionRefused as exc:
            if exc.state is None:
                raise AgentNotFound(f"no agent {agent_id!r}") from exc
            raise AgentConflict(f"cannot {action} an agent who is {exc.state}", field="state") from exc
        return self.get(agent_id)

    def decide(self, agent_id: str, decision: str) -> AgentView:
        """Accept or skip the preview offer in front of the agent."""
        self.get(agent_id)
        try:
            self.store.decide(agent_id, decision)
        except NoOffer as exc:
            reason = "was already decided" if "DECIDED" in str(exc) else "is not waiting for a decision"
            raise AgentConflict(f"agent {agent_id!r} has no offer that {reason}", field="offer") from exc
        return self.get(agent_id)

    def _view(self, raw: dict[str, str]) -> AgentView:
        state = S(raw.get("state") or S.OFFLINE.value)
        if state is S.WRAP_UP:  # wrap-up ends by the clock; the hash changes only at the next reservation
            free_at = self.store.redis.zscore(available_key(raw.get("group", "")), raw["id"])
            if free_at is not None and free_at <= self.store.redis_time():
                state = S.AVAILABLE
        registered = {"1": True, "0": False}.get(raw.get("registered", ""))
        return AgentView(
            id=raw["id"],
            group=raw.get("group", ""),
            endpoint=raw.get("endpoint", ""),
            state=state,
            registered=registered,
            pause_reason=raw.get("pause_reason") or None,
            pending=S(raw["pending"]) if raw.get("pending") else None,
            missed=int(raw.get("missed") or 0),
            call_id=raw.get("call") or None,
            offer=self._offer(raw.get("offer", ""), raw.get("offer_decision", "")),
        )

    def _offer(self, call_id: str, decision: str) -> Offer | None:
        campaign, _, rest = call_id.partition(":")
        contact_id = rest.rpartition(":")[0]
        if not contact_id:
            return None
        contact = self.campaigns.contact(campaign, contact_id)
        return Offer(
            call_id=call_id,
            campaign=campaign,
            contact_id=contact_id,
            number=contact.get("number", ""),
            metadata=json.loads(contact.get("metadata") or "{}"),
            decision=decision or None,
        )
