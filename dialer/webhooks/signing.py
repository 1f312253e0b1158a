"""Webhook signatures: HMAC-SHA256 of the exact body bytes, keyed with the campaign's webhook secret.

Pure (standard library only), for the sender and for receivers::

    from dialer.webhooks import verify

    if not verify(secret, raw_body, request.headers.get("X-Dialer-Signature")):
        return 401

Verify the raw bytes as received, before any JSON parsing: a re-serialised body signs differently.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Dialer-Signature"
EVENT_ID_HEADER = "X-Dialer-Event-Id"
EVENT_TYPE_HEADER = "X-Dialer-Event-Type"
SCHEME = "sha256="
USER_AGENT = "fs-dialer-webhooks/1"


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Dialer-Signature`` value: ``sha256=`` and the lowercase hex HMAC-SHA256 of ``body``."""
    return SCHEME + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True if ``header`` is the signature of ``body`` under ``secret``; compared in constant time."""
    if not header:
        return False
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)


def headers(secret: str | bytes, body: bytes, event_id: str, event_type: str) -> dict[str, str]:
    """Every header a delivery carries."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
    }
