"""``dialer worker``: run a ``GeventWorker`` on the call queues until SIGTERM/SIGINT.

Exit status: 0 after a clean drain (also when jobs still running at the drain deadline were handed back),
1 after a second signal (cold shutdown), a worker loop failure or an unreachable Redis, 2 for bad options.

Only the standard library is imported at module level, on purpose: ``gevent.monkey.patch_all()`` has to run
before redis, rq or anything else that imports ``socket``, ``ssl`` or ``threading`` primitives, because a
module imported earlier keeps the blocking originals, and one blocking socket read would stall every call
this process holds.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settings import Settings

RQ_POOL_SIZE = 64
RQ_HEARTBEAT_SECONDS = 30  # RQ's default job monitoring interval
GC_YOUNG_THRESHOLD = 10_000  # tracked objects allocated (net) between young collections; CPython's default: 700


def tune_gc() -> None:
    """Keep the cyclic garbage collector from pausing every call the process holds.

    A call's objects die by reference counting; the collector finds little (tens of objects a pass) but
    scans what is alive. Measured with ``bench worker``'s latency probe, holding 2,000 calls: full
    collections took 55-180 ms and young ones 1-10 ms, at p99 answer -> agent originate 17-42 ms. The
    objects of start-up (imports, settings, the connections: ~60,000) are moved out of the collector's
    sight, and young collections run after 10,000 allocations rather than 700: p99 6-15 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer worker", description="Run call jobs from RQ queues as greenlets.")
    parser.add_argument("--queues", default="calls", help="comma-separated queue names, in priority order")
    parser.add_argument(
        "--concurrency", type=int, default=settings.worker_concurrency, help="jobs run at once (%(default)s)"
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty and jobs are done")
    parser.add_argument("--redis-url", default=settings.redis_url, help="Redis holding the queues")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=settings.worker_drain_timeout,
        help="seconds running jobs get to finish after SIGTERM before they are handed back (%(default)s)",
    )
    parser.add_argument("--name", default=None, help="worker name shown in RQ (default: random)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=settings.worker_metrics_port,
        help="serve Prometheus /metrics on this port (0: off; each worker on a host needs its own) (%(default)s)",
    )
    return parser


def main(argv: list[str]) -> int:
    from gevent import monkey

    monkey.patch_all()
    # Only now is it safe to import redis, rq and the modules that use them.
    import redis

    from dialer import logs, metrics
    from dialer.runtime import Runtime
    from dialer.store import restart_retry
    from dialer.worker import GeventWorker
    from settings import get_settings

    settings = get_settings()
    args = _parser(settings).parse_args(argv)
    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    if not queues or args.concurrency < 1 or args.drain_timeout < 0 or not 0 <= args.metrics_port <= 65535:
        print(
            "dialer worker: need at least one queue, --concurrency >= 1, --drain-timeout >= 0, --metrics-port 0-65535",
            file=sys.stderr,
        )
        return 2
    logs.configure(settings.log_format, settings.log_level)
    log = logging.getLogger("dialer.worker")
    # A blocking pool: hundreds of job greenlets share a few dozen connections and wait for a free one.
    # redis-py's default pool raises "Too many connections" once 100 commands are in flight at once,
    # which broke RQ's bookkeeping of finished jobs under load.
    pool = redis.BlockingConnectionPool.from_url(
        args.redis_url, max_connections=RQ_POOL_SIZE, timeout=30, retry=restart_retry()
    )
    connection = redis.Redis(connection_pool=pool)
    runtime = metrics_server = None
    # A dead worker's jobs count as abandoned once their heartbeat is ``heartbeat + grace`` old; RQ's cleanup
    # (any worker's maintenance) then runs them again. With RQ's default maintenance every 10 minutes, a job
    # killed while it waited for pacing (never claimed, nobody dialled) would keep its contact waiting that
    # long: maintenance runs as often as a job can become abandoned.
    heartbeat = max(1, min(RQ_HEARTBEAT_SECONDS, int(settings.worker_heartbeat_grace // 2)))
    try:
        worker = GeventWorker(
            queues,
            args.name,
            connection=connection,
            concurrency=args.concurrency,
            drain_timeout=args.drain_timeout,
            heartbeat_grace=settings.worker_heartbeat_grace,
            job_monitoring_interval=heartbeat,
            maintenance_interval=math.ceil(heartbeat + settings.worker_heartbeat_grace),
        )
        # Connect to FreeSWITCH before taking the first call; the runtime's id is the worker's name,
        # so a call record's owner is the worker shown in rq-dashboard.
        runtime = Runtime.start_current(settings, worker_id=worker.name)
        worker.can_take_jobs = runtime.connected
        if args.metrics_port:
            metrics_server = metrics.serve_worker(runtime, settings.metrics_host, args.metrics_port)
            log.info("metrics listening", extra={"host": settings.metrics_host, "port": args.metrics_port})
        tune_gc()
        worker.work(burst=args.burst, logging_level=settings.log_level)
    except redis.RedisError as exc:  # the URL may hold a password: not logged
        log.error("redis unavailable", extra={"error": str(exc)})
        return 1
    except ValueError as exc:  # RQ refuses a name an active worker already has
        log.error("worker not started", extra={"error": str(exc)})
        return 1
    except OSError as exc:  # the metrics port is taken
        log.error("worker not started: metrics port unavailable", extra={"port": args.metrics_port, "error": str(exc)})
        return 1
    finally:
        if metrics_server is not None:
            metrics_server.stop(timeout=1)
        if runtime is not None:
            runtime.stop()
    return worker.exit_code
