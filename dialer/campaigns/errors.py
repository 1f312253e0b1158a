"""Errors of the campaign API, one tree:

    CampaignError                 anything the campaign API refuses
    ├── CampaignNotFound          no campaign with that id (HTTP 404)
    ├── CampaignExists            create with an id already taken (HTTP 409)
    └── InvalidTransition         start/pause/resume/cancel/add not allowed in the current state (HTTP 409)

Each carries ``field``: the request field it is about, so the HTTP layer can name it.
"""

from __future__ import annotations


class CampaignError(Exception):
    status = 400
    kind = "campaign_error"

    def __init__(self, message: str, field: str = "campaign_id") -> None:
        super().__init__(message)
        self.field = field


class CampaignNotFound(CampaignError):
    status = 404
    kind = "not_found"


class CampaignExists(CampaignError):
    status = 409
    kind = "already_exists"


class InvalidTransition(CampaignError):
    status = 409
    kind = "invalid_transition"

    def __init__(self, message: str, field: str = "state") -> None:
        super().__init__(message, field)
