"""The call model: the attempt (``CallSpec``, its deterministic uuids), the state machine and outcome
classification. Pure data: no I/O, no clock.

A customer leg moves through these states; the table says which trigger moves it where::

    queued -> originating -> trying -> ringing -> early_media -> answered -> connecting_agent -> bridged -> ended

Any state except ``ended`` may end (hangup, failed originate). A trigger with no entry in the table
for the current state is not an error: the call keeps its state and the event is recorded as
out of order, because a real switch does send e.g. a 183 after a 180, or nothing at all before 200.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from enum import StrEnum

from dialer.esl.events import Event


class CallState(StrEnum):
    QUEUED = "queued"
    ORIGINATING = "originating"
    TRYING = "trying"
    RINGING = "ringing"
    EARLY_MEDIA = "early_media"
    ANSWERED = "answered"
    CONNECTING_AGENT = "connecting_agent"
    BRIDGED = "bridged"
    ENDED = "ended"


class Trigger(StrEnum):
    ORIGINATE_SENT = "originate_sent"
    LEG_CREATED = (
        "leg_created"  # CHANNEL_OUTGOING / CHANNEL_CREATE: the INVITE is out (FreeSWITCH has no event for 100)
    )
    PROGRESS = "progress"  # CHANNEL_PROGRESS: 180 Ringing
    PROGRESS_MEDIA = "progress_media"  # CHANNEL_PROGRESS_MEDIA: 183 Session Progress with SDP
    ANSWER = "answer"  # CHANNEL_ANSWER: 200 OK
    AGENT_DIALLED = "agent_dialled"
    BRIDGE = "bridge"  # CHANNEL_BRIDGE with an agent leg
    HANGUP = "hangup"  # CHANNEL_HANGUP(_COMPLETE) of the customer leg, or a failed originate


S, T = CallState, Trigger
_BEFORE_ANSWER = (S.ORIGINATING, S.TRYING, S.RINGING, S.EARLY_MEDIA)

TRANSITIONS: dict[CallState, dict[Trigger, CallState]] = {
    S.QUEUED: {T.ORIGINATE_SENT: S.ORIGINATING, T.HANGUP: S.ENDED},
    S.ORIGINATING: {
        T.LEG_CREATED: S.TRYING,
        T.PROGRESS: S.RINGING,
        T.PROGRESS_MEDIA: S.EARLY_MEDIA,
        T.ANSWER: S.ANSWERED,
        T.HANGUP: S.ENDED,
    },
    S.TRYING: {T.PROGRESS: S.RINGING, T.PROGRESS_MEDIA: S.EARLY_MEDIA, T.ANSWER: S.ANSWERED, T.HANGUP: S.ENDED},
    S.RINGING: {T.PROGRESS_MEDIA: S.EARLY_MEDIA, T.ANSWER: S.ANSWERED, T.HANGUP: S.ENDED},
    S.EARLY_MEDIA: {T.ANSWER: S.ANSWERED, T.HANGUP: S.ENDED},
    S.ANSWERED: {T.AGENT_DIALLED: S.CONNECTING_AGENT, T.HANGUP: S.ENDED},
    S.CONNECTING_AGENT: {T.AGENT_DIALLED: S.CONNECTING_AGENT, T.BRIDGE: S.BRIDGED, T.HANGUP: S.ENDED},
    S.BRIDGED: {T.HANGUP: S.ENDED},
    S.ENDED: {},
}

#: Customer-leg events and the trigger each one is.
EVENT_TRIGGERS: dict[str, Trigger] = {
    "CHANNEL_OUTGOING": T.LEG_CREATED,
    "CHANNEL_CREATE": T.LEG_CREATED,
    "CHANNEL_PROGRESS": T.PROGRESS,
    "CHANNEL_PROGRESS_MEDIA": T.PROGRESS_MEDIA,
    "CHANNEL_ANSWER": T.ANSWER,
    "CHANNEL_BRIDGE": T.BRIDGE,
    "CHANNEL_HANGUP": T.HANGUP,
    "CHANNEL_HANGUP_COMPLETE": T.HANGUP,
}


def next_state(state: CallState, trigger: Trigger) -> CallState | None:
    """The state ``trigger`` leads to from ``state``, or None when it does not fit (record, don't crash)."""
    return TRANSITIONS[state].get(trigger)


class Outcome(StrEnum):
    COMPLETED = "completed"  # bridged to an agent
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    REJECTED = "rejected"
    INVALID_NUMBER = "invalid-number"
    FAILED = "failed"  # network, gateway, switch
    CANCELED = "canceled"
    ABANDONED = "abandoned"  # answered, no agent in time
    MACHINE = "machine"  # answering machine
    DNC_BLOCKED = "dnc-blocked"
    OUTSIDE_HOURS = "outside-calling-hours"


# FreeSWITCH hangup causes (names as in Hangup-Cause; Q.850 codes in comments) by outcome.
_CAUSES: dict[str, Outcome] = {
    "USER_BUSY": Outcome.BUSY,  # 17; SIP 486, 600
    "NO_ANSWER": Outcome.NO_ANSWER,  # 19; originate_timeout expired while ringing
    "NO_USER_RESPONSE": Outcome.NO_ANSWER,  # 18; SIP 408, 480
    "CALL_REJECTED": Outcome.REJECTED,  # 21; SIP 603, 403
    "UNALLOCATED_NUMBER": Outcome.INVALID_NUMBER,  # 1; SIP 404, 604
    "NO_ROUTE_DESTINATION": Outcome.INVALID_NUMBER,  # 3
    "INVALID_NUMBER_FORMAT": Outcome.INVALID_NUMBER,  # 28; SIP 484
    "NUMBER_CHANGED": Outcome.INVALID_NUMBER,  # 22; SIP 410
    "ORIGINATOR_CANCEL": Outcome.CANCELED,  # 487
}
_SIP_STATUSES: dict[int, Outcome] = {
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    408: Outcome.NO_ANSWER,
    480: Outcome.NO_ANSWER,
    603: Outcome.REJECTED,
    404: Outcome.INVALID_NUMBER,
    484: Outcome.INVALID_NUMBER,
    604: Outcome.INVALID_NUMBER,
}


def classify(
    cause: str | None,
    sip_status: int | None = None,
    *,
    answered: bool = False,
    bridged: bool = False,
    machine: bool = False,
    canceled: bool = False,
) -> Outcome:
    """Map what FreeSWITCH reported to the outcome a contact centre reports on.

    What happened after the answer decides first (bridged, machine, abandoned); before an answer,
    the hangup cause decides and the SIP status breaks ties where the cause is generic.
    """
    if bridged:
        return Outcome.COMPLETED
    if answered:
        return Outcome.MACHINE if machine else Outcome.ABANDONED
    if canceled:
        return Outcome.CANCELED
    if cause in _CAUSES:
        return _CAUSES[cause]
    if sip_status in _SIP_STATUSES:
        return _SIP_STATUSES[sip_status]
    return Outcome.FAILED


@dataclass(frozen=True, slots=True)
class Hangup:
    """What a hangup event (or a failed originate) says about how a leg ended."""

    cause: str
    q850: int | None = None
    sip_status: int | None = None
    disposition: str | None = None

    @classmethod
    def from_event(cls, event: Event) -> Hangup:
        return cls(
            cause=event.hangup_cause or "UNKNOWN",
            q850=event.q850,
            sip_status=event.sip_status,
            disposition=event.hangup_disposition,
        )


#: Namespace of the deterministic channel uuids: one attempt always gets the same uuids.
UUID_NAMESPACE = uuidlib.UUID("9d7f3c2a-5b1e-4f0d-8a6c-2e4b7d9f1a3c")


def leg_uuid(call_id: str, leg: str = "customer") -> str:
    return str(uuidlib.uuid5(UUID_NAMESPACE, f"{call_id}/{leg}"))


class DialMode(StrEnum):
    """When the call's agent is reserved."""

    PREDICTIVE = "predictive"  # once the customer answers (the dispatcher dials ahead of free agents)
    PROGRESSIVE = "progressive"  # before the customer is dialled: no answered customer waits for nobody
    PREVIEW = "preview"  # before the customer is dialled, and the agent accepts the contact first


@dataclass(frozen=True)
class CallSpec:
    """A validated call request (``dialer.payload.CallPayload`` produces it)."""

    campaign: str
    contact_id: str
    attempt: int
    number: str
    gateway: str
    caller_id_number: str
    agent_group: str = "default"
    caller_id_name: str | None = None
    ring_timeout: int = 30
    variables: dict[str, str] = field(default_factory=dict)
    fallback_gateways: tuple[str, ...] = ()  # tried in order after a network failure on ``gateway``
    campaign_cps: float | None = None  # the campaign's pacing limits (global and per gateway: settings)
    campaign_max_concurrent: int | None = None
    dial_mode: DialMode = DialMode.PREDICTIVE
    preview_timeout: float = 30.0  # preview: how long the agent has to accept or skip
    webhooks: bool = False  # the campaign has a webhook: the call's progress goes to ``dialer:webhooks``

    @property
    def call_id(self) -> str:
        return f"{self.campaign}:{self.contact_id}:{self.attempt}"
