"""`dialer demo`, the quick start's first command, run as a user runs it: a process that starts Redis,
the simulator and two workers, dials a small campaign, prints a summary and leaves nothing behind."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialer.callmodel import Outcome
from dialer.demo import CALLEES, contact_list, percentile


def run_demo(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialer.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def started_pids(output: str) -> list[int]:
    """The pids the demo says it started: redis-server, the simulator, the scheduler, the workers."""
    pids = [int(p) for p in re.findall(r"(?:redis-server|simulator|scheduler) pid (\d+)", output)]
    workers = re.search(r"worker pids ([\d, ]+);", output)
    assert workers, output
    pids += [int(p) for p in re.findall(r"\d+", workers.group(1))]
    assert len(pids) == 5, output
    return pids


def alive(pid: int) -> bool:
    """A pid that still names a running process (a zombie no one reaps would count as left behind too)."""
    return Path(f"/proc/{pid}").exists()


def assert_all_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "the demo left processes behind"


@pytest.mark.slow
def test_demo_dials_a_campaign_prints_the_summary_and_leaves_no_process() -> None:
    started = time.monotonic()
    result = run_demo("--calls", "30", "--seed", "7", "--timeout", "50")
    took = time.monotonic() - started
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert took < 60, f"the demo took {took:.0f} s"
    assert "Traceback" not in output + result.stderr

    summary = output[output.index("Summary:") :]
    counts = {name: int(n) for name, n in re.findall(r"^  ([a-z-]+) +(\d+) +[\d.]+%$", summary, re.MULTILINE)}
    assert set(counts) <= {outcome.value for outcome in Outcome}, summary
    assert sum(counts.values()) == 30, summary
    assert counts.get(Outcome.COMPLETED.value, 0) > 0, summary
    assert re.search(r"^  total +30$", summary, re.MULTILINE), summary
    cps = re.search(r"CPS achieved: ([\d.]+) calls/s", summary)
    assert cps, summary
    assert float(cps.group(1)) > 0, summary
    latency = re.search(r"answer-to-agent latency \(answered_at -> bridged_at.*: p50 (\d+) ms, p99 (\d+) ms", summary)
    assert latency, summary
    assert 0 < int(latency.group(1)) <= int(latency.group(2)), summary
    assert "calls in progress: 0" in summary
    mode = re.search(r"dial mode predictive: calls placed .*; abandoned (\d+) of (\d+) answered", summary)
    assert mode, summary
    assert int(mode.group(1)) <= 0.03 * int(mode.group(2)), summary
    assert "rq-dashboard" in summary
    # stdout is a pipe here, so progress comes as plain lines rather than an in-place view
    assert "\x1b[" not in output
    assert re.search(r"^demo: +[\d.]+ s +queued \d+/30", output, re.MULTILINE), output

    assert_all_gone(started_pids(output), timeout=2)
    logs = re.search(r"logs in (\S+)", output)
    assert logs, output
    assert not Path(logs.group(1)).exists(), "the demo's temporary directory was left behind"


@pytest.mark.slow
def test_interrupting_the_demo_stops_everything_it_started() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli", "demo", "--calls", "200", "--timeout", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # wait until it is dialling, with calls in the air
        seen.append(line)
        if line.startswith("demo:") and "in progress" in line:
            break
    os.kill(process.pid, signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    output = "".join(seen) + rest
    assert process.returncode == 130, output + stderr
    assert "interrupted" in output
    assert_all_gone(started_pids(output))
    logs = re.search(r"logs kept in (\S+)", stderr)
    assert logs, stderr
    subprocess.run(["rm", "-rf", logs.group(1)], check=True)


def test_the_contact_list_mixes_every_kind_of_callee_by_number_ending() -> None:
    contacts = contact_list(2000, random.Random(1))
    kinds = {kind.label for _, _, kind in contacts}
    assert kinds == {kind.label for kind in CALLEES}
    for _, number, kind in contacts:
        assert re.fullmatch(r"\+1212[2-9]\d{6}", number)
        assert number.endswith(kind.suffix)
    assert len({number for _, number, _ in contacts}) == len(contacts)


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([2.0, 1.0], 0.5) == 1.0
