"""The call job's payload, validated at the edge with pydantic.

Every field that reaches the ESL wire is checked with the same allow-lists as the dial-string
builders (``dialer.esl.dialstring``), so a bad request fails here with the field's name and the
offending character, before anything is queued.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dialer.callmodel import CallSpec, DialMode
from dialer.esl import dialstring

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
E164 = r"^\+[1-9][0-9]{6,14}$"
#: Variables the dialer itself sets; a request may not override them.
RESERVED_VARIABLES = frozenset(
    {
        "origination_uuid",
        "originate_timeout",
        "ignore_early_media",
        "dialer_worker",
        "api_on_answer",
        "execute_on_answer",
    }
)


def _gateway(value: str) -> str:
    return dialstring.GATEWAY.check("gateway", value)


def _caller_id(value: str) -> str:
    return dialstring.NUMBER.check("caller_id_number", value)


def _variables(values: dict[str, str]) -> dict[str, str]:
    for name, value in values.items():
        dialstring.VAR_NAME.check("variables", name)
        if name in RESERVED_VARIABLES or name.startswith(("origination_", "api_", "execute_", "dialer_")):
            raise ValueError(f"variables: {name!r} is set by the dialer and cannot be overridden")
        dialstring.VAR_VALUE.check(f"variables.{name}", value)
    return values


class CallPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign: str = Field(pattern=IDENTIFIER)
    contact_id: str = Field(pattern=IDENTIFIER)
    attempt: int = Field(1, ge=1, le=100)
    number: str = Field(pattern=E164, description="the customer's number in E.164, e.g. +15551230000")
    gateway: Annotated[str, AfterValidator(_gateway)]
    caller_id_number: Annotated[str, AfterValidator(_caller_id)]
    caller_id_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    agent_group: str = Field("default", pattern=IDENTIFIER)
    ring_timeout: int = Field(30, ge=5, le=300)
    variables: Annotated[dict[str, str], AfterValidator(_variables)] = Field(default_factory=dict, max_length=20)
    fallback_gateways: list[Annotated[str, AfterValidator(_gateway)]] = Field(default_factory=list, max_length=5)
    campaign_cps: float | None = Field(None, gt=0, le=1000)
    campaign_max_concurrent: int | None = Field(None, ge=1, le=100_000)
    dial_mode: DialMode = Field(DialMode.PREDICTIVE, description="when the agent is reserved (see DialMode)")
    preview_timeout: float = Field(30.0, ge=1, le=600)
    webhooks: bool = False

    def to_spec(self) -> CallSpec:
        return CallSpec(
            campaign=self.campaign,
            contact_id=self.contact_id,
            attempt=self.attempt,
            number=self.number,
            gateway=self.gateway,
            caller_id_number=self.caller_id_number,
            caller_id_name=self.caller_id_name,
            agent_group=self.agent_group,
            ring_timeout=self.ring_timeout,
            variables=dict(self.variables),
            fallback_gateways=tuple(self.fallback_gateways),
            campaign_cps=self.campaign_cps,
            campaign_max_concurrent=self.campaign_max_concurrent,
            dial_mode=self.dial_mode,
            preview_timeout=self.preview_timeout,
            webhooks=self.webhooks,
        )
