"""Settings: every bad value is named by its variable at the start of any command (status 2, no traceback),
and ``dialer settings`` shows the effective values with every secret masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import InvalidSettings, Settings, load_settings, masked, unknown_variables

SECRETS = {
    "DIALER_REDIS_URL": "redis://dialer:redis-pw-123@10.0.0.5:6380/2",
    "DIALER_API_TOKENS": '["api-token-456", "api-token-789"]',
    "DIALER_DASHBOARD_PASSWORD": "dash-pw-000",
    "DIALER_SIM_PASSWORD": "sim-pw-111",
    "DIALER_FREESWITCH": json.dumps([{"name": "fs1", "host": "10.0.0.7", "port": 8021, "password": "esl-pw-222"}]),
}


def run_dialer(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A ``dialer`` process with only ``env`` as its DIALER_* settings (cwd without a .env file)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    return subprocess.run(
        [sys.executable, "-m", "dialer.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dialer_settings_prints_every_setting_with_its_secrets_masked(tmp_path: Path) -> None:
    result = run_dialer(["settings"], {**SECRETS, "DIALER_GLOBAL_CPS": "25", "DIALER_TYPO_CPS": "3"}, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in ("redis-pw-123", "api-token-456", "api-token-789", "dash-pw-000", "sim-pw-111", "esl-pw-222"):
        assert secret not in out
        assert secret not in result.stderr
    lines = dict(line.split("=", 1) for line in out.splitlines() if not line.startswith("#"))
    assert lines["DIALER_REDIS_URL"] == "redis://dialer:****@10.0.0.5:6380/2"
    assert json.loads(lines["DIALER_API_TOKENS"]) == ["****", "****"]
    assert lines["DIALER_DASHBOARD_PASSWORD"] == "****"
    assert lines["DIALER_SIM_PASSWORD"] == "****"
    assert json.loads(lines["DIALER_FREESWITCH"]) == [
        {"name": "fs1", "host": "10.0.0.7", "port": 8021, "password": "****"}
    ]
    assert lines["DIALER_GLOBAL_CPS"] == "25.0"
    assert lines["DIALER_LOG_FORMAT"] == "kv"
    assert "# DIALER_AGENT_DOMAIN is not set" in out.splitlines()
    assert "DIALER_TYPO_CPS is not a setting" in result.stderr


def test_dialer_settings_json_is_the_same_masked_view(tmp_path: Path) -> None:
    result = run_dialer(["settings", "--json"], SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["DIALER_DASHBOARD_PASSWORD"] == "****"
    assert "esl-pw-222" not in result.stdout
    assert set(shown) == {f"DIALER_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DIALER_REDIS_URL": "http://127.0.0.1:6379"}, "DIALER_REDIS_URL: must be a redis://, rediss:// or unix://"),
        ({"DIALER_WORKER_CONCURRENCY": "0"}, "DIALER_WORKER_CONCURRENCY: Input should be greater than or equal to 1"),
        ({"DIALER_LOG_FORMAT": "xml"}, "DIALER_LOG_FORMAT: Input should be 'kv' or 'json'"),
        ({"DIALER_FREESWITCH": "[{not json"}, "DIALER_FREESWITCH: not valid JSON"),
        ({"DIALER_FREESWITCH": '[{"host": "10.0.0.7", "port": 99999}]'}, "DIALER_FREESWITCH (0.port): Input should be"),
        ({"DIALER_FREESWITCH": '[{"host": "10.0.0.7"}]'}, "default ESL password ClueCon is refused"),
        ({"DIALER_API_PORT": "http"}, "DIALER_API_PORT: Input should be a valid integer"),
    ],
)
def test_a_bad_setting_is_named_with_the_reason(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    result = run_dialer(["settings"], env, tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", ["worker", "scheduler", "api", "sim", "status", "dashboard", "agent", "campaign", "webhooks"]
)
def test_every_command_that_reads_settings_refuses_a_bad_one_with_status_2(command: str, tmp_path: Path) -> None:
    args = {"agent": ["agent", "list"], "campaign": ["campaign", "list"], "status": ["status", "--once"]}
    env = {"DIALER_REDIS_URL": "http://nowhere", "DIALER_DASHBOARD_PASSWORD": "x", "DIALER_API_TOKENS": '["t"]'}
    result = run_dialer(args.get(command, [command]), env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"dialer {command}: bad settings:\n  DIALER_REDIS_URL: must be a redis://" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_message_never_repeats_the_value_it_refuses() -> None:
    with pytest.raises(InvalidSettings) as refused:
        load_settings(redis_url="ftp://user:hunter2@host", api_port="hunter3")
    message = str(refused.value)
    assert "hunter2" not in message
    assert "hunter3" not in message
    assert "DIALER_REDIS_URL" in message
    assert "DIALER_API_PORT" in message


def test_masked_hides_every_secret_field_and_url_password() -> None:
    settings = load_settings(
        redis_url="rediss://:pw-in-url@redis.internal:6379/0",
        api_tokens=["t1"],
        dashboard_password="d1",
        freeswitch=[{"host": "127.0.0.1", "password": "e1"}],
    )
    shown = json.dumps(masked(settings))
    for secret in ("pw-in-url", '"t1"', '"d1"', '"e1"', "ClueCon"):
        assert secret not in shown
    assert masked(settings)["DIALER_REDIS_URL"] == "rediss://:****@redis.internal:6379/0"
    assert masked(load_settings(redis_url="redis://127.0.0.1:6379/0"))["DIALER_REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_unknown_variables_are_the_prefixed_names_that_match_no_setting() -> None:
    environ = {"DIALER_REDIS_URL": "x", "DIALER_GATEWAY_LIMITS__pstn__cps": "1", "DIALER_REDIS_ULR": "x", "PATH": "/"}
    assert unknown_variables(environ) == ["DIALER_REDIS_ULR"]
