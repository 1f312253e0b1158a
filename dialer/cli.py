"""The ``dialer`` command. Each subcommand lives in its own module and is imported only when used,
so ``dialer settings`` never pulls in gevent and ``dialer worker`` can monkey-patch before any import.

A bad setting (``settings.InvalidSettings``) ends any command with its message and status 2, no traceback.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with ``main(argv) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("dialer.sim.__main__", "run the FreeSWITCH simulator (mod_event_socket on TCP)"),
    "demo": ("dialer.demo", "run the quick-start demo against the simulator"),
    "agent": ("dialer.cli_agent", "manage agents: add, ready, pause, logout, list"),
    "call": ("dialer.cli_call", "place one call through the queue, optionally following it live"),
    "worker": ("dialer.worker_main", "run call jobs from the RQ queues, many at once as greenlets"),
    "campaign": ("dialer.cli_campaign", "manage campaigns: create, add (CSV), start, pause, resume, cancel, status"),
    "scheduler": ("dialer.scheduler_main", "dispatch due campaign contacts as call jobs"),
    "api": ("dialer.http_api", "serve the HTTP API (campaigns, do-not-call lists)"),
    "dashboard": ("dialer.dashboard", "serve rq-dashboard for the call queues (basic auth, JSON jobs)"),
    "status": ("dialer.status", "live view of campaigns, workers, agents and calls in progress"),
    "settings": ("dialer.cli_settings", "print the effective settings, secrets masked"),
    "webhooks": ("dialer.webhooks.cli", "deliver webhook events (signed, retried); list and replay dead ones"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: dialer <command> [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"dialer: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[args[0]][0])
        result: int = module.main(args[1:])
    except Exception as exc:
        # Imported only now: `dialer worker` must patch gevent before anything imports pydantic or sockets.
        from settings import InvalidSettings

        if not isinstance(exc, InvalidSettings):
            raise
        print(f"dialer {args[0]}: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
