"""Fault tests: real campaigns against the simulator process, real Redis, real worker and scheduler processes
(the end-to-end fixtures), with faults injected while they run.

Each test records what it measured with ``fault_report``; the counts are printed at the end of the run
(and written as JSON to ``$DIALER_FAULT_REPORT`` when set), which is where ``docs/reliability.md`` takes
its figures from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DialerProcess, StartProcess, dialer_processes, sim

from .audit import Audit

__all__ = ["dialer_processes", "fault_report", "no_secret_in_logs", "sim", "workers"]

#: test name -> its counts, for the summary at the end of the run
COUNTS: dict[str, dict[str, int]] = {}
COUNTED = ("calls_placed", "workers_killed", "duplicates", "records_lost", "jobs_abandoned_unclaimed")


@pytest.fixture
def workers(dialer_processes: StartProcess) -> Callable[..., DialerProcess]:
    def start(name: str, concurrency: int = 60, **env_overrides: str) -> DialerProcess:
        return dialer_processes("worker", "--concurrency", str(concurrency), "--name", name, **env_overrides)

    return start


@pytest.fixture(autouse=True)
def no_secret_in_logs(tmp_path: Path) -> Iterator[None]:
    """The campaigns' webhook secret (``campaign_config``'s) never reaches a process's log, whatever the fault."""
    yield
    for log in tmp_path.glob("*.log"):
        assert "s3cret" not in log.read_text(errors="replace"), f"the webhook secret is in {log.name}"


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[..., None]:
    def record(audit: Audit, **counts: int) -> None:
        COUNTS[request.node.name] = {
            "contacts": audit.contacts,
            "attempts": audit.attempts,
            "calls_placed": audit.calls_placed,
            "duplicates": len(audit.duplicates),
            "records_lost": len(audit.lost),
            "workers_killed": 0,
            **counts,
        }

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    totals = {name: sum(counts.get(name, 0) for counts in COUNTS.values()) for name in COUNTED}
    terminalreporter.section("fault counts")
    for test, counts in COUNTS.items():
        terminalreporter.write_line(f"{test}: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    terminalreporter.write_line("total: " + " ".join(f"{k}={v}" for k, v in totals.items()))
    target = os.environ.get("DIALER_FAULT_REPORT")
    if target:
        Path(target).write_text(json.dumps({"tests": COUNTS, "total": totals}, indent=2) + "\n")
