"""``dialer sim``: run the FreeSWITCH simulator until SIGTERM or SIGINT.

Its address and password default to ``DIALER_SIM_HOST``, ``DIALER_SIM_PORT`` and ``DIALER_SIM_PASSWORD``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

import gevent
import gevent.event
from pydantic import ValidationError

from dialer import logs
from dialer.worker_main import tune_gc
from settings import get_settings

from .scenarios import Scenario
from .server import Simulator


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dialer sim", description="a FreeSWITCH look-alike on mod_event_socket")
    parser.add_argument("--host", default=settings.sim_host)
    parser.add_argument("--port", type=int, default=settings.sim_port, help="0 picks a free port (printed)")
    parser.add_argument("--password", default=settings.sim_password.get_secret_value())
    parser.add_argument("--scenario", help="JSON scenario file (callee rules, agents, gateways, limits)")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="seconds between HEARTBEAT events")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        scenario = Scenario.from_file(args.scenario) if args.scenario else Scenario()
    except (OSError, ValueError, ValidationError) as exc:
        print(f"dialer sim: cannot load scenario {args.scenario}: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    simulator = Simulator(args.host, args.port, args.password, scenario, heartbeat_seconds=args.heartbeat)
    try:
        simulator.start()
    except OSError as exc:
        print(f"dialer sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"dialer sim: listening on {args.host}:{simulator.port}", flush=True)
    tune_gc()  # FreeSWITCH never pauses: keep the collector's passes short and rare here too
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    simulator.stop()
    with contextlib.suppress(OSError):  # whoever read our stdout may be gone already
        print("dialer sim: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
