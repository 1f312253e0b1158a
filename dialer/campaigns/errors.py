"""Errors of the campaign API, one tree:

    CampaignError                 anything the campaign API refuses
    ├── CampaignNotFound          no campaign with that id (HTTP 404)
    ├── CampaignExists            create with an id already taken (HTTP 409)
    ├── InvalidCampaign           a configuration valid field by field but not as a whole (HTTP 422)
    └── InvalidTransition         start/pause/resume/cancel/add not allowed in the current state (HTTP 409)

Each carries ``field``: the request field it is about, so the HTTP layer can name it (``dialer.errors``).
"""

from __future__ import annotations

from dialer.errors import RequestRefused


class CampaignError(RequestRefused):
    kind = "campaign_error"
    default_field = "campaign_id"


class CampaignNotFound(CampaignError):
    status = 404
    kind = "not_found"


class CampaignExists(CampaignError):
    status = 409
    kind = "already_exists"


class InvalidCampaign(CampaignError):
    status = 422
    kind = "value_error"


class InvalidTransition(CampaignError):
    status = 409
    kind = "invalid_transition"
    default_field = "state"
