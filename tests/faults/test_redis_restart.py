"""Redis restarted mid-campaign, with AOF persistence as docs/reliability.md documents for production
(``appendonly yes``, ``appendfsync everysec``): the workers and the scheduler ride it out, no accepted
contact is lost, the campaign completes and nobody is dialled twice."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from dialer.localredis import free_port, redis_server_binary
from dialer.store import Store
from tests.e2e.conftest import DialerProcess, Sim, StartProcess
from tests.worker.polling import wait_until

from . import campaign
from .audit import call_ids

pytestmark = pytest.mark.slow

DOWN_SECONDS = 2.0


class PersistentRedis:
    """A redis-server with an append-only file in its own directory, that can be restarted on its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: self._answers(client), 10, what="redis-server answering")

    def stop(self) -> None:
        """SIGTERM: what a service manager's restart does; Redis flushes the append-only file first."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[PersistentRedis]:
    server = PersistentRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(persistent_redis: PersistentRedis) -> str:
    """The dialer processes and ``redis_client`` of this module use the persistent server."""
    return persistent_redis.url


def test_redis_restart_mid_campaign_loses_no_accepted_contact(
    sim: Sim,
    persistent_redis: PersistentRedis,
    workers: Callable[..., DialerProcess],
    dialer_processes: StartProcess,
    redis_client: redis.Redis,
    fault_report: Callable[..., None],
) -> None:
    contacts = campaign.numbers(150)
    first, late = dict(list(contacts.items())[:100]), dict(list(contacts.items())[100:])
    campaign.agents(sim, redis_client, talk_ms=1000)
    # Leases as long as a few seconds' outage needs (production: 30 s): an outage longer than two thirds of
    # the lease lets workers adopt each other's calls (docs/reliability.md).
    running = [workers(name, DIALER_CALL_LEASE_SECONDS="10") for name in ("p1", "p2")]
    scheduler = dialer_processes("scheduler")
    campaigns = campaign.start(redis_client, "aof", first)

    deadline = time.monotonic() + 60
    while campaign.dials(sim, first) < 40:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    went_down = time.time()
    persistent_redis.stop()
    time.sleep(DOWN_SECONDS)  # Redis is away: calls in progress go on on the switch
    persistent_redis.start()
    came_back = time.time()
    # contacts accepted after the restart count too
    added = campaigns.add_contacts("aof", [{"contact_id": c, "number": n} for c, n in late.items()])
    assert added.accepted == len(late)

    campaign.wait_completed(campaigns, "aof", timeout=90)
    campaign.audit_all(sim, redis_client, "aof", contacts, fault_report)
    assert campaigns.status("aof").contacts_by_state["done"] == len(contacts)
    # Calls that were talking across the outage went on to the end (a Redis restart cuts nobody off).
    store = Store(redis_client)
    records = [store.record(call_id) for call_id in call_ids(redis_client, "aof")]
    across = [r for r in records if float(r.get("bridged_at") or "inf") < went_down < came_back < float(r["ended_at"])]
    assert across, "no call was in progress across the restart: the test did not test it"
    assert {r["outcome"] for r in across} == {"completed"}, across
    assert not [r for r in records if r.get("adopted_from")], "a worker lost its calls in the outage"
    for process in [*running, scheduler]:
        assert process.poll() is None, process.stderr_text()[-3000:]  # every process rode it out
        code, log = process.stop()
        assert code == 0, log[-3000:]
        assert "job bookkeeping failed" not in log
