"""End-to-end fixtures: the simulator as a real `dialer sim` process on a free port, the real Redis,
and a dialer Runtime (the same object a worker process uses) talking to both over TCP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import pytest

from dialer.runtime import Runtime
from dialer.store import Store
from dialer.switch import Switch
from settings import FreeSwitchNode, Settings

AGENTS = [
    {"id": "1001", "answer_ms": 50},
    {"id": "1002", "answer_ms": 50},
    {"id": "1003", "answer_ms": None},  # never answers
    {"id": "1004", "answer_ms": 50, "registered": False},
]
FAST = {"ring_ms": 10, "early_media_ms": 20, "answer_ms": 50}


@dataclass
class Sim:
    port: int
    process: subprocess.Popen[str]
    control: Switch

    def api(self, command: str) -> str:
        return self.control.api(command, timeout=5)

    def scenario(self, **overrides: Any) -> None:
        scenario: dict[str, Any] = {"default": FAST, "agents": AGENTS}
        scenario.update(overrides)
        assert self.api("sim scenario " + json.dumps(scenario)).startswith("+OK")

    def originates(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.api("sim originates"))
        return result


def start_sim(extra: list[str] | None = None) -> tuple[int, subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli", "sim", "--port", "0", "--heartbeat", "1", *(extra or [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r":(\d+)\s*$", line)
    if not match:
        process.kill()
        pytest.fail(f"the simulator did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    return int(match.group(1)), process


@pytest.fixture
def sim() -> Iterator[Sim]:
    port, process = start_sim()
    control = Switch("127.0.0.1", port, "ClueCon", name="control", events=("HEARTBEAT",), backoff_min=0.05)
    assert control.start(wait=5)
    simulator = Sim(port, process, control)
    simulator.scenario()
    yield simulator
    control.stop()
    process.terminate()
    process.wait(timeout=10)


def settings_for(sim_port: int, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "freeswitch": [FreeSwitchNode(name="sim", host="127.0.0.1", port=sim_port)],
        "agent_wait_seconds": 1.0,
        "agent_ring_timeout": 1,
        "wrap_up_seconds": 0.0,
        "call_lease_seconds": 3.0,
        "reaper_interval_seconds": 0.5,
        "esl_reconnect_min": 0.05,
        "esl_reconnect_max": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_runtime(sim: Sim, redis_url: str, redis_client: Any) -> Iterator[Any]:
    runtimes: list[Runtime] = []

    def make(worker_id: str = "test-worker", **overrides: Any) -> Runtime:
        runtime = Runtime(settings_for(sim.port, redis_url, **overrides), worker_id=worker_id)
        runtime.start(wait=5)
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.stop()


def call_fields(campaign: str, contact: str, number: str) -> dict[str, Any]:
    """One attempt's fields as the tests use them (the pacing-free defaults of a 5 s ring)."""
    return {
        "campaign": campaign,
        "contact_id": contact,
        "attempt": 1,
        "number": number,
        "gateway": "pstn",
        "caller_id_number": "+15550001111",
        "ring_timeout": 5,
    }


def ready_agents(store: Store, *agent_ids: str, group: str = "default") -> None:
    for agent_id in agent_ids:
        store.add_agent(agent_id, group, f"user/{agent_id}")
        store.set_agent_ready(agent_id)


def run_all(jobs: list[gevent.Greenlet], timeout: float = 30) -> list[Any]:
    gevent.joinall(jobs, timeout=timeout, raise_error=True)
    assert all(job.ready() for job in jobs), "calls did not finish in time"
    return [job.value for job in jobs]


def here() -> Path:
    return Path(__file__).parent


#: Settings every test-started dialer process gets: short leases and grace times so that crashes are
#: detected and recovered within a test's time.
TEST_PROCESS_ENV = {
    "DIALER_AGENT_WAIT_SECONDS": "5",
    "DIALER_WRAP_UP_SECONDS": "0",
    "DIALER_CALL_LEASE_SECONDS": "3",
    "DIALER_REAPER_INTERVAL_SECONDS": "0.5",
    "DIALER_WORKER_HEARTBEAT_GRACE": "2",
    "DIALER_SCHEDULER_INTERVAL_SECONDS": "0.1",
    "DIALER_SCHEDULER_STALE_SECONDS": "5",
    "DIALER_CALL_QUIET_CHECK_SECONDS": "10",
}


class DialerProcess(subprocess.Popen[str]):
    log_path: Path

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM and wait: the exit status and everything it wrote to stderr."""
        self.terminate()
        self.wait(timeout=timeout)
        return self.returncode, self.stderr_text()


StartProcess = Callable[..., DialerProcess]


@contextmanager
def running_processes(env: dict[str, str], tmp_path: Path) -> Iterator[StartProcess]:
    """``start("worker", "--name", "w1", DIALER_X="y")``: a real ``dialer`` process with ``env``. Its stderr
    goes to a file (a pipe nobody reads would fill up and stall a busy worker). Every process still running
    at the end is killed."""
    started: list[DialerProcess] = []

    def start(command: str, *args: str, **env_overrides: str) -> DialerProcess:
        log_path = tmp_path / f"{command}-{len(started)}.log"
        with log_path.open("w") as log:
            process = DialerProcess(
                [sys.executable, "-m", "dialer.cli", command, *args],
                env={**env, **env_overrides},
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        process.log_path = log_path
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
def dialer_processes(sim: Sim, redis_url: str, tmp_path: Path) -> Iterator[StartProcess]:
    """Real ``dialer`` processes (``running_processes``) on this Redis and simulator."""
    env = {
        **os.environ,
        **TEST_PROCESS_ENV,
        "DIALER_REDIS_URL": redis_url,
        "DIALER_FREESWITCH": json.dumps([{"name": "sim", "host": "127.0.0.1", "port": sim.port}]),
    }
    with running_processes(env, tmp_path) as start:
        yield start
