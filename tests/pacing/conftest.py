"""Pacing tests reuse the end-to-end fixtures: the simulator process, runtimes, and worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.e2e.conftest import Sim, make_runtime, sim

__all__ = ["make_runtime", "sim", "workers"]


@pytest.fixture
def workers(sim: Sim, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start real `dialer worker` processes with ``DIALER_*`` overrides; killed at the end. Their logs go
    to files (a pipe nobody reads would fill up and stall a busy worker)."""
    started: list[subprocess.Popen[str]] = []
    logs: list[IO[str]] = []

    def start(name: str, concurrency: int = 50, **env_overrides: str) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env.update(
            {
                "DIALER_REDIS_URL": redis_url,
                "DIALER_FREESWITCH": json.dumps([{"name": "sim", "host": "127.0.0.1", "port": sim.port}]),
                "DIALER_WRAP_UP_SECONDS": "0",
                "DIALER_CALL_LEASE_SECONDS": "3",
                "DIALER_REAPER_INTERVAL_SECONDS": "0.5",
            }
        )
        env.update(env_overrides)
        logs.append((tmp_path / f"{name}.log").open("w"))
        process = subprocess.Popen(
            [sys.executable, "-m", "dialer.cli", "worker", "--concurrency", str(concurrency), "--name", name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logs[-1],
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    for log in logs:
        log.close()
