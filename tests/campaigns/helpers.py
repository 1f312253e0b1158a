"""Shared campaign-test helpers."""

from __future__ import annotations

from typing import Any

from rq import Queue
from rq.serializers import JSONSerializer

from dialer.enqueue import CALL_QUEUE


def campaign_config(campaign_id: str = "spring", **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "id": campaign_id,
        "name": "Spring renewals",
        "caller_id_number": "+12125550100",
        "gateway": "pstn",
        "fallback_gateways": ["backup"],
        "cps": 20,
        "max_concurrent": 10,
        "ring_timeout": 5,
        "calling_window": {"start": "00:00", "end": "23:59:59"},
        "retry": {"busy": {"delay_seconds": 1, "max_retries": 3}},
        "max_attempts": 2,
        "webhook_url": "https://crm.example/hooks",
        "webhook_secret": "s3cret-never-shown",
        "metadata": {"owner": "sales; DROP TABLE"},
    }
    config.update(overrides)
    return config


def queued_payloads(redis_client: Any) -> list[dict[str, Any]]:
    queue = Queue(CALL_QUEUE, connection=redis_client, serializer=JSONSerializer)
    return [job.args[0] for job in queue.get_jobs()]
