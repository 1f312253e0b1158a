"""Enqueue benchmark: a 100,000-contact campaign into Redis through each way in, and what it costs Redis.

A private Redis; each path fills a campaign of its own with the same generated contacts (``contact_id``
and a valid US number in E.164, ten area codes in several time zones, no metadata):

- Python: ``Campaigns.add_contacts`` in this process, all rows in one call (the intake itself, the
  reference for the other two);
- HTTP: a real ``dialer api`` process (uvicorn); the client posts ``POST /campaigns/<id>/contacts`` in
  batches of ``BATCH`` rows over one keep-alive connection, one after the other, bodies encoded
  beforehand; timed from the first request to the last reply;
- CLI: ``dialer campaign add <id> FILE.csv`` on a generated CSV, timed from the process's start to its
  exit (interpreter start-up and imports included: what the user waits for).

Each path must accept every contact. Redis memory per contact = the growth of ``INFO memory``
``used_memory`` over the path / contacts (the contact hash, its ``due`` entry, the stats counters).
"""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.report import Row, Section, log, table
from bench.rig import QUIET, Rig, cpu_seconds, free_port, least_disturbed, tree_cpu_seconds, wait_for
from dialer.campaigns import Campaigns
from dialer.campaigns.state import due_key, stats_key

TARGET_S = 5.0
TOKEN = "bench-token"  # the private API process's only token
AREA_CODES = (212, 312, 415, 202, 617, 713, 305, 404, 206, 503)  # New York ... Portland: four zones
COLUMNS = ["path", "batch", "contacts", "seconds", "contacts/s", "intake CPU s", "Redis CPU s", "Redis B/contact"]
COLUMNS += ["other load"]


@dataclass(frozen=True)
class Sizes:
    contacts: int
    batch: int  # rows per HTTP request


SMOKE = Sizes(2_000, 500)
FULL = Sizes(100_000, 10_000)


@dataclass
class Result:
    path: str
    batch: str
    contacts: int
    seconds: float
    intake_cpu: float  # CPU of the process doing the intake (this one, the API's, the CLI's)
    redis_cpu: float
    bytes_per_contact: float


def contacts(count: int) -> list[dict[str, str]]:
    """Unique contact ids and unique valid numbers: area code, exchange 200-999, line."""
    rows = []
    for n in range(count):
        exchange, line = 200 + n // 10_000 % 800, n % 10_000
        rows.append({"contact_id": f"c{n:06d}", "number": f"+1{AREA_CODES[n % 10]}{exchange}{line:04d}"})
    return rows


def campaign_config(campaign: str) -> dict[str, Any]:
    return {"id": campaign, "caller_id_number": "+12125550100", "gateway": "pstn"}


def used_memory(rig: Rig) -> int:
    return int(rig.redis.info("memory")["used_memory"])


def stored(rig: Rig, campaign: str) -> int:
    """Contacts the campaign holds: its counter, checked against its due set."""
    counted = int(rig.redis.hget(stats_key(campaign), "contacts") or 0)
    due = int(rig.redis.zcard(due_key(campaign)))
    if counted != due:
        raise RuntimeError(f"campaign {campaign}: {counted} contacts counted, {due} due")
    return counted


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(
    rig: Rig, campaign: str, path: str, batch: str, count: int, fill: Callable[[], None], cpu: Callable[[], float]
) -> Result:
    """Run ``fill``, check it stored ``count`` contacts; ``cpu`` reads the intake process's CPU seconds."""
    before, cpu_before, redis_before = used_memory(rig), cpu(), cpu_seconds(rig.redis_proc.pid)
    started = time.perf_counter()
    fill()
    seconds = time.perf_counter() - started
    intake_cpu, redis_cpu = cpu() - cpu_before, cpu_seconds(rig.redis_proc.pid) - redis_before
    accepted = stored(rig, campaign)
    if accepted != count:
        raise RuntimeError(f"{path}: {accepted} of {count} contacts stored")
    result = Result(path, batch, count, seconds, intake_cpu, redis_cpu, (used_memory(rig) - before) / count)
    log(f"bench enqueue: {result}")
    return result


def in_process(rig: Rig, rows: list[dict[str, str]], attempt: int) -> Result:
    campaigns = Campaigns(rig.redis)
    campaign = f"py{attempt}"
    campaigns.create(campaign_config(campaign))
    return timed(rig, campaign, "Python `Campaigns.add_contacts`", "all", len(rows),
                 lambda: campaigns.add_contacts(campaign, rows), own_cpu)  # fmt: skip


