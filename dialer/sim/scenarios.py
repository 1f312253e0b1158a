"""Who answers what: callee behaviour chosen by rules on the dialled number, agents, gateways, limits.

A scenario file is JSON (validated with pydantic, so a typo is a clear error at start-up, not a
silent default at 3 a.m.). Without one, :data:`DEFAULT_RULES` give every outcome the dialer must
handle a number of its own, keyed on the last digits, so a demo can dial them all:

==================  =============================================================
number ends with    callee
==================  =============================================================
``486``             busy: 180 then 486 (USER_BUSY, q850 17)
``408``             no answer: rings until the originate timeout (NO_ANSWER)
``603``             rejected: 603 Decline (CALL_REJECTED, q850 21)
``404``             invalid number: 404 (UNALLOCATED_NUMBER, q850 1)
``503``             network failure: 503 (NORMAL_TEMPORARY_FAILURE, q850 41)
``777``             answering machine: answers; ``variable_amd_result=MACHINE``
``222``             answers, then hangs up by itself after 2 s (recv_bye)
``183``             answers after early media only (183, then 200)
anything else       180, 183 + SDP, then 200 after ~1 s (like the recordings)
==================  =============================================================

``example_scenario.json`` next to this module shows every field (``dialer sim --scenario FILE``).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Outcome = Literal["answer", "busy", "no_answer", "reject", "invalid", "network_failure", "machine"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Callee(_Strict):
    """One callee's behaviour; all delays in milliseconds, each may be spread by ``jitter_ms``."""

    outcome: Outcome = "answer"
    ring_ms: int = Field(20, ge=0, description="INVITE to 180 Ringing")
    early_media: bool = Field(True, description="send 183 Session Progress with SDP before the final answer")
    early_media_ms: int = Field(300, ge=0, description="180 to 183")
    answer_ms: int = Field(1000, ge=0, description="180/183 to the final response (200, 486, 603 ...)")
    hangup_after_ms: int | None = Field(None, ge=0, description="callee sends BYE this long after answering")
    jitter_ms: int = Field(0, ge=0, description="each delay is moved by a uniform random amount up to this")

    def delay(self, base_ms: int, rng: random.Random) -> float:
        """Seconds to wait for a step of ``base_ms``, with jitter applied."""
        if self.jitter_ms:
            base_ms = max(0, base_ms + rng.randint(-self.jitter_ms, self.jitter_ms))
        return base_ms / 1000.0


class Rule(_Strict):
    """``match`` is a regular expression that must match the whole dialled number; ``gateway``, when
    given, limits the rule to calls through that gateway (as the recordings' ``pstn2`` was busy)."""

    match: str = ".*"
    gateway: str | None = None
    callee: Callee

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class Agent(_Strict):
    """A directory user (a browser agent); reachable as ``user/<id>`` while registered."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    registered: bool = True
    answer_ms: int | None = Field(800, ge=0, description="ringing time before the agent answers; null: never")
    talk_ms: int | None = Field(None, ge=0, description="agent hangs up this long after answering; null: never")


class Limits(_Strict):
    """FreeSWITCH's ``max-sessions`` and ``sessions-per-second`` (switch.conf.xml)."""

    max_sessions: int = Field(1000, ge=1)
    sessions_per_second: int = Field(100, ge=1)


class Scenario(_Strict):
    rules: list[Rule] = Field(default_factory=list)
    default: Callee = Callee()
    agents: list[Agent] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=lambda: ["pstn", "pstn2"])
    domain: str = "127.0.0.1"
    limits: Limits = Limits()
    use_default_rules: bool = Field(True, description="append DEFAULT_RULES after the file's own rules")

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        return cls.model_validate(json.loads(Path(path).read_text()))

    def all_rules(self) -> list[Rule]:
        return [*self.rules, *DEFAULT_RULES] if self.use_default_rules else list(self.rules)


DEFAULT_RULES: list[Rule] = [
    Rule(match=r"\+?\d*486", callee=Callee(outcome="busy", early_media=False, answer_ms=500)),
    Rule(match=r"\+?\d*408", callee=Callee(outcome="no_answer", early_media=False)),
    Rule(match=r"\+?\d*603", callee=Callee(outcome="reject", early_media=False, answer_ms=300)),
    Rule(match=r"\+?\d*404", callee=Callee(outcome="invalid", ring_ms=10, early_media=False, answer_ms=0)),
    Rule(match=r"\+?\d*503", callee=Callee(outcome="network_failure", ring_ms=10, early_media=False, answer_ms=0)),
    Rule(match=r"\+?\d*777", callee=Callee(outcome="machine", answer_ms=600)),
    Rule(match=r"\+?\d*222", callee=Callee(hangup_after_ms=2000)),
    Rule(match=r"\+?\d*183", callee=Callee(early_media=True)),
]


class CalleeBook:
    """The compiled rules: number in, callee out (first matching rule wins)."""

    def __init__(self, scenario: Scenario) -> None:
        self._rules = [(re.compile(rule.match), rule.gateway, rule.callee) for rule in scenario.all_rules()]
        self._default = scenario.default

    def callee_for(self, number: str, gateway: str | None = None) -> Callee:
        for pattern, only_gateway, callee in self._rules:
            if (only_gateway is None or only_gateway == gateway) and pattern.fullmatch(number):
                return callee
        return self._default
