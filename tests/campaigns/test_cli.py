"""``dialer campaign``: create with flags, add from CSV (bad lines reported by line), lifecycle, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from dialer.cli_campaign import main


def run(redis_url: str, *args: str) -> int:
    return main(["--redis-url", redis_url, *args])


def test_campaign_from_the_command_line(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        redis_url,
        *("create", "spring", "--caller-id", "+12125550100", "--gateway", "pstn", "--window", "08:30-20:00"),
        *("--days", "0,1,2,3,4", "--retry", "busy=60:2", "--max-attempts", "3", "--dnc-list", "optout"),
        *("--cps", "5", "--metadata", '{"team": "north"}'),
    )
    assert code == 0
    config = json.loads(redis_client.hget("dialer:campaign:spring", "config") or b"{}")
    assert config["calling_window"] == {"start": "08:30:00", "end": "20:00:00", "days": [0, 1, 2, 3, 4]}
    assert config["retry"] == {"busy": {"delay_seconds": 60.0, "max_retries": 2}}

    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "number,contact_id,timezone,name\n"
        "+12125551234,c1,,Ada\n"
        "not-a-number,c2,,Bob\n"
        "(310) 555-1234,c3,America/Phoenix,Cy\n"
    )
    assert run(redis_url, "add", "spring", str(contacts)) == 1  # one line rejected
    out, err = capsys.readouterr()
    assert "accepted 2, duplicates 0, rejected 1" in out
    assert "line 3: number:" in err
    assert run(redis_url, "add", "spring", str(contacts)) == 1
    assert "accepted 0, duplicates 2" in capsys.readouterr().out
    assert redis_client.hget("dialer:campaign:spring:contact:c3", "zones") == b"America/Phoenix"
    assert json.loads(redis_client.hget("dialer:campaign:spring:contact:c1", "metadata") or b"") == {"name": "Ada"}

    assert run(redis_url, "start", "spring") == 0
    assert "spring: running, 2 contacts" in capsys.readouterr().out
    assert run(redis_url, "start", "spring") == 1
    assert "cannot start a campaign that is running" in capsys.readouterr().err
    assert run(redis_url, "pause", "spring") == 0
    assert run(redis_url, "resume", "spring") == 0
    capsys.readouterr()
    assert run(redis_url, "status", "spring", "--json") == 0
    assert json.loads(capsys.readouterr().out)["state"] == "running"
    assert run(redis_url, "cancel", "spring") == 0
    assert "canceled=2" in capsys.readouterr().out


def test_bad_config_names_the_field(
    redis_url: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(redis_url, "create", "x", "--caller-id", "+1 212", "--gateway", "pstn") == 2
    assert "caller_id_number" in capsys.readouterr().err


def test_dnc_from_the_command_line(
    redis_url: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(redis_url, "dnc", "add", "global", "212 555 1234") == 0
    assert run(redis_url, "dnc", "check", "global", "+12125551234") == 0
    assert "+12125551234: listed" in capsys.readouterr().out
