"""Webhooks: signed, retried, at-least-once deliveries of call and campaign events (``docs/webhooks.md``).

    signing.py   HMAC-SHA256 signatures, and ``verify`` for receivers (pure)
    events.py    what the sender reads of an event, and the backoff schedule (pure)
    queue.py     the stream, the retry schedule and the dead letters in Redis (the keys and Lua scripts)
    sender.py    the sender: consumer group, delivery threads, HTTP, retries, reclaim
    cli.py       ``dialer webhooks`` (the process), ``dialer webhooks dead`` and ``... replay``

Importing this package imports only the pure signing helpers, so a receiver can use ``verify`` alone.
"""

from dialer.webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    headers,
    sign,
    verify,
)

__all__ = ["EVENT_ID_HEADER", "EVENT_TYPE_HEADER", "SIGNATURE_HEADER", "headers", "sign", "verify"]
