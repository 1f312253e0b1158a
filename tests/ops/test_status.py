"""``dialer status --once`` against real Redis contents: a campaign, RQ workers, agents, calls in flight."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from dialer import status
from dialer.campaigns import Campaigns
from dialer.store import INFLIGHT, AgentState, Store
from tests.campaigns.helpers import campaign_config


def test_status_once_shows_campaigns_workers_agents_and_calls_in_progress(
    redis_url: str, redis_client: redis.Redis
) -> None:
    campaigns = Campaigns(redis_client)
    campaigns.create(campaign_config("spring", name="\x1b[2Jevil name"))
    rows = [{"contact_id": f"k{n}", "number": f"+1212555{n:04d}"} for n in range(3)]
    assert campaigns.add_contacts("spring", rows).accepted == 3
    campaigns.start("spring")
    campaigns.create(campaign_config("autumn"))

    worker = Worker(
        [Queue("calls", connection=redis_client, serializer=JSONSerializer)],
        name="status-w1",
        connection=redis_client,
    )
    worker.register_birth()
    worker.set_state(WorkerStatus.BUSY)
    store = Store(redis_client)
    store.add_agent("1001", "sales", "user/1001")
    store.set_agent_ready("1001")
    store.add_agent("1002", "sales", "user/1002")
    store.agent_action("1002", AgentState.PAUSED, [AgentState.OFFLINE], "lunch")
    store.claim("spring:k1:1", {"state": "ringing", "owner": "status-w1", "gateway": "pstn"})
    store.claim("spring:k2:1", {"state": "bridged", "owner": "gone-w9", "gateway": "pstn", "agent": "1001"})
    store.expire_lease("spring:k2:1")  # its worker died: the reaper will adopt it

    env = {**os.environ, "DIALER_REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "dialer.cli", "status", "--once"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert "\x1b" not in result.stdout
    assert "evil" not in result.stdout
    assert ["CAMPAIGNS", "(2)"] in lines
    header = lines[lines.index(["CAMPAIGNS", "(2)"]) + 1]
    assert header[:4] == ["campaign", "state", "contacts", "pending"]
    by_id = {line[0]: line for line in lines if line and line[0] in ("spring", "autumn")}
    assert by_id["spring"][1:3] == ["running", "3"]
    assert by_id["autumn"][1:3] == ["draft", "0"]
    assert ["status-w1", "busy", "0"] in lines
    assert ["AGENTS", "(2):", "1", "available,", "1", "paused"] in lines
    assert ["1001", "sales", "available"] in lines
    assert ["1002", "sales", "paused"] in lines
    assert ["CALLS", "IN", "PROGRESS", "(2)"] in lines
    calls = {line[0]: line for line in lines if line and line[0].startswith("spring:k")}
    assert calls["spring:k1:1"][1:4] == ["ringing", "status-w1", "pstn"]
    assert calls["spring:k1:1"][-1] == "held"
    assert calls["spring:k2:1"][1:5] == ["bridged", "gone-w9", "pstn", "1001"]
    assert calls["spring:k2:1"][-1] == "orphaned"
    worker.register_death()


def test_a_table_cut_at_the_limit_says_how_many_more(redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    for n in range(5):
        store.claim(f"c:k{n}:1", {"state": "ringing", "owner": "w"})
    snap = status.snapshot(redis_client, limit=2)
    lines = status.render(snap)
    assert "CALLS IN PROGRESS (5)" in lines
    assert "  ... 3 more" in lines
    assert redis_client.zcard(INFLIGHT) == 5
    assert abs(snap.at - time.time()) < 60


def test_on_a_terminal_a_frame_redraws_in_place_and_elsewhere_it_is_plain_lines() -> None:
    terminal, plain = io.StringIO(), io.StringIO()
    status._show(terminal, ["first", "second"], tty=True)
    status._show(plain, ["first", "second"], tty=False)
    assert terminal.getvalue() == "\x1b[H\x1b[2Kfirst\n\x1b[2Ksecond\n\x1b[J"
    assert plain.getvalue() == "first\nsecond\n\n"
