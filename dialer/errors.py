"""What the dialer's interfaces (HTTP, CLI, Python) refuse, under one root:

RequestRefused                carries ``status`` (HTTP), ``kind`` and ``field``: the request field it is
│                             about, so the HTTP layer and the CLI can name it
├── CampaignError             the campaign API (tree in ``dialer.campaigns.errors``)
└── AgentError                the agent API (``dialer.agents``)
"""

from __future__ import annotations


class RequestRefused(Exception):
    status = 400
    kind = "refused"
    default_field = "body"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field or self.default_field
