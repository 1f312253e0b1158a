"""``dialer demo``: the whole system on one machine, on embedded defaults, for a first look.

It starts a private ``redis-server`` (no persistence, in a temporary directory), the FreeSWITCH
simulator with a scenario of simulated agents, two ``dialer worker`` processes and ``dialer
scheduler``; it creates a campaign (the Python campaign API, as the HTTP API and the CLI would) whose
numbers end in the digits that make the simulated callees answer, ring out, refuse and so on (see
``dialer.sim.scenarios``), starts it, shows the calls' states live, and prints a summary read back
from the call records in Redis.

Every process it starts runs in a session of its own, so Ctrl-C reaches only the demo, which then
stops them in order: workers first (SIGTERM, a warm shutdown), then the simulator, then Redis. On
Linux each child also gets SIGTERM from the kernel if the demo itself dies (``PR_SET_PDEATHSIG``),
so nothing is left behind even after a SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import redis
from rq import Queue, Worker
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from dialer.callmodel import CallState, DialMode, Outcome
from dialer.campaigns import Campaigns
from dialer.enqueue import CALL_QUEUE
from dialer.localredis import RedisNotFound, free_port, redis_server_binary
from dialer.store import AgentState, Store, available_key

CAMPAIGN = "demo"
GATEWAY = "pstn"
MAX_CALLS = 8000  # contact numbers are +1 212 2nnn + the callee's three-digit ending
RING_TIMEOUT = 6  # seconds a "no answer" callee rings; kept short so the demo ends in about a minute
WRAP_UP_SECONDS = 0.3  # simulated agents need no time to type notes; a real floor sets seconds here
AGENT_WAIT_SECONDS = 3.0  # an answered customer waits this long on hold for an agent, then is abandoned


@dataclass(frozen=True)
class CalleeKind:
    """One kind of simulated customer: the number ending that selects it in the simulator."""

    label: str
    suffix: str
    weight: int
    callee: dict[str, Any]


# A contact list as a dialer meets it: about half the calls answer (some after early media, some
# hang up on their own), the rest are busy, ring out, refuse, do not exist, fail in the network or
# reach a machine. Delays carry jitter so the calls do not move in lock-step.
CALLEES: tuple[CalleeKind, ...] = (
    CalleeKind("answers", "100", 34, {"early_media": False, "ring_ms": 80, "answer_ms": 1500, "jitter_ms": 900}),
    CalleeKind("early media, then answers", "183", 8, {"early_media_ms": 400, "answer_ms": 1500, "jitter_ms": 900}),
    CalleeKind("answers, hangs up after 2 s", "222", 6, {"early_media": False, "hangup_after_ms": 2000}),
    CalleeKind("answering machine", "777", 10, {"outcome": "machine", "answer_ms": 1800, "jitter_ms": 900}),
    CalleeKind("busy", "486", 10, {"outcome": "busy", "early_media": False, "answer_ms": 1200, "jitter_ms": 800}),
    CalleeKind("no answer", "408", 10, {"outcome": "no_answer", "early_media": False}),
    CalleeKind("invalid number", "404", 8, {"outcome": "invalid", "early_media": False, "answer_ms": 90}),
    CalleeKind("rejected", "603", 7, {"outcome": "reject", "early_media": False, "answer_ms": 900, "jitter_ms": 600}),
    CalleeKind("network failure", "503", 7, {"outcome": "network_failure", "early_media": False, "answer_ms": 50}),
)  # fmt: skip

# The order states and outcomes are shown in.
LIVE_STATES = (
    ("queued", "queued (in RQ)"),
    (CallState.ORIGINATING.value, "originating"),
    (CallState.TRYING.value, "trying"),
    (CallState.RINGING.value, "ringing (180)"),
    (CallState.EARLY_MEDIA.value, "early media (183)"),
    (CallState.ANSWERED.value, "answered, on hold"),
    (CallState.CONNECTING_AGENT.value, "ringing an agent"),
    (CallState.BRIDGED.value, "talking to an agent"),
)
OUTCOMES = tuple(outcome.value for outcome in Outcome)


class DemoError(Exception):
    """The demo could not set itself up (no redis-server, a process that did not start ...)."""


class _Stop(BaseException):  # like KeyboardInterrupt: `except Exception` must not catch it
    """SIGTERM/SIGHUP to the demo: stop as Ctrl-C would."""


# ------------------------------------------------------------------ processes


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if the demo dies, even by SIGKILL."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Processes:
    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, stdout: bool = False) -> Child:
        log = self.workdir / f"{name}.log"
        with log.open("w") as log_file:
            process = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE if stdout else log_file,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C in the terminal reaches the demo only; it stops these in order
                preexec_fn=_die_with_parent,  # safe: the demo runs no threads
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        """In reverse start order: the workers while the switch and Redis they drain through are still
        up, then the simulator, Redis last."""
        for child in reversed(self.children):
            child.stop(grace=25 if child.name.startswith("worker") else 10)

    def dialer(self, name: str, argv: Sequence[str], redis_url: str, sim_port: int) -> Child:
        """A ``dialer`` process on the demo's Redis and simulator, with the demo's settings."""
        env = embedded_env()
        env.update(
            {
                "DIALER_REDIS_URL": redis_url,
                "DIALER_FREESWITCH": json.dumps([{"name": "sim", "host": "127.0.0.1", "port": sim_port}]),
                "DIALER_AGENT_WAIT_SECONDS": str(AGENT_WAIT_SECONDS),
                "DIALER_WRAP_UP_SECONDS": str(WRAP_UP_SECONDS),
                "DIALER_AGENT_RING_TIMEOUT": "5",
                "DIALER_WORKER_DRAIN_TIMEOUT": "5",
            }
        )
        return self.start(name, [sys.executable, "-m", "dialer.cli", *argv], env=env)


def start_redis(procs: Processes) -> tuple[Child, str]:
    port = free_port()
    try:
        binary = redis_server_binary()
    except RedisNotFound as exc:
        raise DemoError(str(exc)) from None
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    child = procs.start("redis", [*argv, "--dir", str(procs.workdir)])
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return child, url
        except redis.ConnectionError:
            if child.process.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"redis-server did not start:\n{child.log_tail()}") from None
            time.sleep(0.05)
        finally:
            client.close()


def start_sim(procs: Processes, scenario: dict[str, Any]) -> tuple[Child, int]:
    scenario_file = procs.workdir / "scenario.json"
    scenario_file.write_text(json.dumps(scenario, indent=2))
    argv = [sys.executable, "-m", "dialer.cli", "sim", "--port", "0", "--scenario", str(scenario_file)]
    child = procs.start("sim", argv, env=embedded_env(), stdout=True)
    stdout = child.process.stdout
    assert stdout is not None
    ready, _, _ = select.select([stdout], [], [], 15)
    line = stdout.readline() if ready else ""
    host_port = line.strip().rsplit(":", 1)
    if not line.startswith("dialer sim: listening on") or not host_port[-1].isdigit():
        raise DemoError(f"the simulator did not start: {line!r}\n{child.log_tail()}")
    return child, int(host_port[-1])


def embedded_env() -> dict[str, str]:
    """The environment without DIALER_* settings: the demo's processes run on embedded defaults, whatever the
    user's shell holds (and their working directory is the demo's own, so no .env file is read either)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("DIALER_")}


