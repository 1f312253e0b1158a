"""``dialer status``: what the whole system is doing, read from Redis (keys: ``dialer.store``, ``dialer.campaigns``).

    dialer status              # redraws in place every --interval seconds on a terminal; plain snapshots otherwise
    dialer status --once       # one snapshot, then exit

Four tables: campaigns (state, contacts by state, calls queued or in progress, CPS over the last 10 s),
RQ workers (name, state, jobs running), agents (id, group, state) and calls in progress (``dialer:inflight``
and each call's record; a call whose lease has expired is marked ``orphaned``: its worker is gone and
another worker's reaper will adopt it). Every table shows at most ``--limit`` rows and says how many
more there are. Only identifiers and the dialer's own state names are shown, never free text (campaign
names, metadata), and control characters are dropped, so nothing in Redis can drive the terminal.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

import redis
from rq import Worker
from rq.serializers import JSONSerializer

from dialer.campaigns import Campaigns, ContactState
from dialer.store import INFLIGHT, Store, call_key

CONTACT_STATES = tuple(state.value for state in ContactState)
CALL_FIELDS = ("state", "owner", "gateway", "agent", "claimed_at")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    total: int  # rows there are (more than shown when the limit cut the list)
    summary: str = ""


@dataclass(frozen=True)
class Snapshot:
    at: float
    tables: list[Table]


def _clean(value: object) -> str:
    return _UNPRINTABLE.sub("", str(value))


def campaigns_table(client: redis.Redis[bytes], limit: int) -> Table:
    service = Campaigns(client)
    ids = [campaign for campaign, _ in service.list_campaigns()]
    rows = []
    for campaign in ids[-limit:]:  # the most recently created
        status = service.status(campaign)
        by_state = [str(status.contacts_by_state.get(state, 0)) for state in CONTACT_STATES]
        rows.append(
            (campaign, status.state.value, str(status.contacts), *by_state, str(status.in_progress), f"{status.cps:g}")
        )
    headers = ("campaign", "state", "contacts", *CONTACT_STATES, "in progress", "cps")
    return Table("campaigns", headers, rows, len(ids))


def workers_table(client: redis.Redis[bytes], limit: int) -> Table:
    workers = sorted(Worker.all(connection=client, serializer=JSONSerializer), key=lambda w: w.name)
    rows = [(w.name, str(w.get_state()), str(len(w.get_current_executions()))) for w in workers[:limit]]
    return Table("workers", ("worker", "state", "jobs running"), rows, len(workers))


def agents_table(store: Store, limit: int) -> Table:
    agents = store.agents()
    counts = Counter(agent.get("state", "?") for agent in agents)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    rows = [(a.get("id", "?"), a.get("group", ""), a.get("state", "?")) for a in agents[:limit]]
    return Table("agents", ("agent", "group", "state"), rows, len(agents), summary)


def calls_table(store: Store, limit: int) -> Table:
    now = store.redis_time()
    leases = store.redis.zrange(INFLIGHT, 0, limit - 1, withscores=True)
    total = int(store.redis.zcard(INFLIGHT))
    pipe = store.redis.pipeline(transaction=False)
    for member, _ in leases:
        pipe.hmget(call_key(member.decode()), list(CALL_FIELDS))
    rows = []
    for (member, expiry), values in zip(leases, pipe.execute() if leases else [], strict=True):
        state, owner, gateway, agent, claimed = (v.decode() if v else "" for v in values)
        age = f"{now - float(claimed):.1f} s" if claimed else ""
        lease = "orphaned" if expiry < now else "held"
        rows.append((member.decode(), state, owner, gateway, agent, age, lease))
    headers = ("call", "state", "worker", "gateway", "agent", "age", "lease")
    return Table("calls in progress", headers, rows, total)


def snapshot(client: redis.Redis[bytes], limit: int = 20) -> Snapshot:
    store = Store(client)
    tables = [
        campaigns_table(client, limit),
        workers_table(client, limit),
        agents_table(store, limit),
        calls_table(store, limit),
    ]
    return Snapshot(store.redis_time(), tables)


def render(snap: Snapshot) -> list[str]:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.at))
    lines = [f"dialer status  {stamp}"]
    for table in snap.tables:
        lines += [
            "",
            f"{table.title.upper()} ({table.total})" + (f": {_clean(table.summary)}" if table.summary else ""),
        ]
        if not table.rows:
            lines.append("  (none)")
            continue
        cells = [tuple(_clean(cell) for cell in row) for row in table.rows]
        widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(table.headers)]
        for row in [table.headers, *cells]:
            lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if table.total > len(table.rows):
            lines.append(f"  ... {table.total - len(table.rows)} more")
    return lines


class _Stop(BaseException):
    """SIGTERM: leave the loop as Ctrl-C would."""


def _show(out: TextIO, lines: Sequence[str], tty: bool) -> None:
    if tty:  # home, draw, clear what an earlier, longer frame left below
        out.write("\x1b[H" + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J")
    else:
        out.write("\n".join(lines) + "\n\n")
    out.flush()


def main(argv: list[str]) -> int:
    from settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer status", description="live view of the dialer, from Redis")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between snapshots (%(default)s)")
    parser.add_argument("--limit", type=int, default=20, help="rows per table at most (%(default)s)")
    parser.add_argument("--redis-url", default=settings.redis_url)
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.limit < 1:
        print("dialer status: --interval must be > 0 and --limit >= 1", file=sys.stderr)
        return 2
    timeout = settings.redis_timeout
    client = redis.Redis.from_url(args.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    out = sys.stdout
    tty = out.isatty() and not args.once

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    try:
        if tty:
            out.write("\x1b[2J")
        while True:
            try:
                _show(out, render(snapshot(client, args.limit)), tty)
            except redis.RedisError as exc:  # the URL may hold a password: not shown
                print(f"dialer status: redis unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
                if args.once:
                    return 1
            if args.once:
                return 0
            time.sleep(args.interval)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        client.close()
