"""An outbound dialer for FreeSWITCH: RQ workers running many calls each as greenlets over ESL.

The Python API, the same operations the HTTP API and the CLI offer::

    import redis, dialer
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    campaigns = dialer.Campaigns(client)
    campaigns.create({"id": "spring", "caller_id_number": "+12125550100", "gateway": "pstn"})
    campaigns.add_contacts("spring", [{"contact_id": "c1", "number": "+12125551234"}])
    campaigns.start("spring")
    dialer.Agents(client).act("1001", "ready")

Names are imported on first use: ``import dialer`` itself loads nothing, so ``dialer worker`` can
monkey-patch with gevent before redis or anything that uses sockets is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Campaigns": "dialer.campaigns",
    "CampaignConfig": "dialer.campaigns",
    "CampaignStatus": "dialer.campaigns",
    "ContactIn": "dialer.campaigns",
    "IntakeResult": "dialer.campaigns",
    "Agents": "dialer.agents",
    "AgentIn": "dialer.agents",
    "AgentView": "dialer.agents",
    "RequestRefused": "dialer.errors",
    "CallPayload": "dialer.payload",
    "enqueue_call": "dialer.enqueue",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dialer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
