"""``dialer sim``: run the FreeSWITCH simulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

import gevent
import gevent.event
from pydantic import ValidationError

from .scenarios import Scenario
from .server import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dialer sim", description="a FreeSWITCH look-alike on mod_event_socket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021, help="0 picks a free port (printed)")
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--scenario", help="JSON scenario file (callee rules, agents, gateways, limits)")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="seconds between HEARTBEAT events")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        scenario = Scenario.from_file(args.scenario) if args.scenario else Scenario()
    except (OSError, ValueError, ValidationError) as exc:
        print(f"dialer sim: cannot load scenario {args.scenario}: {exc}", file=sys.stderr)
        return 2
    simulator = Simulator(args.host, args.port, args.password, scenario, heartbeat_seconds=args.heartbeat)
    try:
        simulator.start()
    except OSError as exc:
        print(f"dialer sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"dialer sim: listening on {args.host}:{simulator.port}", flush=True)
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
