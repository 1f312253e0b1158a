"""The campaign API's edge: pydantic models for what comes in (HTTP, CLI, Python) and what goes out.

A campaign's configuration is stored as the JSON of ``CampaignConfig`` (less its webhook secret and
metadata, which are kept in fields of their own so they never travel with the rest). Field patterns are
the call payload's (``dialer.payload``), so a campaign that is accepted always makes valid call jobs.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from dialer.callmodel import DialMode
from dialer.campaigns.policy import CallingWindow, RetryPolicy, RetryRule
from dialer.esl import dialstring
from dialer.payload import IDENTIFIER

#: Call outcomes a retry rule may name (the others are final by nature).
RETRYABLE_OUTCOMES = ("busy", "no-answer", "failed")


class CampaignState(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELED = "canceled"
    COMPLETED = "completed"


class ContactState(StrEnum):
    PENDING = "pending"  # waiting for its due time in the due set
    OUTSIDE_HOURS = "outside-hours"  # rescheduled to the next opening of its calling window (transient)
    RETRY_WAIT = "retry-wait"  # a retry is scheduled after the policy's delay
    QUEUED = "queued"  # a call job is queued or its call is in progress
    DONE = "done"  # final: ``outcome`` holds the final outcome


def _gateway(value: str) -> str:
    return dialstring.GATEWAY.check("gateway", value)


def _caller_id(value: str) -> str:
    return dialstring.NUMBER.check("caller_id_number", value)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as America/New_York)") from exc
    return value


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_zone)]
Gateway = Annotated[str, AfterValidator(_gateway)]
Metadata = Annotated[dict[str, Any], Field(max_length=100)]


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time = Field(time(9), description="local time the window opens, e.g. 09:00")
    end: time = Field(time(21), description="local time it closes; before start means over midnight")
    days: list[int] = Field(default_factory=lambda: list(range(7)), description="0 = Monday ... 6 = Sunday")

    @model_validator(mode="after")
    def _valid(self) -> WindowIn:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        if not self.days or any(day < 0 or day > 6 for day in self.days):
            raise ValueError("days: one or more of 0 (Monday) ... 6 (Sunday)")
        return self

    def to_window(self) -> CallingWindow:
        return CallingWindow(self.start, self.end, frozenset(self.days))


class RetryRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_seconds: float = Field(ge=0, le=30 * 86400)
    max_retries: int = Field(ge=0, le=20)


class CampaignConfig(BaseModel):
    """A campaign as created through any interface."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=IDENTIFIER, description="campaign id, also the call records' prefix")
    name: str = Field("", max_length=200, description="display name (kept in Redis only)")
    caller_id_number: Annotated[str, AfterValidator(_caller_id)]
    caller_id_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    gateway: Gateway
    fallback_gateways: list[Gateway] = Field(default_factory=list, max_length=5)
    agent_group: str = Field("default", pattern=IDENTIFIER)
    dial_mode: DialMode = Field(
        DialMode.PROGRESSIVE,
        description="preview: an agent is reserved and accepts each contact first; progressive: an agent is "
        "reserved before each call (nobody is abandoned); predictive: dials ahead of free agents at a ratio "
        "learnt from the answer rate, under max_abandon_rate (falls back to progressive near it)",
    )
    max_abandon_rate: float = Field(0.03, ge=0, le=0.5, description="predictive: abandoned / answered by a person")
    max_dial_ratio: float = Field(3.0, ge=1, le=10, description="predictive: most calls per free agent")
    preview_timeout: float = Field(30.0, ge=5, le=600, description="preview: seconds the agent has to accept")
    cps: float | None = Field(None, gt=0, le=1000, description="calls per second for this campaign")
    max_concurrent: int | None = Field(None, ge=1, le=100_000)
    ring_timeout: int = Field(30, ge=5, le=300)
    calling_window: WindowIn = Field(default_factory=WindowIn)
    timezone: TimeZone | None = Field(None, description="for numbers whose zone is unknown; default: settings")
    retry: dict[str, RetryRuleIn] = Field(default_factory=dict, description="per outcome: busy, no-answer, failed")
    max_attempts: int = Field(3, ge=1, le=100)
    dnc_lists: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(default_factory=list, max_length=20)
    webhook_url: str | None = Field(None, max_length=2000, pattern=r"^https?://")
    webhook_secret: SecretStr | None = Field(None, description="HMAC key for webhooks; stored, never shown")
    metadata: Metadata = Field(default_factory=dict, description="free-form; kept in Redis only")

    @model_validator(mode="after")
    def _retryable(self) -> CampaignConfig:
        unknown = sorted(set(self.retry) - set(RETRYABLE_OUTCOMES))
        if unknown:
            raise ValueError(f"retry: no retry for {unknown}; retryable outcomes are {list(RETRYABLE_OUTCOMES)}")
        return self

    def retry_policy(self) -> RetryPolicy:
        rules = {outcome: RetryRule(rule.delay_seconds, rule.max_retries) for outcome, rule in self.retry.items()}
        return RetryPolicy(rules, self.max_attempts)

    def public(self) -> dict[str, Any]:
        """What the API shows: everything but the secret (only whether one is set)."""
        shown = self.model_dump(mode="json", exclude={"webhook_secret"})
        shown["webhook_secret_set"] = self.webhook_secret is not None
        return shown


class ContactIn(BaseModel):
    """One intake row; unknown fields are the contact's metadata (as CSV columns are)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    contact_id: str = Field(pattern=IDENTIFIER)
    number: str = Field(min_length=1, max_length=40)
    timezone: TimeZone | None = None
    metadata: Metadata = Field(default_factory=dict)

    def all_metadata(self) -> dict[str, Any]:
        return {**(self.model_extra or {}), **self.metadata}


class Rejection(BaseModel):
    row: int = Field(description="1-based position of the row in the batch")
    contact_id: str | None = None
    field: str
    reason: str


class IntakeResult(BaseModel):
    accepted: int = Field(0, description="new contacts added")
    duplicates: int = Field(0, description="contact ids already in the campaign (left as they were)")
    rejected: list[Rejection] = Field(default_factory=list)


class CampaignStatus(BaseModel):
    id: str
    state: CampaignState
    contacts: int
    contacts_by_state: dict[str, int]
    contacts_by_outcome: dict[str, int]
    calls_by_outcome: dict[str, int]
    attempts: int = Field(description="calls handed to the workers")
    calls_finished: int
    answer_rate: float = Field(description="answered calls (agent, machine or abandoned) / finished calls")
    abandon_rate: float = Field(description="abandoned / calls answered by a person")
    in_progress: int = Field(description="calls queued or in progress")
    cps: float = Field(description="calls handed to the workers per second over the last 10 s")
