"""Simulator benchmark: one ``dialer sim`` process, driven over real TCP from this process.

The simulator runs as its own process (``python -m dialer.sim --port 0``) so the figures are the
switch's, not the load generator's; both share this machine's cores. Phases:

1. burst: N ``bgapi originate`` pipelined on one connection as fast as TCP takes them; measured: how
   fast the switch accepts them (the ``+OK Job-UUID`` replies), and when the last BACKGROUND_JOB
   (``+OK <uuid>`` at answer) arrives. A second connection listens like a dialer (``event json`` of the
   events a dialer follows), so every event is built and serialised.
2. hold: the N answered, parked channels stay up; ``sim stats`` and ``show channels as json`` must see
   them all; the simulator's RSS and the round trip of ``api uuid_exists`` under that load are measured.
3. paced: originates at a fixed rate for a while (callees answer after ~320 ms and hang up after
   ``talk`` seconds); latency = BACKGROUND_JOB arrival - send - the scripted 320 ms, i.e. how late the
   simulator is. Same with the listener subscribed to ``event json ALL`` (the heaviest client).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event
from gevent import socket

from bench.report import Row, Section, log, table
from dialer.esl import FrameParser

DIALER_EVENTS = (
    "CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB"
)
HOLD_COLUMNS = ["channels (sim stats)", "show channels rows", "sim RSS MB", "uuid_exists p50 ms"]
HOLD_COLUMNS += ["uuid_exists p99 ms", "hupall ms"]
PACED_COLUMNS = ["listener", "target/s", "sent/s", "calls", "peak channels", "late p50 ms", "late p99 ms"]
PACED_COLUMNS += ["late max ms", "sim RSS MB"]
SCRIPTED_MS = 20 + 100 + 200  # ring, early media, answer: the callee below


def scenario(talk_ms: int | None) -> dict[str, object]:
    callee: dict[str, object] = {"ring_ms": 20, "early_media_ms": 100, "answer_ms": 200}
    if talk_ms is not None:
        callee["hangup_after_ms"] = talk_ms
    return {
        "default": callee,
        "use_default_rules": False,
        "limits": {"max_sessions": 100_000, "sessions_per_second": 100_000},
    }


@dataclass
class Sim:
    proc: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, scenario_path: Path) -> Sim:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialer.sim", "--port", "0", "--scenario", str(scenario_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r":(\d+)$", line.strip())
        if match is None:
            proc.kill()
            raise RuntimeError(f"dialer sim did not start: {line!r}")
        return cls(proc, int(match.group(1)))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@dataclass
class Conn:
    """An ESL client that counts frames and remembers when each BACKGROUND_JOB arrived."""

    port: int
    replies: list[bytes] = field(default_factory=list)
    job_times: dict[str, float] = field(default_factory=dict)
    event_bytes: int = 0

    def __post_init__(self) -> None:
        self.arrived = gevent.event.Event()
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.parser = FrameParser()
        self.reader = gevent.spawn(self._read)
        self.wait_replies(1)  # the greeting
        self.sock.sendall(b"auth ClueCon\n\n")
        self.wait_replies(2)

    def _read(self) -> None:
        job = re.compile(rb'"Job-UUID":"([0-9a-f-]{36})"')
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                return
            self.parser.feed(data)
            now = time.perf_counter()
            for frame in self.parser:
                if frame.is_event:
                    self.event_bytes += len(frame.body)
                    if b"BACKGROUND_JOB" in frame.body[:40] and (m := job.search(frame.body)):
                        self.job_times[m.group(1).decode()] = now
                else:
                    self.replies.append(frame.body or frame.headers.get("Reply-Text", "").encode())
                    self.arrived.set()

    def wait_replies(self, n: int, timeout: float = 120) -> None:
        with gevent.Timeout(timeout):
            while len(self.replies) < n:
                self.arrived.clear()
                if len(self.replies) < n:
                    self.arrived.wait()

    def api(self, line: str) -> bytes:
        n = len(self.replies) + 1
        self.sock.sendall(f"api {line}\n\n".encode())
        self.wait_replies(n)
        return self.replies[n - 1]

    def close(self) -> None:
        self.reader.kill()
        self.sock.close()


def originate(number: int, job_uuid: str) -> bytes:
    return (
        f"bgapi originate {{origination_uuid={uuid.uuid4()},ignore_early_media=true}}"
        f"sofia/gateway/pstn/1555{number:07d} &park()\nJob-UUID: {job_uuid}\n\n"
    ).encode()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Burst:
    rows: list[list[object]]
    hold: list[list[object]]
    answered_per_s: float
    channels: int
    rss_mb: float


def burst_and_hold(n: int, workdir: Path) -> Burst:
    path = workdir / "hold.json"
    path.write_text(json.dumps(scenario(None)))
    sim = Sim.start(path)
    try:
        listener, command = Conn(sim.port), Conn(sim.port)
        listener.api("sim stats")
        listener.sock.sendall(f"event json {DIALER_EVENTS}\n\n".encode())
        jobs = [str(uuid.uuid4()) for _ in range(n)]
        base = len(command.replies)
        t0 = time.perf_counter()
        for start in range(0, n, 200):
            command.sock.sendall(b"".join(originate(i, jobs[i]) for i in range(start, min(n, start + 200))))
            gevent.sleep(0)
        command.wait_replies(base + n)
        accepted_s = time.perf_counter() - t0
        with gevent.Timeout(120):
            while len(listener.job_times) < n:
                gevent.sleep(0.01)
        answered_s = max(listener.job_times.values()) - t0
        stats = json.loads(command.api("sim stats"))
        rows = json.loads(command.api("show channels as json"))["row_count"]
        rtts = []
        for _ in range(200):
            t = time.perf_counter()
            command.api(f"uuid_exists {uuid.uuid4()}")
            rtts.append((time.perf_counter() - t) * 1000)
        rss = sim.rss_mb()
        t = time.perf_counter()
        command.api("hupall NORMAL_CLEARING")
        hupall_ms = (time.perf_counter() - t) * 1000
        burst = [
            [
                n,
                f"{n / accepted_s:,.0f}",
                f"{answered_s:.2f}",
                f"{n / answered_s:,.0f}",
                f"{listener.event_bytes / 1e6:.0f}",
            ]
        ]
        p50, p99 = statistics.median(rtts), percentile(rtts, 0.99)
        hold: list[list[object]] = [[stats["channels"], rows, f"{rss:.0f}", f"{p50:.2f}", f"{p99:.2f}"]]
        hold[0].append(f"{hupall_ms:.0f}")
        listener.close()
        command.close()
        return Burst(burst, hold, n / answered_s, int(stats["channels"]), rss)
    finally:
        sim.stop()


def paced(rate: int, seconds: float, talk_ms: int, subscription: str, workdir: Path) -> tuple[list[object], float]:
    """The table row, and the p99 of how late the simulator was (ms)."""
    path = workdir / "paced.json"
    path.write_text(json.dumps(scenario(talk_ms)))
    sim = Sim.start(path)
    try:
        listener, command = Conn(sim.port), Conn(sim.port)
        listener.sock.sendall(f"event json {subscription}\n\n".encode())
        listener.wait_replies(3)
        sent: dict[str, float] = {}
        total = int(rate * seconds)
        tick = 0.01
        per_tick = rate * tick
        t0 = time.perf_counter()
        done = 0
        peak = 0
        while done < total:
            due = min(total, int((time.perf_counter() - t0) / tick * per_tick) + 1)
            batch = []
            while done < due:
                job = str(uuid.uuid4())
                sent[job] = time.perf_counter()
                batch.append(originate(done, job))
                done += 1
            if batch:
                command.sock.sendall(b"".join(batch))
            gevent.sleep(tick / 2)
        send_s = time.perf_counter() - t0
        with gevent.Timeout(60):
            while len(listener.job_times) < total:
                gevent.sleep(0.01)
        stats = json.loads(command.api("sim stats"))
        peak = stats["peak_sessions"]
        late = [(listener.job_times[j] - sent[j]) * 1000 - SCRIPTED_MS for j in sent]
        rss = sim.rss_mb()
        listener.close()
        command.close()
        return [subscription if len(subscription) < 10 else "dialer set", rate, f"{total / send_s:,.0f}", total,
                peak, f"{statistics.median(late):.1f}", f"{percentile(late, 0.99):.1f}", f"{max(late):.1f}",
                f"{rss:.0f}"], percentile(late, 0.99)  # fmt: skip
    finally:
        sim.stop()


def run(smoke: bool) -> Section:
    n = 300 if smoke else 5000
    rate, seconds, talk = (200, 1.0, 500) if smoke else (500, 20.0, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        log(f"bench sim: burst of {n} originates, then hold")
        burst = burst_and_hold(n, workdir)
        log(f"bench sim: paced {rate}/s for {seconds}s")
        subscriptions = [DIALER_EVENTS] if smoke else [DIALER_EVENTS, "ALL"]
        paced_runs = [paced(rate, seconds, talk, events, workdir) for events in subscriptions]
    paced_rows = [row for row, _ in paced_runs]
    need = 2 * 300  # originates/s the dialer's target of 300 calls/s asks of the switch (customer + agent leg)
    summary = [
        Row(f"originates answered/s, burst of {n:,}", f"{burst.answered_per_s:,.0f}",
            f"{need}/s (the dialer's 300 calls/s, 2 legs each)", f"{burst.answered_per_s / need:.1f}x"),
        Row("channels held in one simulator process", f"{burst.channels:,} ({burst.rss_mb:.0f} MB RSS)"),
        Row(f"paced {rate}/s, dialer's events: BACKGROUND_JOB late p99", f"{paced_runs[0][1]:.1f} ms"),
    ]  # fmt: skip
    body = "\n\n".join(
        [
            "Burst: originates pipelined on one ESL connection, one `event json` listener with the dialer's events.",
            table(["originates", "accepted/s", "last answered (s)", "answered/s", "event MB sent"], burst.rows),
            "Hold: the answered channels stay parked (5,000 concurrent channels in one simulator process). "
            "The RSS is the process's high-water mark: it includes the event buffers queued during the burst.",
            table(HOLD_COLUMNS, burst.hold),
            f"Paced: {rate} originates/s for {seconds:.0f} s; callees answer after {SCRIPTED_MS} ms and hang up "
            f"{talk / 1000:.0f} s later. *late* = BACKGROUND_JOB arrival - send - {SCRIPTED_MS} ms "
            "(how late the simulator is).",
            table(PACED_COLUMNS, paced_rows),
            "Simulator and load generator share the machine's cores; the simulator is one process, one core.",
        ]
    )
    return Section("sim", "FreeSWITCH simulator: concurrency and originate rate", body, summary)
