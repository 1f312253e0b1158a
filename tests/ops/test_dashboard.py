"""``dialer dashboard``: rq-dashboard 0.9 on RQ 3 with JSON-serialised call jobs, as a real process next to a
real worker that is running a call; basic auth on every path; descriptions free of caller text."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis

from dialer.enqueue import enqueue_call
from dialer.localredis import free_port
from dialer.store import call_key
from tests.e2e.conftest import Sim, StartProcess, call_fields
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow

AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:dash-secret").decode()}
DESCRIPTION = re.compile(r"^call [A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]* attempt [0-9]+$")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(port: int, path: str) -> Any:
    status, body = get(port, path, AUTH)
    assert status == 200, (path, body[:500])
    return json.loads(body)


def answers(port: int) -> bool:
    try:
        return get(port, "/")[0] == 401
    except OSError:
        return False


def test_the_dashboard_shows_json_jobs_and_a_busy_worker_behind_basic_auth(
    sim: Sim, redis_client: redis.Redis, dialer_processes: StartProcess
) -> None:
    sim.scenario(rules=[{"match": r"\+1555\d+408", "callee": {"outcome": "no_answer", "early_media": False}}])
    dialer_processes("worker", "--name", "dash-w1")
    port = free_port()
    dashboard = dialer_processes(
        "dashboard",
        DIALER_DASHBOARD_PORT=str(port),
        DIALER_DASHBOARD_USERNAME="ops",
        DIALER_DASHBOARD_PASSWORD="dash-secret",
    )
    wait_until(lambda: answers(port), timeout=30, what="the dashboard listening")
    ringing = enqueue_call(redis_client, call_fields("dash", "ring", "+15550002408"))
    done = enqueue_call(redis_client, call_fields("dash", "busy", "+15550002486"))
    wait_until(lambda: redis_client.hget(call_key("dash:ring:1"), "state") == b"ringing", what="the call ringing")
    wait_until(lambda: bool(redis_client.hget(call_key("dash:busy:1"), "outcome")), what="the busy call ended")

    # the page rq-dashboard 0.9 itself fails with (HTTP 500) when a worker runs a JSON job
    workers = get_json(port, "/0/data/workers.json")["workers"]
    assert [(w["name"], w["state"]) for w in workers] == [("dash-w1", "busy")]
    assert workers[0]["current_job"]["job_id"] == ringing.id
    assert workers[0]["current_job"]["description"] == "call dash/ring attempt 1"

    started = get_json(port, "/0/data/jobs/calls/started/8/asc/1.json")["jobs"]
    finished = get_json(port, "/0/data/jobs/calls/finished/8/asc/1.json")["jobs"]
    assert [job["id"] for job in started] == [ringing.id]
    assert [job["id"] for job in finished] == [done.id]
    detail = get_json(port, f"/0/data/job/{done.id}.json")
    assert detail["result"]["outcome"] == "busy"
    assert json.loads(detail["metadata"])["campaign"] == "dash"
    for job in [*started, *finished, detail]:
        assert DESCRIPTION.fullmatch(job["description"]), job["description"]
    queues = get_json(port, "/0/data/queues.json")["queues"]
    assert [q["name"] for q in queues] == ["calls"]

    for path in ("/", "/0/data/workers.json", f"/0/data/job/{done.id}.json", "/static/favicon.ico"):
        status, _ = get(port, path)
        assert status == 401, path
        wrong = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}
        assert get(port, path, wrong)[0] == 401, path
    assert get(port, "/", AUTH)[0] == 200

    status, log = dashboard.stop()
    assert status == 0, log


def test_the_dashboard_refuses_to_start_without_a_password(
    sim: Sim, redis_client: redis.Redis, dialer_processes: StartProcess
) -> None:
    dashboard = dialer_processes("dashboard", "--port", "0", DIALER_DASHBOARD_PASSWORD="")
    assert dashboard.wait(timeout=30) == 2
    assert "set DIALER_DASHBOARD_PASSWORD" in dashboard.stderr_text()
