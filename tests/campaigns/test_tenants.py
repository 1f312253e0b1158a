"""Tenant tokens in ``DIALER_API_TOKENS``: each tenant sees and changes only its own campaigns and DNC lists
(another's is a 404), operators (plain tokens) see everything; tokens are compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi import HTTPException
from fastapi.testclient import TestClient

from dialer import http_api
from dialer.campaigns import Campaigns
from dialer.http_api import api_tokens, create_app
from settings import Settings, TenantToken, masked

from .helpers import campaign_config

OPERATOR, ACME, GLOBEX = "operator-token", "acme-token", "globex-token"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(redis_client: redis.Redis) -> Iterator[TestClient]:
    tokens: list[http_api.ApiToken] = [OPERATOR, ("acme", ACME), ("globex", GLOBEX)]
    with TestClient(create_app(Campaigns(redis_client, region="US", default_zone="UTC"), tokens)) as client:
        yield client


def create(api: TestClient, token: str, campaign: str, **overrides: Any) -> Any:
    return api.post("/campaigns", json=campaign_config(campaign, **overrides), headers=auth(token))


def test_a_tenant_sees_and_changes_only_its_own_campaigns(api: TestClient, redis_client: redis.Redis) -> None:
    assert create(api, ACME, "acme-spring").status_code == 201
    assert create(api, GLOBEX, "globex-fall").status_code == 201
    assert redis_client.hget("dialer:campaign:acme-spring", "owner") == b"acme"
    contacts = {"contacts": [{"contact_id": "c1", "number": "+12125551234"}]}
    assert api.post("/campaigns/acme-spring/contacts", json=contacts, headers=auth(ACME)).json()["accepted"] == 1

    assert api.get("/campaigns", headers=auth(ACME)).json() == [{"id": "acme-spring", "state": "draft"}]
    assert api.get("/campaigns", headers=auth(GLOBEX)).json() == [{"id": "globex-fall", "state": "draft"}]
    assert {c["id"] for c in api.get("/campaigns", headers=auth(OPERATOR)).json()} == {"acme-spring", "globex-fall"}

    others = [
        ("get", "/campaigns/acme-spring", None),
        ("get", "/campaigns/acme-spring/status", None),
        ("get", "/campaigns/acme-spring/contacts/c1", None),
        ("post", "/campaigns/acme-spring/contacts", contacts),
        *(("post", f"/campaigns/acme-spring/{action}", None) for action in ("start", "pause", "resume", "cancel")),
    ]
    for method, path, body in others:
        response = api.request(method, path, json=body, headers=auth(GLOBEX))
        assert response.status_code == 404, (path, response.text)
        assert response.json()["detail"][0]["msg"] == "no campaign 'acme-spring'"  # the same as a missing one
        assert "Spring renewals" not in response.text
    assert redis_client.hget("dialer:campaign:acme-spring", "state") == b"draft"  # globex changed nothing
    assert api.post("/campaigns/acme-spring/start", headers=auth(ACME)).json()["state"] == "running"
    assert api.post("/campaigns/acme-spring/pause", headers=auth(OPERATOR)).json()["state"] == "paused"
    # Campaign ids are one namespace: a taken id is a conflict for everyone (it says nothing about its owner).
    assert create(api, GLOBEX, "acme-spring").status_code == 409


def test_a_tenant_uses_only_its_own_dnc_lists(api: TestClient, redis_client: redis.Redis) -> None:
    numbers = {"numbers": ["+12125551234"]}
    for name in ("acme", "acme-optout"):
        assert api.post(f"/dnc/{name}/numbers", json=numbers, headers=auth(ACME)).json()["accepted"] == 1
        assert api.get(f"/dnc/{name}/numbers/+12125551234", headers=auth(ACME)).json() == {"listed": True}
    for name in ("global", "globex", "acmeish"):
        for method, path, body in [
            ("post", f"/dnc/{name}/numbers", numbers),
            ("get", f"/dnc/{name}/numbers/+12125551234", None),
            ("delete", f"/dnc/{name}/numbers/+12125551234", None),
        ]:
            response = api.request(method, path, json=body, headers=auth(ACME))
            assert response.status_code == 404, (path, response.text)
            assert response.json()["detail"][0]["loc"] == ["path", "list_name"]
    assert not redis_client.exists("dialer:dnc:global")
    assert api.post("/dnc/global/numbers", json=numbers, headers=auth(OPERATOR)).json()["accepted"] == 1
    refused = create(api, ACME, "acme-x", dnc_lists=["acme-optout", "globex"])
    assert refused.status_code == 404
    assert refused.json()["detail"][0]["loc"] == ["body", "dnc_lists"]
    assert create(api, ACME, "acme-y", dnc_lists=["acme-optout"]).status_code == 201


def test_tenant_tokens_and_plain_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_API_TOKENS", '["plain", {"tenant": "acme", "token": "t-acme"}]')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert isinstance(settings.api_tokens[1], TenantToken)
    assert api_tokens(settings) == ["plain", ("acme", "t-acme")]
    assert "t-acme" not in repr(settings)  # a secret, like the plain ones
    assert masked(settings)["DIALER_API_TOKENS"] == ["****", {"tenant": "acme", "token": "****"}]  # dialer settings
    monkeypatch.setenv("DIALER_API_TOKENS", '["a", "b"]')  # the plain list works as before
    assert api_tokens(Settings(_env_file=None)) == ["a", "b"]  # type: ignore[call-arg]
    monkeypatch.setenv("DIALER_API_TOKENS", '[{"tenant": "bad tenant", "token": "x"}]')
    with pytest.raises(ValueError, match="tenant"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_every_token_is_compared_in_constant_time_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(http_api.hmac, "compare_digest", compare)
    check = http_api.bearer_auth(["first", ("acme", "second"), "third"])
    for given in ("first", "third", "nope"):
        compared.clear()
        credentials = http_api.HTTPAuthorizationCredentials(scheme="Bearer", credentials=given)
        if given == "nope":
            with pytest.raises(HTTPException):
                check(credentials)
        else:
            check(credentials)
        assert [b for _, b in compared] == [b"first", b"second", b"third"]  # all three, every time


def test_the_agent_routes_shared_by_every_tenant_take_an_operator_token(api: TestClient) -> None:
    assert api.get("/agents", headers=auth(OPERATOR)).status_code == 200
    for method, path in [("get", "/agents"), ("get", "/agents/1001"), ("post", "/agents/1001/ready")]:
        response = api.request(method, path, headers=auth(ACME))
        assert response.status_code == 403, (path, response.text)
        assert response.json()["detail"][0]["msg"] == "this route needs an operator token"


def test_every_route_of_the_app_but_health_needs_a_token(redis_client: redis.Redis) -> None:
    """Not a list kept by hand: every route the app has (campaigns, DNC, agents, any added later)."""
    from fastapi.routing import APIRoute

    app = create_app(Campaigns(redis_client), [OPERATOR])
    routes = [route for route in app.routes if isinstance(route, APIRoute) and route.path != "/health"]
    assert len(routes) > 15
    with TestClient(app) as client:
        for route in routes:
            path = route.path.replace("{campaign_id}", "x").replace("{contact_id}", "x").replace("{agent_id}", "x")
            path = path.replace("{list_name}", "x").replace("{number}", "+12125551234")
            assert "{" not in path, path
            for method in route.methods:
                response = client.request(method, path, headers={"Authorization": "Bearer wrong"})
                assert response.status_code == 401, (method, path, response.text)
        assert client.get("/health").status_code == 200
