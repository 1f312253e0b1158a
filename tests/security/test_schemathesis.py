"""Schema-driven fuzzing of the HTTP API from its own OpenAPI description (schemathesis), in process against a
real Redis: whatever a client sends, the API answers with a 2xx or a 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from dialer.campaigns import Campaigns
from dialer.http_api import create_app

TOKEN = "schema-fuzz-token"
TOKENS = [TOKEN, ("acme", "acme-token")]

# The description alone needs no Redis (an unconnected client); the requests go to an app on the real one.
schema = schemathesis.openapi.from_dict(create_app(Campaigns(redis.Redis()), TOKENS).openapi())


@pytest.fixture
def api(redis_client: redis.Redis) -> Iterator[TestClient]:
    app = create_app(Campaigns(redis_client, region="US", default_zone="UTC"), TOKENS)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case, api: TestClient) -> None:
    kwargs = case.as_transport_kwargs(base_url=str(api.base_url), headers={"Authorization": f"Bearer {TOKEN}"})
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)  # the API uses none; per-request cookies are deprecated in the test client
    response = api.request(**kwargs)
    case.validate_response(response, checks=[not_a_server_error])
