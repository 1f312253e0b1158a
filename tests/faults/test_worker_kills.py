"""SIGKILL worker processes at random moments of a 300-call campaign.

A killed worker does no cleanup: its calls are adopted by the other workers once their leases lapse
(``DIALER_CALL_LEASE_SECONDS=3``), its RQ jobs are found abandoned by RQ's own cleanup and re-run, and the
re-runs find their attempts claimed and dial nobody. Checked on Redis and on the switch's record.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pytest
import redis

from tests.e2e.conftest import DialerProcess, Sim, StartProcess

from . import campaign

pytestmark = pytest.mark.slow

CALLS = 300
KILLS = 4


def test_sigkill_workers_during_a_300_call_campaign_loses_nothing_and_dials_nobody_twice(
    sim: Sim,
    workers: Callable[..., DialerProcess],
    dialer_processes: StartProcess,
    redis_client: redis.Redis,
    fault_report: Callable[..., None],
) -> None:
    seed = int(os.environ.get("KILL_SEED") or random.randrange(1 << 30))  # KILL_SEED replays a schedule
    rng = random.Random(seed)
    print(f"kill schedule seed {seed}")
    contacts = campaign.numbers(CALLS)
    campaign.agents(sim, redis_client)
    live = [workers(f"k{n}") for n in range(3)]
    dialer_processes("scheduler")
    campaigns = campaign.start(redis_client, "kills", contacts)

    # Kill at random numbers of dials, spread over the campaign; each victim is replaced at once.
    moments = sorted(rng.sample(range(20, CALLS - 20), KILLS))
    killed: list[str] = []
    for n, moment in enumerate(moments):
        deadline = time.monotonic() + 60
        while campaign.dials(sim, contacts) < moment:
            assert time.monotonic() < deadline, f"the campaign stalled before {moment} dials"
            time.sleep(0.05 + rng.random() * 0.1)
        victim = live.pop(rng.randrange(len(live)))
        victim.kill()
        victim.wait(timeout=10)
        killed.append(str(victim.args))
        live.append(workers(f"k-replacement{n}"))

    campaign.wait_completed(campaigns, "kills", timeout=60)
    # RQ's abandoned-job cleanup runs in the audit: the re-runs must dial nobody
    audit = campaign.audit_all(sim, redis_client, "kills", contacts, fault_report, workers_killed=len(killed))
    assert audit.calls_placed >= CALLS  # every contact was dialled (busy ones twice)
    assert len(killed) == KILLS
    for worker in live:
        code, stderr = worker.stop()
        assert code == 0, stderr[-3000:]
