"""Processes for the benchmarks: a private Redis, the simulator, dialer processes, and a plain blocking
ESL client to drive the simulator. Every process started here is stopped by ``Rig.close()``
(``with Rig() as rig:``), also on errors; every wait is bounded.

The machine may be shared: :func:`least_disturbed` repeats a measurement during which other processes
kept the machine busy and keeps the least disturbed one, with the load it saw (:class:`OtherLoad`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import redis

from bench.report import log
from dialer.esl import FrameParser, commands
from dialer.esl.frames import API_RESPONSE, COMMAND_REPLY, Frame
from dialer.localredis import free_port, redis_server_binary

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGESIZE") // 1024
# A measurement during which other processes kept more than QUIET cores busy is repeated, up to TRIES
# times, and the least disturbed one is reported (with its "other load").
QUIET = 0.2
TRIES = 3
T = TypeVar("T")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of the children it has waited for (cutime, cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLK_TCK


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def others_busy(ours: list[int], seconds: float = 1.0) -> float:
    """Cores kept busy over ``seconds`` by processes other than ``ours`` and this one (other users of the
    machine: their load skews every figure here)."""
    pids = [*ours, os.getpid()]
    machine, mine = machine_busy(), sum(cpu_seconds(pid) for pid in pids)
    time.sleep(seconds)
    return max(0.0, (machine_busy() - machine) - (sum(cpu_seconds(pid) for pid in pids) - mine)) / seconds


def wait_quiet(ours: list[int], limit: float = 0.3, timeout: float = 60.0) -> float:
    """Wait (up to ``timeout``) until other processes keep less than ``limit`` cores busy; returns their load."""
    deadline = time.monotonic() + timeout
    while (load := others_busy(ours)) > limit and time.monotonic() < deadline:
        pass
    return load


class OtherLoad:
    """Cores kept busy by processes outside the benchmark between ``start()`` and ``stop()``: the machine's
    busy time less this process's, its children's (running, or exited and reaped) and theirs'.

    A child that exits in between is counted from its reaped total (``RUSAGE_CHILDREN``) less what it had
    used at ``start()``, so processes started and stopped during the measurement count in full."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.cores = 0.0

    def _ours(self) -> float:
        running = [proc.pid for proc in self.rig.processes if proc.poll() is None]  # poll() reaps the exited
        usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        reaped_and_self = sum(u.ru_utime + u.ru_stime for u in usage)
        return reaped_and_self + sum(tree_cpu_seconds(pid) for pid in running)

    def start(self) -> None:
        self.machine, self.ours, self.started = machine_busy(), self._ours(), time.perf_counter()

    def stop(self) -> float:
        span = time.perf_counter() - self.started
        ours = self._ours() - self.ours
        self.cores = max(0.0, (machine_busy() - self.machine - ours) / span) if span > 0 else 0.0
        return self.cores


