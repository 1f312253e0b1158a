"""Signatures (pure): a published HMAC-SHA256 vector, verify against the right and a wrong secret, any
tampering, malformed headers; and the package exports exactly the receiver's helpers."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import dialer.webhooks as webhooks
from dialer.webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, headers, sign, verify

# RFC 4231, test case 2
RFC_KEY, RFC_DATA = b"Jefe", b"what do ya want for nothing?"
RFC_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_the_signature_is_hmac_sha256_hex_of_the_body() -> None:
    assert sign(RFC_KEY, RFC_DATA) == "sha256=" + RFC_MAC
    assert sign(RFC_KEY.decode(), RFC_DATA) == "sha256=" + RFC_MAC
    assert verify("Jefe", RFC_DATA, "sha256=" + RFC_MAC)
    assert verify("Jefe", RFC_DATA, " SHA256=" + RFC_MAC.upper() + " ")  # as some frameworks pass headers


@given(secret=st.text(min_size=1), other=st.text(min_size=1), body=st.binary(), flip=st.integers(min_value=0))
def test_verify_accepts_only_the_right_secret_and_the_exact_body(
    secret: str, other: str, body: bytes, flip: int
) -> None:
    signature = sign(secret, body)
    assert verify(secret, body, signature)
    assert verify(secret, body, signature) == hmac.compare_digest(
        signature, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    )
    if other != secret:
        assert not verify(other, body, signature)
    if body:
        index = flip % len(body)
        tampered = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
        assert not verify(secret, tampered, signature)
    assert not verify(secret, body + b" ", signature)


def test_missing_or_malformed_signatures_fail() -> None:
    good = sign("s", b"{}")
    for header in (None, "", "sha256=", good[7:], "sha1=" + good[7:], good[:-1], good + "0", "sha256=zz", "é"):
        assert not verify("s", b"{}", header), header


def test_a_delivery_carries_the_signature_and_the_event_headers() -> None:
    sent = headers("s3cret", b'{"id":"e1"}', "e1", "call.answered")
    assert sent["Content-Type"] == "application/json"
    assert sent[EVENT_ID_HEADER] == "e1"
    assert sent[EVENT_TYPE_HEADER] == "call.answered"
    assert verify("s3cret", b'{"id":"e1"}', sent[SIGNATURE_HEADER])
    assert "s3cret" not in "".join(sent.values())


def test_the_package_exports_exactly_the_receivers_helpers() -> None:
    assert set(webhooks.__all__) == {
        "EVENT_ID_HEADER",
        "EVENT_TYPE_HEADER",
        "SIGNATURE_HEADER",
        "headers",
        "sign",
        "verify",
    }
    assert all(hasattr(webhooks, name) for name in webhooks.__all__)


def test_the_receivers_verify_in_the_docs_agrees_with_the_senders_signature() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    snippet = docs.split("```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    body = b'{"id":"e1","type":"call.ringing"}'
    assert namespace["verify"](b"s3cret", body, sign("s3cret", body))
    assert not namespace["verify"](b"other", body, sign("s3cret", body))
    assert not namespace["verify"](b"s3cret", body, None)
