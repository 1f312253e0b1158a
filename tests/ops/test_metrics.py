"""Prometheus metrics of a real ``dialer worker`` process (``--metrics-port``), scraped over HTTP while a
call rings and after calls ended, and the API's ``/metrics`` (bearer token)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from dialer.enqueue import enqueue_call
from dialer.localredis import free_port
from dialer.store import AgentState, Store, call_key
from tests.e2e.conftest import Sim, StartProcess, call_fields, ready_agents
from tests.worker.polling import wait_until

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return parse(response.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def reachable(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def ended(client: redis.Redis, call_id: str) -> bool:
    return bool(client.hget(call_key(call_id), "outcome"))


def test_a_worker_serves_its_calls_links_pacing_and_agents_on_its_metrics_port(
    sim: Sim, redis_client: redis.Redis, dialer_processes: StartProcess
) -> None:
    sim.scenario(
        rules=[{"match": r"\+1555\d+408", "callee": {"outcome": "no_answer", "early_media": False}}],
        agents=[{"id": "1001", "answer_ms": 50, "talk_ms": 200}],
    )
    store = Store(redis_client)
    ready_agents(store, "1001")
    port = free_port()
    worker = dialer_processes(
        "worker", "--name", "metrics-1", "--metrics-port", str(port), DIALER_GLOBAL_CPS="50", DIALER_LOG_FORMAT="json"
    )
    wait_until(lambda: reachable(port), timeout=30, what="the worker's /metrics")

    ringing: dict[str, Any] = call_fields("m", "ring", "+15550001408")
    enqueue_call(redis_client, ringing)
    ring_id = "m:ring:1"
    wait_until(lambda: redis_client.hget(call_key(ring_id), "state") == b"ringing", what="the call ringing")
    during = scrape(port)
    assert value(during, "dialer_calls", state="ringing") == 1
    assert value(during, "dialer_calls", state="bridged") == 0
    assert value(during, "dialer_calls_concurrent") == 1
    assert value(during, "dialer_calls_in_flight") == 1
    assert value(during, "dialer_esl_connected", node="sim") == 1

    enqueue_call(redis_client, call_fields("m", "talk", "+15550001100"))
    wait_until(lambda: ended(redis_client, "m:talk:1") and ended(redis_client, ring_id), timeout=30, what="both ends")
    wait_until(lambda: value(scrape(port), "dialer_calls_concurrent") == 0, what="the calls forgotten")
    after = scrape(port)

    assert value(after, "dialer_call_outcomes_total", outcome="completed") == 1
    assert value(after, "dialer_call_outcomes_total", outcome="no-answer") == 1
    assert value(after, "dialer_call_outcomes_total", outcome="busy") == 0
    assert value(after, "dialer_originates_total", leg="customer", gateway="pstn") == 2
    assert value(after, "dialer_originates_total", leg="agent", gateway="") == 1
    assert value(after, "dialer_answer_to_bridge_seconds_count") == 1
    assert 0 < value(after, "dialer_answer_to_bridge_seconds_sum") < 5
    assert value(after, "dialer_pacing_wait_seconds_count", result="granted") == 2
    assert value(after, "dialer_pacing_wait_seconds_sum", result="granted") < 5
    assert all(value(after, "dialer_calls", state=s) == 0 for s in ("ringing", "answered", "bridged"))

    events = value(after, "dialer_esl_events_total", node="sim")
    assert events > 10  # two calls' channel events and their background jobs
    assert 0 <= value(after, "dialer_esl_unclaimed_events_total", node="sim") < events
    assert value(after, "dialer_esl_reconnects_total", node="sim") == 0
    commands = value(after, "dialer_esl_command_seconds_count", node="sim")
    assert commands >= 4  # 3 originates, sofia_contact, uuid_bridge ...
    buckets = [v for (name, labels), v in after.items() if name == "dialer_esl_command_seconds_bucket"]
    assert buckets == sorted(buckets)
    assert buckets[-1] == commands
    assert 0 < value(after, "dialer_esl_command_seconds_sum", node="sim") < commands * 5

    assert value(after, "dialer_agents", state="available") + value(after, "dialer_agents", state="wrap-up") == 1
    assert value(after, "dialer_agents", state="offline") == 0
    assert value(after, "dialer_queued_jobs", queue="calls") == 0
    assert value(after, "process_resident_memory_bytes") > 0

    status, log = worker.stop()
    assert status == 0
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    call_lines = [line for line in lines if line.get("call_id") == ring_id]
    assert call_lines, log[-2000:]
    for line in call_lines:
        assert {"call_id", "attempt", "uuid", "state", "cause"} <= set(line), line
    final = next(line for line in call_lines if line["msg"] == "call ended")
    assert (final["state"], final["cause"], final["outcome"]) == ("ended", "NO_ANSWER", "no-answer")


def test_the_api_serves_system_metrics_to_a_bearer_token_only(redis_client: redis.Redis) -> None:
    from fastapi.testclient import TestClient

    from dialer.http_api import app_from_settings
    from settings import load_settings

    url = redis_client.connection_pool.connection_kwargs
    store = Store(redis_client)
    ready_agents(store, "2001", "2002")
    store.agent_action("2002", AgentState.PAUSED, [AgentState.AVAILABLE], "lunch")
    settings = load_settings(redis_url=f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}", api_tokens=["tok"])
    client = TestClient(app_from_settings(settings))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer tok"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    assert value(samples, "dialer_agents", state="available") == 1
    assert value(samples, "dialer_agents", state="paused") == 1
    assert value(samples, "dialer_calls_in_flight") == 0
