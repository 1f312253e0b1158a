"""``dialer scheduler``: the campaign dispatcher process (Procfile ``scheduler``).

Every ``--interval`` seconds it turns the due contacts of running campaigns into call jobs (see
``dialer.campaigns.dispatch``). It holds no state of its own: stop it any time, run it anywhere.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

import redis

from dialer import logs
from dialer.campaigns.dispatch import Dispatcher, DispatchLimits
from settings import get_settings

log = logging.getLogger("dialer.scheduler")
MAX_PAUSE = 5.0


def main(argv: list[str]) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer scheduler", description="dispatch campaign contacts as call jobs")
    parser.add_argument("--redis-url", default=settings.redis_url)
    parser.add_argument("--interval", type=float, default=settings.scheduler_interval_seconds)
    args = parser.parse_args(argv)
    if args.interval <= 0:
        print("dialer scheduler: --interval must be > 0", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    timeout = settings.redis_timeout
    client = redis.Redis.from_url(args.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    limits = DispatchLimits(
        max_outstanding=settings.campaign_max_outstanding, stale_seconds=settings.scheduler_stale_seconds
    )
    dispatcher = Dispatcher(client, limits)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("dialer scheduler: dispatching", flush=True)
    pause = args.interval
    while not stopping.is_set():
        try:
            enqueued = dispatcher.run_once()
            if enqueued:
                log.info("calls enqueued", extra={"calls": enqueued})
            pause = args.interval
        except redis.ConnectionError as exc:  # Redis away (a restart): say so once a pause, not ten times a second
            pause = min(max(pause * 2, args.interval), MAX_PAUSE)
            log.warning("redis unavailable", extra={"error": str(exc), "retry_in": pause})
        except Exception:  # a bad record: log it and keep dispatching the other campaigns
            log.exception("dispatch pass failed; retrying")
        stopping.wait(pause)
    return 0