def start_api(rig: Rig) -> tuple[str, int]:
    """The API's URL and pid."""
    port = free_port()
    env = rig.env(DIALER_API_TOKENS=json.dumps([TOKEN]), DIALER_API_PORT=str(port))
    api = rig.start([sys.executable, "-m", "dialer.cli", "api", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 30, "dialer api")
    return url, api.pid


def over_http(rig: Rig, api: tuple[str, int], rows: list[dict[str, str]], batch: int, attempt: int) -> Result:
    url, pid = api
    campaign = f"http{attempt}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    bodies = [json.dumps({"contacts": rows[i : i + batch]}).encode() for i in range(0, len(rows), batch)]
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        client.post("/campaigns", json=campaign_config(campaign)).raise_for_status()

        def post_all() -> None:
            for body in bodies:
                reply = client.post(f"/campaigns/{campaign}/contacts", content=body)
                reply.raise_for_status()
                if reply.json()["rejected"]:
                    raise RuntimeError(f"the API rejected rows: {reply.json()['rejected'][:3]}")

        return timed(rig, campaign, "HTTP API (`dialer api`)", f"{batch:,}", len(rows), post_all,
                     lambda: tree_cpu_seconds(pid))  # fmt: skip


def over_cli(rig: Rig, rows: list[dict[str, str]], attempt: int) -> Result:
    campaign = f"cli{attempt}"
    path = rig.tmp / "contacts.csv"
    if not path.exists():
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["contact_id", "number"])
            writer.writeheader()
            writer.writerows(rows)
    command = [sys.executable, "-m", "dialer.cli", "campaign"]
    env = rig.env()
    subprocess.run([*command, "create", campaign, "--caller-id", "+12125550100", "--gateway", "pstn"],
                   env=env, check=True, capture_output=True, timeout=60)  # fmt: skip

    def add() -> None:
        done = subprocess.run([*command, "add", campaign, str(path)], env=env, capture_output=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"dialer campaign add exited {done.returncode}: {done.stderr.decode()[-500:]}")

    return timed(rig, campaign, "CLI `dialer campaign add FILE.csv`", "CSV", len(rows), add, children_cpu)


def run(smoke: bool) -> Section:
    sizes = SMOKE if smoke else FULL
    rows = contacts(sizes.contacts)
    with Rig() as rig:

        def measured(path: Callable[[int], Result]) -> tuple[Result, float]:
            return least_disturbed(rig, path, "enqueue", smoke=smoke)

        log(f"bench enqueue: {sizes.contacts:,} contacts, in process")
        results = [measured(lambda n: in_process(rig, rows, n))]
        api = start_api(rig)
        log(f"bench enqueue: {sizes.contacts:,} contacts over HTTP, {sizes.batch:,} per request")
        results.append(measured(lambda n: over_http(rig, api, rows, sizes.batch, n)))
        log(f"bench enqueue: {sizes.contacts:,} contacts through the CLI")
        results.append(measured(lambda n: over_cli(rig, rows, n)))
    return section(sizes, results)


def section(sizes: Sizes, results: list[tuple[Result, float]]) -> Section:
    rows = [[r.path, r.batch, f"{r.contacts:,}", f"{r.seconds:.2f}", f"{r.contacts / r.seconds:,.0f}",
             f"{r.intake_cpu:.2f}", f"{r.redis_cpu:.2f}", f"{r.bytes_per_contact:.0f}", f"{others:.2f}"]
            for r, others in results]  # fmt: skip
    reference = results[0][0]
    summary = []
    for r, _ in results[1:]:
        met = r.seconds < TARGET_S if sizes == FULL else None  # the target is for 100,000 contacts
        summary.append(Row(f"enqueue {r.contacts:,} contacts: {r.path}", f"{r.seconds:.2f} s",
                           f"in process {reference.seconds:.2f} s", f"{r.seconds / reference.seconds:.2f}x",
                           f"< {TARGET_S:.0f} s" if met is not None else "-", met))  # fmt: skip
    per_contact = sorted(f"{r.bytes_per_contact:.0f}" for r, _ in results)
    summary.append(Row("Redis memory per contact (the three paths)", f"{per_contact[0]}-{per_contact[-1]} B"))
    body = "\n\n".join(
        [
            f"{sizes.contacts:,} contacts (`contact_id` + a valid US number in E.164, ten area codes, no metadata) "
            "into a new campaign through each path; every path must store them all. HTTP: a real `dialer api` "
            f"process (uvicorn), the client posting {sizes.batch:,} rows per request over one keep-alive "
            "connection, in turn, bodies encoded beforehand; timed from the first request to the last reply. "
            "CLI: `dialer campaign add` on a CSV, timed from process start to exit (start-up included). "
            "*Redis B/contact* = growth of `used_memory` / contacts. "
            f"*other load* = cores kept busy by other processes (a run above {QUIET} is repeated).",
            table(COLUMNS, rows),
        ]
    )
    return Section("enqueue", f"Enqueue: a {sizes.contacts:,}-contact campaign by API, CLI and Python", body, summary)
