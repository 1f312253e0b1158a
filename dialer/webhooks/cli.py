"""``dialer webhooks``: the webhook sender process (Procfile ``webhooks``), and its dead letters.

    dialer webhooks [--concurrency N] [--name NAME]      deliver until SIGTERM/SIGINT
    dialer webhooks dead [--campaign ID] [--limit N] [--json]
    dialer webhooks replay ID [ID ...] | --all [--campaign ID]

The process exits 0 after a clean stop (deliveries still running after the drain time are left in Redis,
taken again by the next sender after ``DIALER_WEBHOOK_RECLAIM_IDLE_SECONDS``), 1 if Redis is unreachable at
start, 2 for bad options. ``replay`` exits 1 if an id was not among the dead letters (the others are replayed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from types import FrameType

import redis

from dialer import logs
from dialer.webhooks.queue import WebhookQueue
from dialer.webhooks.sender import BLOCK_SECONDS, Sender
from settings import Settings, get_settings

log = logging.getLogger("dialer.webhooks")


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer webhooks", description="Deliver webhook events; dead letters.")
    parser.add_argument("--redis-url", default=settings.redis_url, help="Redis holding the webhook stream")
    parser.add_argument(
        "--concurrency", type=int, default=settings.webhook_concurrency, help="deliveries at once (%(default)s)"
    )
    parser.add_argument("--name", default=None, help="consumer name in the stream's group (default: host-pid)")
    actions = parser.add_subparsers(dest="action", metavar="{dead,replay}")
    dead = actions.add_parser("dead", help="list the events that failed every attempt")
    dead.add_argument("--campaign", help="only this campaign's")
    dead.add_argument("--limit", type=int, default=100)
    dead.add_argument("--json", action="store_true", help="one JSON object a line, with the body")
    replay = actions.add_parser("replay", help="deliver dead events again, with a fresh count of attempts")
    replay.add_argument("ids", nargs="*", metavar="ID", help="event ids (from `dialer webhooks dead`)")
    replay.add_argument("--all", action="store_true", help="every dead event (of --campaign, if given)")
    replay.add_argument("--campaign")
    return parser


def main(argv: list[str]) -> int:
    settings = get_settings()
    args = _parser(settings).parse_args(argv)
    consumer = args.name or f"{socket.gethostname()}-{os.getpid()}"
    if args.action is None:
        if args.concurrency < 1:
            print("dialer webhooks: --concurrency must be >= 1", file=sys.stderr)
            return 2
        return _run(settings, args.redis_url, args.concurrency, consumer)
    timeout = settings.redis_timeout
    client = redis.Redis.from_url(args.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    queue = WebhookQueue(client, consumer)
    try:
        if args.action == "dead":
            return _list_dead(queue, args.campaign, args.limit, args.json)
        return _replay(queue, args.ids, args.all, args.campaign)
    except redis.RedisError as exc:  # the URL may hold a password: not printed
        print(f"dialer webhooks: redis unavailable: {exc}", file=sys.stderr)
        return 1


def _run(settings: Settings, redis_url: str, concurrency: int, consumer: str) -> int:
    logs.configure(settings.log_format, settings.log_level)
    # httpx logs every request with its full URL, credentials and all: not in our logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # One connection per delivery thread (settling), the reader's blocking read, the retry thread's claims.
    pool = redis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=concurrency + 4,
        timeout=30,
        socket_timeout=settings.redis_timeout + BLOCK_SECONDS,  # a read may block for BLOCK_SECONDS
        socket_connect_timeout=settings.redis_timeout,
    )
    client = redis.Redis(connection_pool=pool)
    sender = Sender.from_settings(settings, client, consumer, concurrency)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        left = sender.run(stop)
    except redis.RedisError as exc:  # at start: no group, no sender
        log.error("redis unavailable", extra={"error": str(exc)})
        return 1
    finally:
        sender.close()
    log.info("webhook sender stopped", extra={"left_for_reclaim": left})
    return 0


def _list_dead(queue: WebhookQueue, campaign: str | None, limit: int, as_json: bool) -> int:
    for record in queue.dead(campaign, limit):
        if as_json:
            print(json.dumps(record))
            continue
        dead_at = datetime.fromtimestamp(float(record["dead_at"]), UTC).isoformat(timespec="seconds")
        columns = [
            dead_at,
            record["id"],
            record.get("type") or "-",
            record.get("campaign") or "-",
            record.get("call_id") or "-",
            f"attempts={record.get('attempt', '?')}",
            record.get("error") or "-",
        ]
        print("  ".join(columns))
    return 0


def _replay(queue: WebhookQueue, ids: list[str], every: bool, campaign: str | None) -> int:
    if every == bool(ids):
        print("dialer webhooks replay: give event ids, or --all", file=sys.stderr)
        return 2
    if every:
        ids = [record["id"] for record in queue.dead(campaign, limit=sys.maxsize)]
    missing = queue.replay(ids)
    for event_id in missing:
        print(f"dialer webhooks replay: {event_id} is not a dead event", file=sys.stderr)
    print(f"replayed {len(ids) - len(missing)} event(s): the running sender delivers them now")
    return 1 if missing else 0
