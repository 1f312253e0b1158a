"""The directory: agents (browser phones) that register and unregister, as mod_sofia reports them."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .scenarios import Agent


@dataclass
class AgentState:
    config: Agent
    registered: bool
    call_id: str = field(default_factory=lambda: str(uuidlib.uuid4()))


class Directory:
    """Directory users and their registrations; ``fire`` is the switch's event function."""

    def __init__(self, fire: Callable[..., None]) -> None:
        self.fire = fire
        self.domain = "127.0.0.1"
        self.agents: dict[str, AgentState] = {}

    def load(self, agents: list[Agent], domain: str) -> None:
        """A new scenario: its agents replace their old settings; agents registered at run time stay."""
        self.domain = domain
        for agent in agents:
            self.agents[agent.id] = AgentState(agent, agent.registered)

    def get(self, agent_id: str) -> AgentState | None:
        return self.agents.get(agent_id)

    def registered_ids(self) -> list[str]:
        return sorted(agent_id for agent_id, state in self.agents.items() if state.registered)

    def register(self, agent_id: str, expires: int = 3600) -> None:
        state = self.agents.get(agent_id)
        if state is None:
            state = self.agents[agent_id] = AgentState(Agent(id=agent_id), True)
        state.registered = True
        self._event("sofia::register", state, (("expires", str(expires)),))

    def unregister(self, agent_id: str, *, expired: bool = False) -> bool:
        state = self.agents.get(agent_id)
        if state is None or not state.registered:
            return False
        state.registered = False
        self._event("sofia::expire" if expired else "sofia::unregister", state, (("expires", "0"),))
        return True

    def contact(self, agent_id: str) -> str:
        """What ``sofia_contact`` answers: the registered contact, or FreeSWITCH's not-registered text."""
        state = self.agents.get(agent_id)
        if state is None or not state.registered:
            return "error/user_not_registered"
        return f"sofia/dialer/sip:{agent_id}@127.0.0.1:5070"

    def _event(self, subclass: str, state: AgentState, extra: tuple[tuple[str, str], ...]) -> None:
        agent_id, domain = state.config.id, self.domain
        after = (
            ("profile-name", "dialer"),
            ("from-user", agent_id),
            ("from-host", domain),
            ("presence-hosts", domain),
            ("contact", f'"{agent_id}" <sip:{agent_id}@127.0.0.1:5070;transport=ws>'),
            ("call-id", state.call_id),
            ("rpid", "unknown"),
            ("status", "Registered(WSS-NAT)" if state.registered else "Unregistered"),
            *extra,
            ("to-user", agent_id),
            ("to-host", domain),
            ("network-ip", "127.0.0.1"),
            ("network-port", "5071"),
            ("username", agent_id),
            ("realm", domain),
            ("user-agent", "SIP.js/0.21.2"),
        )
        self.fire(
            "CUSTOM", subclass=subclass, after=after, calling=("sofia_reg.c", "sofia_reg_handle_register", "2093")
        )
