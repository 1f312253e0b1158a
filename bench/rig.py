"""Processes for the worker benchmark: a private Redis, the simulator, worker processes, and a plain
blocking ESL client to drive the simulator. Every process started here is stopped by ``Rig.close()``
(``with Rig() as rig:``), also on errors; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from dialer.esl import FrameParser, commands
from dialer.esl.frames import API_RESPONSE, COMMAND_REPLY, Frame

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGESIZE") // 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


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
    """Redis + simulator (+ workers started later); ``close()`` stops them all."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.controls: list[Control] = []
        self.redis_proc = self._start_redis()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis: redis.Redis[bytes] = redis.Redis.from_url(self.redis_url)
        wait_for(self._redis_up, 10, "redis-server")
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
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.redis_port = free_port()
        args = [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
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
                "DIALER_FREESWITCH": json.dumps([{"name": "sim", "host": "127.0.0.1", "port": self.sim_port}]),
                "DIALER_WRAP_UP_SECONDS": "0",
                "DIALER_CALL_LEASE_SECONDS": "30",
                "DIALER_WORKER_HEARTBEAT_GRACE": "60",
            }
        )
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