def start_workers(procs: Processes, count: int, redis_url: str, sim_port: int) -> list[Child]:
    argv = ["worker", "--concurrency", "500"]
    return [
        procs.dialer(f"worker-{n}", [*argv, "--name", f"demo-{n}"], redis_url, sim_port) for n in range(1, count + 1)
    ]


def wait_for_workers(client: redis.Redis[bytes], workers: list[Child], timeout: float) -> None:
    """Workers register in RQ once they are connected to the switch: wait for all of them."""
    deadline = time.monotonic() + timeout
    while Worker.count(connection=client) < len(workers):
        for worker in workers:
            if worker.process.poll() is not None:
                raise DemoError(f"{worker.name} exited with status {worker.process.returncode}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise DemoError(f"the workers did not come up within {timeout:.0f} s:\n{workers[0].log_tail()}")
        time.sleep(0.1)


# ------------------------------------------------------------------ the campaign


def demo_scenario(agent_ids: list[str], rng: random.Random) -> dict[str, Any]:
    """Callee rules by number ending, and agents who answer in 0.2-0.9 s and talk for 0.6-2 s."""
    agents = [
        {"id": agent_id, "answer_ms": rng.randint(200, 900), "talk_ms": rng.randint(600, 2000)}
        for agent_id in agent_ids
    ]
    rules = [{"match": rf"\+\d*{kind.suffix}", "callee": kind.callee} for kind in CALLEES]
    return {"rules": rules, "agents": agents, "gateways": [GATEWAY]}


def contact_list(calls: int, rng: random.Random) -> list[tuple[str, str, CalleeKind]]:
    """(contact id, number, kind) for ``calls`` contacts, kinds drawn by weight, in random order; the
    numbers are valid New York numbers, so the campaign's intake accepts them."""
    kinds = rng.choices(CALLEES, weights=[kind.weight for kind in CALLEES], k=calls)
    return [(f"c{n:05d}", f"+1212{2000 + n:04d}{kind.suffix}", kind) for n, kind in enumerate(kinds)]


def campaign_config(mode: DialMode, cps: float) -> dict[str, Any]:
    return {
        "id": CAMPAIGN,
        "name": "dialer demo",
        "caller_id_number": "+15550000000",
        "gateway": GATEWAY,
        "dial_mode": mode.value,
        "cps": cps,
        "ring_timeout": RING_TIMEOUT,
        "calling_window": {"start": "00:00", "end": "23:59:59"},  # the demo runs at any hour
        "max_attempts": 1,
    }


def call_records(store: Store) -> list[dict[str, str]]:
    pipe = store.redis.pipeline(transaction=False)
    for key in store.redis.scan_iter(match=f"dialer:call:{CAMPAIGN}:*", count=1000):
        if not key.endswith(b":log"):
            pipe.hgetall(key)
    return [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute()]


# ------------------------------------------------------------------ progress


@dataclass(frozen=True)
class Snapshot:
    total: int
    enqueued: int
    states: Counter[str]
    outcomes: Counter[str]
    agents: Counter[str]
    elapsed: float

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    @property
    def in_progress(self) -> int:
        return self.enqueued - self.done


def snapshot(store: Store, campaigns: Campaigns, total: int, elapsed: float) -> Snapshot:
    """Calls in progress by state (from their records), finished contacts by outcome (the campaign's)."""
    status = campaigns.status(CAMPAIGN)
    states = Counter(r.get("state", "") for r in call_records(store) if not r.get("outcome"))
    states["queued"] = max(0, status.in_progress - sum(states.values()))  # dispatched, not yet picked up
    outcomes = Counter(status.contacts_by_outcome)
    return Snapshot(total, status.attempts, states, outcomes, agent_states(store), elapsed)


def agent_states(store: Store) -> Counter[str]:
    """Agents by state; one whose wrap-up is over counts as available (the store flips it lazily, on
    the next reservation)."""
    now = store.redis_time()
    free = {member.decode() for member in store.redis.zrangebyscore(available_key("default"), "-inf", now)}
    states: Counter[str] = Counter()
    for agent in store.agents():
        state = agent.get("state", "?")
        if state == AgentState.WRAP_UP.value and agent.get("id") in free:
            state = AgentState.AVAILABLE.value
        states[state] += 1
    return states


def progress_bar(done: int, total: int, width: int = 40) -> str:
    filled = width * done // max(total, 1)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def live_lines(snap: Snapshot) -> list[str]:
    """The in-place view: a bar, then calls in progress by state beside finished calls by outcome."""
    lines = [
        f"{progress_bar(snap.done, snap.total)} {snap.done}/{snap.total} done  "
        f"queued {snap.enqueued}/{snap.total}  {snap.elapsed:5.1f} s",
        "",
        f"  {'in progress':<24}{'':>5}      {'outcome':<22}{'':>5}",
    ]
    shown_outcomes = [o for o in OUTCOMES if o in snap.outcomes] or [Outcome.COMPLETED.value]
    state_rows = [(label, snap.states.get(state, 0)) for state, label in LIVE_STATES]
    outcome_rows = [(o, snap.outcomes.get(o, 0)) for o in shown_outcomes]
    for n in range(max(len(state_rows), len(outcome_rows))):
        left = f"  {state_rows[n][0]:<24}{state_rows[n][1]:>5}" if n < len(state_rows) else " " * 31
        right = f"      {outcome_rows[n][0]:<22}{outcome_rows[n][1]:>5}" if n < len(outcome_rows) else ""
        lines.append(left + right)
    agent_states = ", ".join(f"{snap.agents.get(s.value, 0)} {s.value}" for s in AgentState if s in snap.agents)
    lines += ["", f"  agents: {agent_states}"]
    return lines


def plain_line(snap: Snapshot) -> str:
    outcomes = " ".join(f"{o}={snap.outcomes[o]}" for o in OUTCOMES if o in snap.outcomes)
    return (
        f"demo: {snap.elapsed:5.1f} s  queued {snap.enqueued}/{snap.total}  "
        f"in progress {snap.in_progress}  done {snap.done}/{snap.total}  {outcomes}"
    )


class Screen:
    """Redraws the live view in place on a terminal; elsewhere prints a plain line about every second."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.height = 0
        self.last_plain = 0.0

    def show(self, snap: Snapshot, final: bool = False) -> None:
        if not self.tty:
            if final or snap.elapsed - self.last_plain >= 1.0:
                self.last_plain = snap.elapsed
                print(plain_line(snap), file=self.out, flush=True)
            return
        lines = live_lines(snap)
        move_up = f"\x1b[{self.height}F" if self.height else ""
        self.out.write(move_up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self.height = len(lines)


# ------------------------------------------------------------------ the summary


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency some call really had)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


# What "answer-to-agent latency" is made of, from the timestamps in each call record.
LATENCIES = (
    ("answer-to-agent latency (answered_at -> bridged_at: the customer on hold)", "answered_at", "bridged_at"),
    ("  waiting for a free agent (answered_at -> connecting_agent_at)", "answered_at", "connecting_agent_at"),
    ("  agent ringing (connecting_agent_at -> agent_answered_at)", "connecting_agent_at", "agent_answered_at"),
    ("  bridging (agent_answered_at -> bridged_at)", "agent_answered_at", "bridged_at"),
)


def _gaps(records: list[dict[str, str]], start: str, end: str) -> list[float]:
    return [float(r[end]) - float(r[start]) for r in records if r.get(start) and r.get(end)]


def _latency_line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label}: no calls reached an agent"
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    return f"  {label}: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (n={len(values)})"


def summary(
    store: Store, kinds: dict[str, CalleeKind], mode: DialMode, target_cps: float, wall: float, url: str
) -> list[str]:
    records = call_records(store)
    outcomes = Counter(r.get("outcome", "(none)") for r in records)
    lines = [f"Summary: campaign {CAMPAIGN!r}, {len(records)} calls in {wall:.1f} s", ""]
    lines.append(f"  {'outcome':<24}{'calls':>6}{'share':>8}")
    for outcome, count in sorted(outcomes.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {outcome:<24}{count:>6}{100 * count / max(len(records), 1):>7.1f}%")
    lines.append(f"  {'total':<24}{len(records):>6}")

    lines += ["", f"  {'callee mix (by number ending)':<34}{'calls':>6}"]
    for kind, count in Counter(
        kinds[r["contact_id"]].label for r in records if r.get("contact_id") in kinds
    ).most_common():
        lines.append(f"  {kind:<34}{count:>6}")

    human = outcomes.get(Outcome.COMPLETED.value, 0) + outcomes.get(Outcome.ABANDONED.value, 0)
    abandoned = outcomes.get(Outcome.ABANDONED.value, 0)
    modes = ", ".join(f"{count} {m}" for m, count in Counter(r.get("dial_mode", "?") for r in records).most_common())
    lines += [
        "",
        f"  dial mode {mode.value}: calls placed {modes}; abandoned {abandoned} of {human} answered by a person"
        f" ({100 * abandoned / max(human, 1):.1f}%, cap 3%)",
    ]

    originated = sorted(float(r["originated_at"]) for r in records if r.get("originated_at"))
    span = originated[-1] - originated[0] if len(originated) > 1 else 0.0
    cps = (len(originated) - 1) / span if span > 0 else 0.0
    lines += [
        "",
        f"  CPS achieved: {cps:.1f} calls/s originated (first to last originate; target {target_cps:g}/s)",
    ]
    lines += [_latency_line(label, _gaps(records, start, end)) for label, start, end in LATENCIES]
    queue = Queue(CALL_QUEUE, connection=store.redis, serializer=JSONSerializer)
    unfinished = sum(1 for r in records if not r.get("outcome"))
    in_progress = unfinished + len(store.in_flight()) + len(StartedJobRegistry(queue=queue)) + len(queue)
    lines += [
        f"  calls in progress: {in_progress}",
        f"  rq-dashboard: while a system runs, `DIALER_DASHBOARD_PASSWORD=... dialer dashboard --redis-url {url}` "
        "shows its queues, call jobs and workers (this Redis stops with the demo)",
    ]
    return lines


# ------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer demo",
        description="Run a demo campaign through Redis, two workers and the FreeSWITCH simulator.",
    )
    parser.add_argument("--calls", type=int, default=300, help="contacts in the campaign (%(default)s)")
    parser.add_argument("--cps", type=float, default=10.0, help="the campaign's calls per second limit (%(default)s)")
    parser.add_argument(
        "--mode", type=DialMode, default=DialMode.PREDICTIVE, choices=list(DialMode), help="dial mode (%(default)s)"
    )
    parser.add_argument("--agents", type=int, default=20, help="simulated agents (%(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="dialer worker processes (%(default)s)")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds (%(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the contact list and agents")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs after a clean run")
    return parser


@contextlib.contextmanager
def _signals_stop_the_demo() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def follow_campaign(store: Store, campaigns: Campaigns, total: int, screen: Screen, deadline: float) -> Snapshot:
    """Start the campaign and redraw the view until every contact has an outcome (or the deadline passes)."""
    started = time.monotonic()
    campaigns.start(CAMPAIGN)
    while True:
        now = time.monotonic()
        snap = snapshot(store, campaigns, total, now - started)
        if snap.done == total or now > deadline:
            screen.show(snap, final=True)
            return snap
        screen.show(snap)
        time.sleep(0.25)


def run(args: argparse.Namespace, procs: Processes, out: TextIO) -> int:
    deadline = time.monotonic() + args.timeout
    rng = random.Random(args.seed)
    redis_child, url = start_redis(procs)
    agent_ids = [f"{1001 + n}" for n in range(args.agents)]
    sim_child, sim_port = start_sim(procs, demo_scenario(agent_ids, rng))
    workers = start_workers(procs, args.workers, url, sim_port)
    scheduler = procs.dialer("scheduler", ["scheduler"], url, sim_port)
    worker_pids = ", ".join(str(w.pid) for w in workers)
    print(f"dialer demo: redis-server pid {redis_child.pid} at {url}", file=out)
    print(f"dialer demo: simulator pid {sim_child.pid} on 127.0.0.1:{sim_port}", file=out)
    print(
        f"dialer demo: worker pids {worker_pids}; scheduler pid {scheduler.pid}; logs in {procs.workdir}",
        file=out,
        flush=True,
    )

    store = Store.from_url(url)
    for agent_id in agent_ids:
        store.add_agent(agent_id, "default", f"user/{agent_id}")
        store.set_agent_ready(agent_id)
    wait_for_workers(store.redis, workers, timeout=30)
    contacts = contact_list(args.calls, rng)
    campaigns = Campaigns(store.redis)
    campaigns.create(campaign_config(args.mode, args.cps))
    intake = campaigns.add_contacts(CAMPAIGN, [{"contact_id": c, "number": number} for c, number, _ in contacts])
    if intake.accepted != len(contacts):
        raise DemoError(f"the campaign refused contacts: {intake.rejected[:3]}")
    print(
        f"dialer demo: {args.agents} agents ready; campaign {CAMPAIGN!r} of {args.calls} contacts, {args.mode.value}, "
        f"at most {args.cps:g} calls/s, through {args.workers} workers\n",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    last = follow_campaign(store, campaigns, len(contacts), Screen(out), deadline)
    wall = time.monotonic() - started
    for child in (scheduler, *workers):  # a warm shutdown: each worker finishes or hands back what it holds
        child.stop(grace=25)
    print("", file=out)
    kinds = {contact_id: kind for contact_id, _, kind in contacts}
    for line in summary(store, kinds, args.mode, args.cps, wall, url):
        print(line, file=out)
    store.redis.close()
    if last.done != len(contacts):
        print(f"dialer demo: timed out after {args.timeout:g} s with calls unfinished", file=out)
        return 1
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not 1 <= args.calls <= MAX_CALLS or args.cps <= 0 or args.agents < 1 or args.workers < 1 or args.timeout <= 0:
        print(
            f"dialer demo: --cps, --agents, --workers and --timeout must be positive, --calls 1 to {MAX_CALLS}",
            file=sys.stderr,
        )
        return 2
    out = sys.stdout
    workdir = Path(tempfile.mkdtemp(prefix="dialer-demo-"))
    procs = Processes(workdir)
    status = 1
    try:
        with _signals_stop_the_demo():
            status = run(args, procs, out)
    except DemoError as exc:
        print(f"dialer demo: {exc}", file=sys.stderr)
    except (KeyboardInterrupt, _Stop):
        print("\ndialer demo: interrupted; stopping", file=out)
        status = 130
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stops below are bounded; let them finish
        try:
            procs.stop_all()
        finally:
            signal.signal(signal.SIGINT, previous)
        pids = " ".join(str(child.pid) for child in procs.children)
        print(f"dialer demo: stopped every process it started (pids {pids})", file=out, flush=True)
        if status == 0 and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"dialer demo: logs kept in {workdir}", file=sys.stderr)
    return status