def least_disturbed(rig: Rig, measure: Callable[[int], T], what: str, *, smoke: bool = False) -> tuple[T, float]:
    """Run ``measure(attempt)`` after other processes have quietened down (``wait_quiet``); repeat it while
    they kept more than ``QUIET`` cores busy, up to ``TRIES`` times. Returns the least disturbed result and
    the load from other processes during it. ``smoke``: once, without waiting (the figures do not count)."""
    best: tuple[T, float] | None = None
    for attempt in range(1 if smoke else TRIES):
        before = 0.0 if smoke else wait_quiet([proc.pid for proc in rig.processes if proc.poll() is None])
        load = OtherLoad(rig)
        load.start()
        result = measure(attempt)
        others = load.stop()
        log(f"bench {what}: other load {before:.2f} cores before, {others:.2f} during")
        if best is None or others < best[1]:
            best = (result, others)
        if others <= QUIET:
            break
    assert best is not None
    return best


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB / 1024


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Control:
    """A blocking ESL client on its own socket: ``api`` commands, and optionally a raw event capture."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.parser = FrameParser()
        self.captured = bytearray()
        self.capturing = False
        self._frame()  # auth/request
        self._send(commands.auth("ClueCon"))

    def _frame(self) -> Frame:
        while True:
            frame = self.parser.next_frame()
            if frame is not None:
                return frame
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the simulator closed the control connection")
            if self.capturing:
                self.captured += data
            self.parser.feed(data)

    def _send(self, data: bytes) -> Frame:
        self.sock.sendall(data)
        while True:
            frame = self._frame()
            if frame.content_type in (COMMAND_REPLY, API_RESPONSE):
                return frame

    def api(self, command: str) -> str:
        frame = self._send(commands.api(command))
        return frame.body.decode() if frame.body else frame.reply_text

    def subscribe(self, data: bytes) -> None:
        self._send(data)

    def read_for(self, seconds: float) -> None:
        """Read (and capture) whatever arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            if not data:
                break
            if self.capturing:
                self.captured += data
            self.parser.feed(data)
            for _frame in self.parser:
                pass
        self.sock.settimeout(30.0)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.api("sim stats"))
        return result

    def originates(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.api("sim originates"))
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Rig:
    """Redis + simulator (+ dialer processes started later); ``close()`` stops them all.
    Without a scenario there is no simulator (``sim_proc``, ``sim_port`` and ``control`` are unset)."""

    sim_proc: subprocess.Popen[bytes]
    sim_port: int
    control: Control

    def __init__(self, scenario: dict[str, Any] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.controls: list[Control] = []
        self.redis_proc = self._start_redis()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis: redis.Redis[bytes] = redis.Redis.from_url(self.redis_url)
        wait_for(self._redis_up, 10, "redis-server")
        if scenario is not None:
            scenario_path = self.tmp / "scenario.json"
            scenario_path.write_text(json.dumps(scenario))
            self.sim_proc, self.sim_port = self._start_sim(scenario_path)
            self.control = self.connect()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _redis_up(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.ConnectionError:
            if self.redis_proc.poll() is not None:
                raise RuntimeError("redis-server exited") from None
            return False

    def _start_redis(self) -> subprocess.Popen[bytes]:
        self.redis_port = free_port()
        args = [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        proc = subprocess.Popen([*args, "--dir", str(self.tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def _start_sim(self, scenario_path: Path) -> tuple[subprocess.Popen[bytes], int]:
        args = [sys.executable, "-m", "dialer.sim", "--port", "0", "--scenario", str(scenario_path)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        self.processes.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r":(\d+)\s*$", line)
        if match is None:
            raise RuntimeError(f"dialer sim did not start: {line!r}")
        return proc, int(match.group(1))

    def connect(self) -> Control:
        control = Control(self.sim_port)
        self.controls.append(control)
        return control

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DIALER_REDIS_URL": self.redis_url,
                "DIALER_WRAP_UP_SECONDS": "0",
                "DIALER_CALL_LEASE_SECONDS": "30",
                "DIALER_WORKER_HEARTBEAT_GRACE": "60",
            }
        )
        if hasattr(self, "sim_port"):
            env["DIALER_FREESWITCH"] = json.dumps([{"name": "sim", "host": "127.0.0.1", "port": self.sim_port}])
        env.update(overrides)
        return env

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"proc-{len(self.processes)}.log").open("wb")
        proc = subprocess.Popen(args, env=env or self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(proc)
        return proc

    def start_worker(self, name: str, concurrency: int, **env: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "dialer.cli", "worker", "--concurrency", str(concurrency), "--name", name]
        return self.start(args, self.env(**env))

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def close(self) -> None:
        for control in self.controls:
            control.close()
        for proc in reversed(self.processes):  # workers first, then the simulator, Redis last
            with contextlib.suppress(Exception):
                self.stop(proc, timeout=10)
        with contextlib.suppress(Exception):
            self.redis.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
