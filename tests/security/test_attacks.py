"""A table of known attacks against every interface: the HTTP API, the CLI and the Python API. Each attack
in a field that could reach the switch gets a 4xx or a clear error naming the field; nothing is queued, so
nothing reaches the switch. Free text (names, metadata) is stored and never travels with a call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import ValidationError

from dialer import cli_agent, cli_call, cli_campaign
from dialer.campaigns import Campaigns
from dialer.campaigns.dispatch import Dispatcher
from dialer.enqueue import enqueue_call
from dialer.esl import UnsafeValueError
from dialer.http_api import create_app
from dialer.store import Store
from tests.campaigns.helpers import campaign_config, queued_payloads
from tests.e2e.conftest import call_fields, ready_agents

from .hostile import ATTACKS

TOKEN = "attack-table-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IDS = [f"{n:02d}-{attack[:12]!r}" for n, attack in enumerate(ATTACKS)]


def attacks(keep: Any = lambda attack: True) -> list[Any]:
    return [pytest.param(a, id=i) for a, i in zip(ATTACKS, IDS, strict=True) if keep(a)]


#: campaign fields that reach a call job (and so the wire), and where the error names them
CAMPAIGN_FIELDS: dict[str, Any] = {
    "id": lambda a: a,
    "gateway": lambda a: a,
    "fallback_gateways": lambda a: [a],
    "caller_id_number": lambda a: a,
    "caller_id_name": lambda a: a,
    "agent_group": lambda a: a,
    "dnc_lists": lambda a: [a],
}
#: call request fields (``dialer.enqueue.enqueue_call``, ``dialer call``)
CALL_FIELDS: dict[str, Any] = {
    "campaign": lambda a: a,
    "contact_id": lambda a: a,
    "number": lambda a: a,
    "gateway": lambda a: a,
    "caller_id_number": lambda a: a,
    "agent_group": lambda a: a,
    "variables": lambda a: {"sip_h_X": a},
}


def nothing_queued(client: redis.Redis) -> None:
    assert queued_payloads(client) == []


def normalised_to_safe_ascii(stored: str) -> bool:
    """A look-alike number that phonenumbers reads as digits is stored as plain E.164: carried safely."""
    return stored.startswith("+") and stored[1:].isascii() and stored[1:].isdigit()


@pytest.fixture
def api(redis_client: redis.Redis) -> Iterator[TestClient]:
    with TestClient(create_app(Campaigns(redis_client, region="US", default_zone="UTC"), [TOKEN])) as client:
        yield client


# ---------------------------------------------------------------------------------------------- HTTP API


@pytest.mark.parametrize("attack", attacks())
def test_the_api_refuses_each_attack_in_each_field_that_reaches_a_call(
    attack: str, api: TestClient, redis_client: redis.Redis
) -> None:
    for field, shape in CAMPAIGN_FIELDS.items():
        response = api.post("/campaigns", json=campaign_config("atk", **{field: shape(attack)}), headers=AUTH)
        assert response.status_code == 422, (field, response.text[:300])
        assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert api.get("/campaigns", headers=AUTH).json() == []
    api.post("/campaigns", json=campaign_config("atk"), headers=AUTH).raise_for_status()
    rows = [{"contact_id": attack, "number": "+12125551234"}, {"contact_id": "ok1", "number": attack}]
    body = api.post("/campaigns/atk/contacts", json={"contacts": rows}, headers=AUTH).json()
    rejected = {r["row"]: r["field"] for r in body["rejected"]}
    assert rejected.get(1) == "contact_id"
    if 2 not in rejected:  # a look-alike number read as digits
        assert normalised_to_safe_ascii(api.get("/campaigns/atk/contacts/ok1", headers=AUTH).json()["number"])
    else:
        assert rejected[2] == "number"
    in_path = quote(attack[:200], safe="") or "%20"
    path = api.get(f"/campaigns/{in_path}/status", headers=AUTH)
    assert path.status_code in (404, 405, 422), path.text[:300]
    dnc = api.post(f"/dnc/{in_path}/numbers", json={"numbers": ["+12125551234"]}, headers=AUTH)
    assert dnc.status_code in (404, 405, 422), dnc.text[:300]
    nothing_queued(redis_client)


@pytest.mark.parametrize("attack", attacks(str.strip))
def test_free_text_is_stored_and_never_travels_with_a_call(
    attack: str, api: TestClient, redis_client: redis.Redis
) -> None:
    marked = "§" + attack  # "§" is in no value a call carries
    secret = "§secret§" + attack[:100]
    config = campaign_config("free", name=marked[:200], metadata={"note": marked}, webhook_secret=secret)
    assert api.post("/campaigns", json=config, headers=AUTH).status_code == 201
    row = {"contact_id": "c1", "number": "+12125551234", "note": marked, "metadata": {"crm": marked}}
    assert api.post("/campaigns/free/contacts", json={"contacts": [row]}, headers=AUTH).json()["accepted"] == 1
    assert api.post("/campaigns/free/start", headers=AUTH).status_code == 200
    ready_agents(Store(redis_client), "a1")  # progressive campaigns dial for free agents
    Dispatcher(redis_client).run_once()
    (payload,) = queued_payloads(redis_client)
    assert "§" not in json.dumps(payload, ensure_ascii=False)
    shown = api.get("/campaigns/free", headers=AUTH).json()
    assert shown["config"]["metadata"] == {"note": marked}  # kept, as given
    assert "§secret§" not in json.dumps(shown, ensure_ascii=False)  # the secret is never shown


# ---------------------------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("attack", attacks())
def test_the_python_api_refuses_each_attack_naming_the_field(attack: str, redis_client: redis.Redis) -> None:
    for field, shape in CALL_FIELDS.items():
        with pytest.raises(ValidationError) as caught:
            enqueue_call(redis_client, {**call_fields("py", "c1", "+15551230000"), field: shape(attack)})
        assert caught.value.errors()[0]["loc"][0] == field
    campaigns = Campaigns(redis_client)
    for field, shape in CAMPAIGN_FIELDS.items():
        if field == "dnc_lists":
            continue
        with pytest.raises(ValidationError) as refused:
            campaigns.create(campaign_config("py", **{field: shape(attack)}))
        assert refused.value.errors()[0]["loc"][0] == field
    with pytest.raises(UnsafeValueError, match="agent id"):
        Store(redis_client).add_agent(attack, "default", "user/x")
    nothing_queued(redis_client)
    assert not redis_client.exists("dialer:campaign:py")


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("attack", attacks(lambda attack: len(attack) < 1000))
def test_the_cli_refuses_each_attack_with_a_clear_error(
    attack: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--redis-url", redis_url]
    assert cli_call.main([attack, *url]) == 2
    assert "number" in capsys.readouterr().out
    assert cli_call.main(["+15551230000", "--gateway", attack, *url]) == 2
    assert "gateway" in capsys.readouterr().out
    assert cli_call.main(["+15551230000", "--caller-id", attack, *url]) == 2
    assert "caller_id_number" in capsys.readouterr().out
    assert cli_agent.main([*url, "add", attack]) == 2
    assert "agent_id" in capsys.readouterr().out
    assert cli_campaign.main([*url, "create", "cli", "--caller-id", "+12125550100", "--gateway", attack]) == 2
    assert "gateway" in capsys.readouterr().err
    assert cli_campaign.main([*url, "create", "cli", "--caller-id", "+12125550100", "--gateway", "pstn"]) == 0
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "contact_id,number\n" + f"{json.dumps(attack)},+12125551234\n".replace("\n", " ", attack.count("\n"))
    )
    code = cli_campaign.main([*url, "add", "cli", str(rows)])
    assert code in (1, 2)
    assert redis_client.hget("dialer:campaign:cli:stats", "contacts") in (None, b"0")
    nothing_queued(redis_client)
