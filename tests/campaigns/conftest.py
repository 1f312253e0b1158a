"""Campaign fixtures: the simulator fixture of the end-to-end suite, and real dialer processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.e2e.conftest import Sim, sim

__all__ = ["Sim", "dialer_processes", "sim"]


@pytest.fixture
def dialer_processes(
    sim: Sim, redis_url: str, redis_client: redis.Redis
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``start("worker", "--name", "w1")`` / ``start("scheduler")``: a ``dialer`` process on this Redis and sim."""
    started: list[subprocess.Popen[str]] = []
    env = dict(os.environ)
    env.update(
        {
            "DIALER_REDIS_URL": redis_url,
            "DIALER_FREESWITCH": json.dumps([{"name": "sim", "host": "127.0.0.1", "port": sim.port}]),
            "DIALER_AGENT_WAIT_SECONDS": "5",
            "DIALER_WRAP_UP_SECONDS": "0",
            "DIALER_CALL_LEASE_SECONDS": "3",
            "DIALER_REAPER_INTERVAL_SECONDS": "0.5",
            "DIALER_WORKER_HEARTBEAT_GRACE": "2",
            "DIALER_SCHEDULER_INTERVAL_SECONDS": "0.1",
            "DIALER_SCHEDULER_STALE_SECONDS": "5",
        }
    )

    def start(command: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "dialer.cli", command, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
