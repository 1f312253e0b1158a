"""Hostile values, and the exact commands the dialer sends for a call, captured without a switch."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from gevent.queue import Queue

from dialer.callmodel import CallSpec
from dialer.dial import CallSession, DialOptions

#: Known attacks on an ESL command: a second command, an extra variable, an application, an expansion, a
#: quote, a block, look-alike characters, a huge value and an empty one.
ATTACKS = [
    "1000 &bridge(user/1001)",
    "x\n\nbgapi system rm -rf /",
    "+15551230000\napi hupall",
    "1,api_on_answer=system",
    "a=b,execute_on_answer=bridge",
    "${system(id)}",
    "$${hostname}",
    "}{",
    "{origination_uuid=x}",
    "[leg_timeout=1]",
    "'",
    '"',
    "a'b",
    "pstn|user/1001",
    "<script>alert(1)</script>",
    "１２１２５５５１２３４",  # fullwidth digits
    "+1212555\u0661234",  # an Arabic-Indic digit
    "\u0430gent",  # Cyrillic a
    "pstn\u200b",  # zero-width space
    "pstn\u202e",  # right-to-left override
    "pstn\x00",
    "",
    " ",
    "9" * 10_000_000,
]

#: One safe character set for every value the dialer puts in a channel variable or an argument.
VALUE = r"[A-Za-z0-9_.:/@+#*~-]+"
CUSTOMER_ORIGINATE = re.compile(
    r"originate \{(?P<variables>[^{}\[\]]*)\}sofia/gateway/(?P<gateway>[A-Za-z0-9_.-]+)/(?P<number>\+?[0-9]{3,15})"
    r" &park\(\)"
)
AGENT_ORIGINATE = re.compile(r"originate \{(?P<variables>[^{}\[\]]*)\}user/(?P<agent>[A-Za-z0-9_.-]+) &park\(\)")
DIALER_VARIABLES = {
    "origination_uuid",
    "originate_timeout",
    "ignore_early_media",
    "origination_caller_id_number",
    "dialer_worker",
}


class Captured(Exception):
    """Raised by the recording switch instead of sending a bgapi: the command is in ``Recorder.sent``."""


class Recorder:
    """Stands in for ``dialer.switch.Switch``: records every command, answers sofia_contact as registered."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def route(self, unique_id: str, queue: Queue | None = None) -> Queue:
        return queue if queue is not None else Queue()

    def unroute(self, *unique_ids: str) -> None:
        pass

    def bgapi(self, command: str, job_uuid: str | None = None, timeout: float | None = None) -> Any:
        self.sent.append(command)
        raise Captured(command)

    def api(self, command: str, timeout: float | None = None) -> str:
        self.sent.append(command)
        return "sofia/internal/sip:agent@127.0.0.1:5060"


class AgentStore:
    """Stands in for ``dialer.store.Store`` in the agent search: hands out one agent id, as Redis would."""

    def __init__(self, agent: str) -> None:
        self.agents = [agent]

    def reserve_agent(self, group: str, call_id: str, dialing: str = "") -> str | None:
        return self.agents.pop() if self.agents else None

    def release_agent(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


def customer_originate(spec: CallSpec) -> str:
    """The originate the dialer sends for this attempt's customer leg."""
    switch = Recorder()
    session = CallSession(spec, switch, None, DialOptions(worker_id="w1"))  # type: ignore[arg-type]
    with contextlib.suppress(Captured):
        session._originate_customer()
    (command,) = switch.sent
    return command


def agent_commands(spec: CallSpec, agent: str) -> list[str]:
    """Every command the agent search sends when Redis hands it ``agent``."""
    switch = Recorder()
    session = CallSession(spec, switch, AgentStore(agent), DialOptions(worker_id="w1"))  # type: ignore[arg-type]
    with contextlib.suppress(Captured):
        session._connect_agent()
    return switch.sent


def variables_of(block: str) -> dict[str, str]:
    """``a=b,c=d`` -> {a: b, c: d}; every name and value must be of the safe shapes, no name twice."""
    pairs = [item.split("=") for item in block.split(",")]
    assert all(len(pair) == 2 for pair in pairs), block
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), block
    for name, value in pairs:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), name
        assert re.fullmatch(VALUE, value), value
    return dict(pairs)  # type: ignore[arg-type]
