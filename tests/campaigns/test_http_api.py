"""The HTTP API through FastAPI's TestClient against a real Redis: auth, validation errors naming the
field, intake with per-row rejections, lifecycle transitions and their refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from dialer.campaigns import Campaigns
from dialer.http_api import create_app

from .helpers import campaign_config

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(redis_client: redis.Redis) -> Iterator[TestClient]:
    app = create_app(Campaigns(redis_client, region="US", default_zone="UTC"), [TOKEN, "second-token"])
    with TestClient(app) as client:
        yield client


def create(api: TestClient, **overrides: Any) -> dict[str, Any]:
    response = api.post("/campaigns", json=campaign_config(**overrides), headers=AUTH)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_health_needs_no_token(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/campaigns"),
        ("post", "/campaigns"),
        ("get", "/campaigns/spring"),
        ("get", "/campaigns/spring/status"),
        ("post", "/campaigns/spring/contacts"),
        ("post", "/campaigns/spring/start"),
        ("post", "/campaigns/spring/cancel"),
        ("post", "/dnc/global/numbers"),
        ("delete", "/dnc/global/numbers/+12125551234"),
    ],
)
def test_every_route_needs_a_valid_bearer_token(api: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = api.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"][0]["loc"] == ["header", "authorization"]


def test_any_configured_token_is_accepted(api: TestClient) -> None:
    assert api.get("/campaigns", headers={"Authorization": "Bearer second-token"}).status_code == 200


def test_create_shows_the_campaign_without_its_secret(api: TestClient) -> None:
    body = create(api)
    assert body["id"] == "spring"
    assert body["webhook_secret_set"] is True
    assert "webhook_secret" not in body
    shown = api.get("/campaigns/spring", headers=AUTH).json()
    assert shown["status"]["state"] == "draft"
    assert "s3cret" not in str(shown)
    assert api.get("/campaigns", headers=AUTH).json() == [{"id": "spring", "state": "draft"}]


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"gateway": "pstn gw"}, ["body", "gateway"]),
        ({"caller_id_number": "+1 212"}, ["body", "caller_id_number"]),
        ({"id": "bad id"}, ["body", "id"]),
        ({"calling_window": {"start": "25:00"}}, ["body", "calling_window", "start"]),
        ({"retry": {"busy": {"delay_seconds": -1, "max_retries": 1}}}, ["body", "retry", "busy", "delay_seconds"]),
        ({"cps": 0}, ["body", "cps"]),
        ({"surprise": 1}, ["body", "surprise"]),
    ],
)
def test_invalid_campaigns_are_refused_naming_the_field(
    api: TestClient, overrides: dict[str, Any], loc: list[str]
) -> None:
    response = api.post("/campaigns", json=campaign_config(**overrides), headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_a_retry_rule_for_a_final_outcome_is_refused(api: TestClient) -> None:
    response = api.post(
        "/campaigns", json=campaign_config(retry={"completed": {"delay_seconds": 1, "max_retries": 1}}), headers=AUTH
    )
    assert response.status_code == 422
    assert "retryable outcomes" in response.json()["detail"][0]["msg"]


def test_duplicate_campaign_is_a_conflict_naming_the_id(api: TestClient) -> None:
    create(api)
    response = api.post("/campaigns", json=campaign_config(), headers=AUTH)
    assert response.status_code == 409
    assert response.json()["detail"][0]["loc"] == ["body", "id"]


def test_bad_rows_are_rejected_with_reasons_while_good_rows_are_accepted(api: TestClient) -> None:
    create(api)
    contacts = [
        {"contact_id": "good1", "number": "+12125551234", "name": "Ada"},
        {"contact_id": "bad1", "number": "12"},
        {"contact_id": "good2", "number": "(310) 555-1234", "timezone": "America/Denver"},
        {"number": "+12125551236"},
        {"contact_id": "good1", "number": "+12125551234"},
    ]
    response = api.post("/campaigns/spring/contacts", json={"contacts": contacts}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert [(r["row"], r["contact_id"], r["field"]) for r in body["rejected"]] == [
        (2, "bad1", "number"),
        (4, None, "contact_id"),
    ]
    good2 = api.get("/campaigns/spring/contacts/good2", headers=AUTH).json()
    assert (good2["number"], good2["zones"]) == ("+13105551234", ["America/Denver"])
    assert api.get("/campaigns/spring/contacts/good1", headers=AUTH).json()["metadata"] == {"name": "Ada"}
    missing = api.get("/campaigns/spring/contacts/nobody", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["loc"] == ["path", "contact_id"]


def test_lifecycle_over_http(api: TestClient) -> None:
    create(api)
    api.post(
        "/campaigns/spring/contacts", json={"contacts": [{"contact_id": "a", "number": "+12125551234"}]}, headers=AUTH
    )
    assert api.post("/campaigns/spring/start", headers=AUTH).json()["state"] == "running"
    assert api.post("/campaigns/spring/pause", headers=AUTH).json()["state"] == "paused"
    refused = api.post("/campaigns/spring/pause", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"] == [
        {"loc": ["state"], "msg": "cannot pause a campaign that is paused", "type": "invalid_transition"}
    ]
    assert api.post("/campaigns/spring/resume", headers=AUTH).json()["state"] == "running"
    canceled = api.post("/campaigns/spring/cancel", headers=AUTH).json()
    assert canceled["state"] == "canceled"
    assert canceled["contacts_by_outcome"] == {"canceled": 1}
    status = api.get("/campaigns/spring/status", headers=AUTH).json()
    assert {"answer_rate", "abandon_rate", "in_progress", "cps", "attempts"} <= set(status)


def test_unknown_campaign_is_404_naming_the_path_field(api: TestClient) -> None:
    response = api.post("/campaigns/ghost/start", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["detail"][0]["loc"] == ["path", "campaign_id"]
    bad = api.get("/campaigns/bad%20id/status", headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["path", "campaign_id"]


def test_dnc_lists_over_http(api: TestClient) -> None:
    added = api.post("/dnc/global/numbers", json={"numbers": ["212-555-1234", "nope"]}, headers=AUTH).json()
    assert added["accepted"] == 1
    assert [(r["row"], r["field"]) for r in added["rejected"]] == [(2, "number")]
    assert api.get("/dnc/global/numbers/+12125551234", headers=AUTH).json() == {"listed": True}
    assert api.delete("/dnc/global/numbers/+12125551234", headers=AUTH).json() == {"removed": 1}
    assert api.get("/dnc/global/numbers/+12125551234", headers=AUTH).json() == {"listed": False}


def test_openapi_describes_the_routes_and_bearer_auth(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert "/campaigns/{campaign_id}/contacts" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
