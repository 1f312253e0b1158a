"""The pure parts of the sender: reading an entry, the backoff schedule, URLs in logs; and the campaign
lookup cache (real Redis, a fake clock)."""

from __future__ import annotations

import json
import math

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from dialer.webhooks.events import MalformedEvent, RetryPolicy, parse_event
from dialer.webhooks.sender import Target, Targets, target_of
from settings import Settings
from tests.webhooks.conftest import create_campaign


def _body(**fields: object) -> bytes:
    event: dict[str, object] = {"id": "3f1c", "type": "call.ringing", "call_id": "spring:c1:1", "sequence": 1}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()


def test_an_entry_is_read_for_its_id_type_and_call_and_its_body_kept_as_bytes() -> None:
    body = _body() + b"  "  # whitespace and all: the signed bytes are exactly the emitter's
    event = parse_event(b"spring", body)
    assert (event.event_id, event.type, event.campaign, event.call_id) == (
        "3f1c",
        "call.ringing",
        "spring",
        "spring:c1:1",
    )
    assert event.body == body
    assert event.order_key == "spring:c1:1"
    completed = parse_event("spring", _body(type="campaign.completed", call_id=None))
    assert completed.call_id is None
    assert completed.order_key == "campaign spring"
    # A contact settled without a call (do-not-call, canceled): the campaign script writes call_id "".
    final = parse_event("spring", _body(type="contact.final", call_id="", contact_id="c9"))
    assert final.call_id is None
    assert final.order_key == "spring:c9"
    assert parse_event("spring", _body(type="contact.final", call_id=None, contact_id="c9")).order_key == "spring:c9"


@pytest.mark.parametrize(
    ("campaign", "body", "field"),
    [
        (None, _body(), "campaign"),
        (b"bad campaign", _body(), "campaign"),
        (b"spring", None, "body"),
        (b"spring", b"{not json", "body"),
        (b"spring", b"[1, 2]", "body"),
        (b"spring", b"\xff\xfe", "body"),
        (b"spring", _body(id=None), "id"),
        (b"spring", _body(id="has space"), "id"),
        (b"spring", _body(id=7), "id"),
        (b"spring", _body(type="Call Ringing"), "type"),
        (b"spring", _body(type="call.ringing\r\nX-Evil: 1"), "type"),
        (b"spring", _body(call_id=["x"]), "call_id"),
        (b"spring", _body(contact_id="a b"), "contact_id"),
    ],
)
def test_a_malformed_entry_names_the_field(campaign: bytes | None, body: bytes | None, field: str) -> None:
    with pytest.raises(MalformedEvent, match=f"^{field}:"):
        parse_event(campaign, body)


policies = st.builds(
    lambda base, factor, attempts: RetryPolicy(base, base * factor, attempts),
    st.floats(0.01, 100),
    st.floats(1, 1000),
    st.integers(1, 100),
)


@given(policy=policies, attempt=st.integers(1, 200), draw=st.floats(0, 1))
def test_each_wait_is_between_half_and_all_of_its_capped_exponential_ceiling(
    policy: RetryPolicy, attempt: int, draw: float
) -> None:
    delay = policy.delay(attempt, lambda: draw)
    if attempt >= policy.max_attempts:
        assert delay is None
        return
    ceiling = policy.ceiling(attempt)
    assert ceiling == min(policy.cap, policy.base * 2.0 ** (attempt - 1))
    assert delay is not None
    assert ceiling / 2 <= delay <= ceiling <= policy.cap


@given(policy=policies, attempt=st.integers(1, 200))
def test_waits_never_shrink_from_one_attempt_to_the_next(policy: RetryPolicy, attempt: int) -> None:
    shortest = policy.ceiling(attempt) / 2
    assert policy.ceiling(attempt + 1) / 2 >= shortest
    if policy.ceiling(attempt + 1) < policy.cap:  # below the cap the next shortest is this longest
        assert math.isclose(policy.ceiling(attempt + 1) / 2, policy.ceiling(attempt))


def test_the_default_schedule() -> None:
    settings = Settings()
    policy = RetryPolicy(settings.webhook_backoff_base, settings.webhook_backoff_cap, settings.webhook_max_attempts)
    ceilings = [policy.ceiling(n) for n in range(1, policy.max_attempts)]
    assert ceilings[:4] == [5, 10, 20, 40]
    assert ceilings[-1] == 3600
    assert policy.delay(policy.max_attempts) is None


def test_settings_out_of_order_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="DIALER_WEBHOOK_BACKOFF_CAP"):
        Settings(webhook_backoff_base=10, webhook_backoff_cap=5)
    with pytest.raises(ValueError, match="DIALER_WEBHOOK_RECLAIM_IDLE_SECONDS"):
        Settings(webhook_reclaim_idle_seconds=20, webhook_read_timeout=10)


def test_logs_see_the_url_without_credentials_or_query() -> None:
    target = Target("https://crm:pa55word@hooks.example.com:8443/in/dialer?token=t0k#x", b"secret")
    assert target.safe_url == "https://hooks.example.com:8443/in/dialer"
    assert target.scrub(f"failed for {target.url}: pa55word") == f"failed for {target.safe_url}: ***"
    assert "pa55word" not in repr(target)
    assert "secret" not in repr(target)


def test_a_target_needs_a_url_and_a_secret() -> None:
    config = json.dumps({"webhook_url": "https://crm.example/hooks"}).encode()
    assert target_of(config, b"s") == Target("https://crm.example/hooks", b"s")
    assert target_of(config, None) is None
    assert target_of(config, b"") is None
    assert target_of(json.dumps({"webhook_url": None}).encode(), b"s") is None
    assert target_of(json.dumps({"webhook_url": "ftp://x"}).encode(), b"s") is None
    assert target_of(b"[]", b"s") is None
    assert target_of(b"{bad", b"s") is None
    assert target_of(None, b"s") is None


def test_a_campaigns_target_is_cached_briefly_so_a_new_url_is_seen(redis_client: redis.Redis) -> None:
    now = [100.0]
    targets = Targets(redis_client, ttl=5, clock=lambda: now[0])
    create_campaign(redis_client, "spring", "https://old.example/hooks", "s")
    assert targets.get("spring") == Target("https://old.example/hooks", b"s")
    assert targets.get("nowhere") is None

    config = json.loads(redis_client.hget("dialer:campaign:spring", "config"))
    config["webhook_url"] = "https://new.example/hooks"
    redis_client.hset("dialer:campaign:spring", "config", json.dumps(config))
    now[0] += 4.9
    assert targets.get("spring") == Target("https://old.example/hooks", b"s")
    now[0] += 0.2
    assert targets.get("spring") == Target("https://new.example/hooks", b"s")
