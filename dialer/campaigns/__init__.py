"""Campaigns: contacts, compliance (do-not-call, calling window, retries) and their dispatch as call jobs.

models      pydantic edge models (CampaignConfig, ContactIn, CampaignStatus ...) and the state enums
policy      CallingWindow and RetryPolicy: pure rules, frozen dataclasses
intake      rows -> E.164 contacts with time zones, or per-row rejections
state       the Redis keys and Lua scripts (key list in its docstring)
service     ``Campaigns``: the operations the HTTP API and the CLI call
dispatch    ``Dispatcher``: due contacts -> call jobs (run by ``dialer scheduler``)
outcomes    the call job's gate and settlement (``jobs.calls``)
errors      CampaignError and its subclasses
"""

from dialer.campaigns.errors import CampaignError, CampaignExists, CampaignNotFound, InvalidTransition
from dialer.campaigns.models import (
    CampaignConfig,
    CampaignState,
    CampaignStatus,
    ContactIn,
    ContactState,
    IntakeResult,
    Rejection,
)
from dialer.campaigns.service import Campaigns

__all__ = [
    "CampaignConfig",
    "CampaignError",
    "CampaignExists",
    "CampaignNotFound",
    "CampaignState",
    "CampaignStatus",
    "Campaigns",
    "ContactIn",
    "ContactState",
    "IntakeResult",
    "InvalidTransition",
    "Rejection",
]
