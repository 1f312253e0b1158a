"""The Procfile under ``honcho start``: every process up on free ports (a temporary Redis, the simulator,
a worker, the scheduler, the API, the dashboard, the webhook sender), a campaign created through the API
runs to completed, then SIGTERM to honcho stops every process by its own shutdown and leaves none behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dialer.localredis import free_port
from dialer.switch import Switch
from tests.e2e.conftest import TEST_PROCESS_ENV
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROCESSES = ("sim", "worker", "scheduler", "api", "dashboard", "webhooks")
TOKEN = "honcho-test-token"


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # it answered (the dashboard asks for a password)
    except OSError:
        return False
    return True


def started_pids(honcho_output: str) -> set[int]:
    return {int(line.split("pid=")[1].rstrip(")")) for line in honcho_output.splitlines() if "started (pid=" in line}


def process_groups(pgids: set[int]) -> list[int]:
    """Processes still alive in any of these process groups (honcho starts each entry in a session of its own)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in pgids:
            alive.append(int(stat.parent.name))
    return alive


def test_honcho_starts_the_procfile_runs_a_campaign_and_stops_everything_on_sigterm(
    redis_url: str, redis_client: Any, tmp_path: Path
) -> None:
    sim_port, api_port, dashboard_port = free_port(), free_port(), free_port()
    settings = {
        **TEST_PROCESS_ENV,
        "DIALER_REDIS_URL": redis_url,
        "DIALER_SIM_PORT": str(sim_port),
        "DIALER_FREESWITCH": json.dumps([{"name": "sim", "host": "127.0.0.1", "port": sim_port}]),
        "DIALER_API_PORT": str(api_port),
        "DIALER_API_TOKENS": json.dumps([TOKEN]),
        "DIALER_DASHBOARD_PORT": str(dashboard_port),
        "DIALER_DASHBOARD_PASSWORD": "honcho-dash",
        "DIALER_AGENT_WAIT_SECONDS": "1",
        "DIALER_WORKER_DRAIN_TIMEOUT": "3",  # honcho sends SIGKILL 5 s after SIGTERM
        "DIALER_WEBHOOK_DRAIN_TIMEOUT": "3",
    }
    # As a user would run it: settings in the .env file honcho (and the processes) read in the app root.
    (tmp_path / ".env").write_text("".join(f"{name}='{value}'\n" for name, value in settings.items()))
    env = {name: value for name, value in os.environ.items() if not name.startswith("DIALER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # where `dialer` is
    log_path = tmp_path / "honcho.log"
    with log_path.open("w") as log:
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(REPO / "Procfile"), "-d", str(tmp_path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    output = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: up(f"{api}/health"), timeout=60, what=f"the API\n{output()}")
        wait_until(lambda: up(f"http://127.0.0.1:{dashboard_port}/"), timeout=60, what=f"the dashboard\n{output()}")
        wait_until(lambda: redis_client.exists("rq:workers"), timeout=60, what=f"the worker\n{output()}")

        # an agent: its browser registered to the switch, logged in and ready through the API
        control = Switch("127.0.0.1", sim_port, "ClueCon", name="control", events=("HEARTBEAT",))
        assert control.start(wait=10)
        agents = [{"id": "5001", "answer_ms": 50, "talk_ms": 100}]
        assert control.api("sim scenario " + json.dumps({"agents": agents}), timeout=5).startswith("+OK")
        control.stop()
        assert http("PUT", f"{api}/agents/5001", {"group": "default"})[0] == 200
        assert http("POST", f"{api}/agents/5001/login")[0] == 200
        assert http("POST", f"{api}/agents/5001/ready")[1]["state"] == "available"

        config = {"id": "honcho", "caller_id_number": "+12125550100", "gateway": "pstn", "ring_timeout": 5}
        config |= {"max_attempts": 1, "calling_window": {"start": "00:00", "end": "23:59:59"}}
        assert http("POST", f"{api}/campaigns", config)[0] == 201
        numbers = {"busy": "+12125550486", "invalid": "+12125550404", "rejected": "+12125550603"}
        numbers["completed"] = "+12125550100"  # answers, talks to the agent
        contacts = [{"contact_id": name, "number": number} for name, number in numbers.items()]
        status, intake = http("POST", f"{api}/campaigns/honcho/contacts", {"contacts": contacts})
        assert (status, intake["accepted"]) == (200, 4), intake
        assert http("POST", f"{api}/campaigns/honcho/start")[0] == 200

        def completed() -> bool:
            return http("GET", f"{api}/campaigns/honcho/status")[1]["state"] == "completed"

        wait_until(completed, timeout=90, what=f"the campaign completed\n{output()}")
        final = http("GET", f"{api}/campaigns/honcho/status")[1]
        assert final["contacts_by_outcome"] == {"busy": 1, "invalid-number": 1, "rejected": 1, "completed": 1}

        text = output()
        pids = started_pids(text)
        assert len(pids) == len(PROCESSES), text
        honcho.send_signal(signal.SIGTERM)
        assert honcho.wait(timeout=30) == 128 + signal.SIGTERM, output()  # honcho's way to say it was stopped
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)
        # honcho starts each process in a session of its own: a failed run must not leave them behind to
        # take jobs from a later test's Redis on a reused port
        for pgid in started_pids(output()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    text = output()
    for name in PROCESSES:  # each ended by its own SIGTERM handling, before honcho's SIGKILL
        assert f"{name}.1 stopped (rc=0)" in text, text
    assert "SIGKILL" not in text
    assert process_groups(pids) == []
