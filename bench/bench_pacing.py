"""Pacing accuracy: a global CPS limit held by real ``dialer worker`` processes, measured on the switch.

``CALLS`` calls are queued up front (a full queue: 20 s worth at the limit), then ``WORKERS`` worker
processes take them with ``DIALER_GLOBAL_CPS=LIMIT``. Callees answer after ``ANSWER_MS``, agents answer at
once and hang up after ``TALK_MS``: the workers run whole calls (hold music, agent, bridge) while they
pace. Everything is measured from the simulator's record of originates (``api sim originates``: when
each originate reached the switch), never from the dialer's own counters:

- the most customer originates in any one-second window, sliding over every start point
  (``tests/pacing/windows.py``, the same check as the pacing tests), and the shortest span of
  ``LIMIT + 1`` consecutive originates (at least 1 s: the limit held; the excess is the room left);
- the achieved rate, first to last originate (the queue is never empty in between).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.bench_worker import agents, outcomes, payload, percentile, ready_agents
from bench.report import Row, Section, log, table
from bench.rig import QUIET, Rig, least_disturbed, wait_for
from dialer.enqueue import enqueue_call
from dialer.store import Store, call_key
from settings import Settings
from tests.pacing.windows import achieved_rate, max_in_any_window, shortest_span

LIMIT = 50  # DIALER_GLOBAL_CPS
WORKERS = 4
CONCURRENCY = 50  # greenlets per worker: 4 x 50 calls waiting for a token at once, so the pacer never idles
ANSWER_MS = 100
TALK_MS = 1000
AGENTS = 200  # > LIMIT x (answer + talk): an agent is always free
GROUP = "pace"
COLUMNS = ["limit CPS", "workers", "originates/calls", "each dialled once", "max in 1 s", f"span of {LIMIT + 1} s"]
COLUMNS += ["achieved CPS", "of limit", "seconds", "per worker", "other load"]


SMOKE_CALLS = 60
FULL_CALLS = 20 * LIMIT


@dataclass
class Result:
    calls: int
    originates: int  # customer originates the switch received
    dialled_once: bool  # one originate per call, each with its own uuid
    peak: int  # most originates in any one-second window
    span: float  # shortest span of LIMIT + 1 consecutive originates, s
    rate: float  # achieved originates/s, first to last
    duration: float  # first to last originate, s
    by_worker: dict[str, int]
    outcomes: dict[str, int]
    # ms, claim of the attempt (Redis time, just after its grant) -> the switch receiving it
    delays: list[float] = field(repr=False)


def scenario() -> dict[str, Any]:
    return {
        "default": {"ring_ms": 0, "early_media": False, "answer_ms": ANSWER_MS},
        "use_default_rules": False,
        "limits": {"max_sessions": 1_000_000, "sessions_per_second": 1_000_000},
        "agents": agents("a", AGENTS, TALK_MS),
    }


def measure(rig: Rig, calls: int, attempt: int) -> Result:
    store = Store(rig.redis)
    campaign = f"pace{attempt}"
    rig.control.api("sim clear")
    log(f"bench pacing: {calls} calls queued, {WORKERS} workers, global limit {LIMIT} CPS")
    for n in range(calls):
        enqueue_call(rig.redis, payload(campaign, n, GROUP))
    env = {"DIALER_GLOBAL_CPS": str(LIMIT)}
    workers = [rig.start_worker(f"{campaign}-w{i}", CONCURRENCY, **env) for i in range(WORKERS)]
    call_ids = [f"{campaign}:c{n}:1" for n in range(calls)]
    try:
        timeout = 60 + 3 * calls / LIMIT
        wait_for(lambda: outcomes(store, call_ids).get("none", 0) == 0, timeout, "every call's outcome", 0.5)
    finally:
        for worker in workers:
            rig.stop(worker)
    customer = [o for o in rig.control.originates() if o["endpoint"].startswith("gateway/")]
    times = [o["time"] for o in customer]
    received = {o["uuid"]: o["time"] for o in customer}
    pipe = rig.redis.pipeline(transaction=False)
    for call_id in call_ids:
        pipe.hmget(call_key(call_id), "uuid", "claimed_at")
    claims = [(uuid.decode(), float(at)) for uuid, at in pipe.execute() if uuid and at]
    return Result(
        calls=calls,
        originates=len(customer),
        dialled_once=len({o["uuid"] for o in customer}) == len(customer) == calls,
        peak=max_in_any_window(times),
        span=shortest_span(times, LIMIT + 1),
        rate=achieved_rate(times),
        duration=max(times) - min(times) if times else 0.0,
        by_worker=dict(sorted(Counter(o["variables"].get("dialer_worker", "?") for o in customer).items())),
        outcomes=outcomes(store, call_ids),
        delays=[(received[uuid] - at) * 1000 for uuid, at in claims if uuid in received],
    )


def run(smoke: bool) -> Section:
    calls = SMOKE_CALLS if smoke else FULL_CALLS
    with Rig(scenario()) as rig:
        ready_agents(Store(rig.redis), "a", AGENTS, GROUP)
        result, others = least_disturbed(rig, lambda attempt: measure(rig, calls, attempt), "pacing", smoke=smoke)
    log(f"bench pacing: {result}")
    return section(result, others)


def section(r: Result, others: float) -> Section:
    margin = Settings.model_fields["pacing_margin"].default
    expected = LIMIT / (1 + margin)
    span = f"{r.span:.3f}" if r.originates > LIMIT else "- (fewer calls)"
    split = ", ".join(f"{count}" for count in r.by_worker.values())
    rows = [[LIMIT, WORKERS, f"{r.originates:,}/{r.calls:,}", "yes" if r.dialled_once else "**no**", r.peak,
             span, f"{r.rate:.2f}", f"{r.rate / LIMIT:.1%}", f"{r.duration:.1f}", split, f"{others:.2f}"]]  # fmt: skip
    delay = [[len(r.delays), f"{percentile(r.delays, 0.5):.1f}", f"{percentile(r.delays, 0.99):.1f}",
              f"{max(r.delays, default=float('nan')):.1f}", f"{margin * 3 / 4 * 1000:.1f}"]]  # fmt: skip
    body = "\n\n".join(
        [
            f"{r.calls:,} calls queued up front (a full queue), then {WORKERS} `dialer worker` processes "
            f"({CONCURRENCY} greenlets each) with `DIALER_GLOBAL_CPS={LIMIT}`; callees answer after {ANSWER_MS} ms, "
            f"agents at once and hang up after {TALK_MS} ms. From the simulator's record of originates: "
            "*max in 1 s* = most customer originates in any one-second window (sliding, from every originate); "
            f"*span of {LIMIT + 1}* = shortest time covering {LIMIT + 1} consecutive originates (>= 1 s: the "
            "limit held, the excess is the room left for jitter); *achieved* = first to last originate. "
            f"The pacer aims at limit / (1 + margin) = {expected:.1f}/s (`DIALER_PACING_MARGIN` {margin}). "
            f"*other load* = cores kept busy by other processes (a run above {QUIET} is repeated).",
            table(COLUMNS, rows),
            f"Why no window holds more: the pacer keeps any {LIMIT + 1} grants at least 1 s + 3 x margin/4 apart "
            "in Redis time; a worker takes fresh tokens for an originate it could not send within 3 x margin/4 "
            "of its grant, and when the switch acknowledges an originate later than that (it read it late: the "
            "simulator shares 2 cores with 4 workers and Redis), the worker pushes the limit back by the excess. "
            "The delay below runs from the attempt's claim (Redis time, the step after its grant) to the simulator "
            "receiving the originate (same host, same clock): a lower bound of grant to switch.",
            table(["calls", "claim -> switch p50 ms", "p99 ms", "max ms", "allowance ms"], delay),
            "Outcomes: " + ", ".join(f"{name} {count:,}" for name, count in sorted(r.outcomes.items())) + ".",
        ]
    )
    summary = [
        Row("max originates in any 1 s window", f"{r.peak}", f"limit {LIMIT}", f"{r.peak / LIMIT:.2f}",
            f"<= {LIMIT}", r.peak <= LIMIT),
        Row("achieved CPS (full queue)", f"{r.rate:.2f}", f"limit {LIMIT}", f"{r.rate / LIMIT:.2f}",
            ">= 0.95 of the limit", r.rate >= 0.95 * LIMIT),
        Row("each call dialled exactly once", "yes" if r.dialled_once else "no", "-", "-", "yes", r.dialled_once),
    ]  # fmt: skip
    return Section("pacing", f"Pacing: a global {LIMIT} CPS limit across {WORKERS} workers", body, summary)
