"""Every process and client of the project reaches Redis through ``DIALER_REDIS_URL``, password and TLS
included: a real redis-server that requires a password (and, second, one that only speaks TLS with a
self-signed CA), with the CLI, the API, a worker and the scheduler running a campaign through it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trustme
from fastapi.testclient import TestClient

from dialer.http_api import app_from_settings
from dialer.localredis import free_port, redis_server_binary
from dialer.store import Store
from settings import Settings
from tests.e2e.conftest import Sim, StartProcess
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow

PASSWORD = "pw-4f1e9c"  # a test server's


def start_server(command: list[str], url: str, **client_options: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            if "TLS" in output and ("not supported" in output or "Unrecognized" in output or "Bad directive" in output):
                pytest.skip(f"this redis-server was built without TLS: {output[-300:]}")
            pytest.fail(f"redis-server did not start: {output[-1000:]}")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(answers, 10, what="redis-server answering")
    return process


@pytest.fixture(params=["password", "tls"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Overrides the session's Redis for this module: one that needs a password, then one that needs TLS too."""
    port = free_port()
    command = [redis_server_binary(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(tmp_path), "--requirepass", PASSWORD]
    if request.param == "password":
        command += ["--port", str(port)]
        url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    else:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        server = ca.issue_cert("127.0.0.1")
        server.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        server.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        command += ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
        command += ["--tls-cert-file", str(tmp_path / "cert.pem"), "--tls-key-file", str(tmp_path / "key.pem")]
        command += ["--tls-ca-cert-file", str(tmp_path / "ca.pem")]
        url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'ca.pem'}"
    process = start_server(command, url)
    yield url
    process.terminate()
    process.wait(timeout=10)


def run(start: StartProcess, *args: str) -> str:
    process = start(*args)
    code = process.wait(timeout=60)
    assert code == 0, process.stderr_text()
    return process.stderr_text()


def test_cli_api_worker_and_scheduler_work_through_a_secured_redis(
    sim: Sim, redis_url: str, redis_client: redis.Redis, dialer_processes: StartProcess, tmp_path: Path
) -> None:
    sim.scenario(agents=[{"id": "7001", "answer_ms": 20, "talk_ms": 100}])
    run(dialer_processes, "agent", "add", "7001")
    run(dialer_processes, "agent", "ready", "7001")
    run(dialer_processes, "campaign", "create", "sec", "--caller-id", "+12125550100", "--gateway", "pstn",
        "--window", "00:00-23:59")  # fmt: skip
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("contact_id,number\n" + "".join(f"s{n},+1212555{n:04d}\n" for n in range(1000, 1005)))
    run(dialer_processes, "campaign", "add", "sec", str(contacts))
    run(dialer_processes, "campaign", "start", "sec")
    worker = dialer_processes("worker", "--name", "secure", "--concurrency", "10")
    scheduler = dialer_processes("scheduler")
    run(dialer_processes, "call", "+12125550486", "--contact-id", "adhoc1")

    api = TestClient(app_from_settings(Settings(redis_url=redis_url, api_tokens=["tok"], _env_file=None)))  # type: ignore[call-arg]

    def completed() -> bool:
        response = api.get("/campaigns/sec/status", headers={"Authorization": "Bearer tok"})
        assert response.status_code == 200, response.text
        return bool(response.json()["state"] == "completed")

    wait_until(completed, 60, what="the campaign completed")
    assert api.get("/campaigns/sec/status", headers={"Authorization": "Bearer tok"}).json()["contacts_by_outcome"] == {
        "completed": 5
    }
    wait_until(lambda: Store(redis_client).record("adhoc:adhoc1:1").get("outcome") == "busy", 30, what="the call")
    for process in (worker, scheduler):
        code, log = process.stop()
        assert code == 0, log[-3000:]
        assert PASSWORD not in log


def test_a_wrong_password_is_a_clear_error_that_does_not_show_the_password(
    sim: Sim, redis_url: str, dialer_processes: StartProcess
) -> None:
    wrong = redis_url.replace(PASSWORD, "not-it")
    started = time.monotonic()
    worker = dialer_processes("worker", "--name", "refused", DIALER_REDIS_URL=wrong)
    assert worker.wait(timeout=60) == 1
    log = worker.stderr_text()
    assert "redis unavailable" in log
    assert "invalid username-password pair" in log or "WRONGPASS" in log, log[-2000:]
    assert "not-it" not in log
    assert time.monotonic() - started < 30
