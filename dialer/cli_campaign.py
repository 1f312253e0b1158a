"""``dialer campaign create|add|start|pause|resume|cancel|status|list|dnc``: campaigns from the shell.

    dialer campaign create spring --caller-id +12125550100 --gateway pstn --window 09:00-21:00 \\
        --retry busy=300:2 --retry no-answer=3600:1 --max-attempts 3 --dnc-list spring-optout
    dialer campaign add spring contacts.csv     # columns: number, contact_id, timezone (optional), others -> metadata
    dialer campaign start spring
    dialer campaign status spring [--json]
    dialer campaign dnc add global +12125551234 ...

Exit status: 0 done, 1 refused (unknown campaign, a step its state does not allow, rows rejected), 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from dialer.campaigns import CampaignError, Campaigns, CampaignStatus
from settings import get_settings

#: ``create`` options copied into the config as they are
PLAIN_OPTIONS = (
    *("name", "caller_id_number", "caller_id_name", "gateway", "fallback_gateways", "agent_group", "dial_mode"),
    *("cps", "max_concurrent", "ring_timeout", "timezone", "max_attempts", "dnc_lists", "webhook_url"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer campaign", description="manage campaigns")
    parser.add_argument("--redis-url", default=None, help="default: DIALER_REDIS_URL")
    sub = parser.add_subparsers(dest="action", required=True)

    create = sub.add_parser("create", help="create a campaign (state draft)")
    create.add_argument("campaign_id")
    create.add_argument("--from-json", metavar="FILE", help="the whole config as JSON ('-': stdin); flags override")
    create.add_argument("--name")
    create.add_argument("--caller-id", dest="caller_id_number")
    create.add_argument("--caller-name", dest="caller_id_name")
    create.add_argument("--gateway")
    create.add_argument("--fallback-gateway", dest="fallback_gateways", action="append")
    create.add_argument("--agent-group")
    create.add_argument("--dial-mode", choices=["preview", "progressive", "predictive"])
    create.add_argument("--cps", type=float)
    create.add_argument("--max-concurrent", type=int)
    create.add_argument("--ring-timeout", type=int)
    create.add_argument("--window", help="local calling hours, e.g. 09:00-21:00")
    create.add_argument("--days", help="calling days, 0 = Monday: e.g. 0,1,2,3,4")
    create.add_argument("--timezone", help="zone for numbers whose zone is unknown")
    create.add_argument("--retry", action="append", metavar="OUTCOME=DELAY:COUNT", help="e.g. busy=300:2")
    create.add_argument("--max-attempts", type=int)
    create.add_argument("--dnc-list", dest="dnc_lists", action="append")
    create.add_argument("--webhook-url")
    create.add_argument("--webhook-secret-env", metavar="VAR", help="environment variable holding the secret")
    create.add_argument("--metadata", help="JSON object")

    add = sub.add_parser("add", help="add contacts from CSV ('-': stdin)")
    add.add_argument("campaign_id")
    add.add_argument("csv_file")
    for action in ("start", "pause", "resume", "cancel"):
        sub.add_parser(action, help=f"{action} a campaign").add_argument("campaign_id")
    status = sub.add_parser("status", help="live statistics")
    status.add_argument("campaign_id")
    status.add_argument("--json", action="store_true")
    sub.add_parser("list", help="campaigns and their states")

    dnc = sub.add_parser("dnc", help="do-not-call lists (global applies to every campaign)")
    dnc.add_argument("dnc_action", choices=["add", "remove", "check"])
    dnc.add_argument("list_name")
    dnc.add_argument("numbers", nargs="+")
    return parser


def _config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.from_json:
        source = sys.stdin.read() if args.from_json == "-" else Path(args.from_json).read_text()
        config.update(json.loads(source))
    config["id"] = args.campaign_id
    for name in PLAIN_OPTIONS:
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    if args.window or args.days:
        window = dict(config.get("calling_window", {}))
        if args.window:
            start, _, end = args.window.partition("-")
            window.update(start=start, end=end)
        if args.days:
            window["days"] = [int(day) for day in args.days.split(",")]
        config["calling_window"] = window
    for rule in args.retry or []:
        outcome, _, spec = rule.partition("=")
        delay, _, count = spec.partition(":")
        config.setdefault("retry", {})[outcome] = {"delay_seconds": float(delay), "max_retries": int(count or 1)}
    if args.webhook_secret_env:  # never on the command line, where ``ps`` would show it
        config["webhook_secret"] = os.environ[args.webhook_secret_env]
    if args.metadata:
        config["metadata"] = json.loads(args.metadata)
    return config


def read_csv(stream: IO[str]) -> Iterator[dict[str, Any]]:
    """The rows; a row's columns other than number/contact_id/timezone are its metadata."""
    for row in csv.DictReader(stream):
        values = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        if not values.get("timezone"):
            values.pop("timezone", None)
        yield values


def _add(campaigns: Campaigns, campaign: str, path: str) -> int:
    stream = sys.stdin if path == "-" else Path(path).open(newline="")  # noqa: SIM115 - closed below
    try:
        # One batch, however long the file: the intake reads it a chunk at a time, validating each
        # while the one before is written.
        result = campaigns.add_contacts(campaign, read_csv(stream))
    finally:
        if stream is not sys.stdin:
            stream.close()
    for rejection in result.rejected:
        print(f"line {rejection.row + 1}: {rejection.field}: {rejection.reason}", file=sys.stderr)  # 1: header
    print(f"accepted {result.accepted}, duplicates {result.duplicates}, rejected {len(result.rejected)}")
    return 1 if result.rejected else 0


def _show(status: CampaignStatus) -> None:
    states = " ".join(f"{name}={count}" for name, count in status.contacts_by_state.items())
    outcomes = " ".join(f"{name}={count}" for name, count in sorted(status.contacts_by_outcome.items()))
    print(f"{status.id}: {status.state.value}, {status.contacts} contacts ({states})")
    print(f"  outcomes: {outcomes or '-'}")
    print(
        f"  attempts {status.attempts}, in progress {status.in_progress}, answer rate {status.answer_rate:.1%}, "
        f"abandon rate {status.abandon_rate:.1%}, {status.cps} calls/s"
    )


def _run(campaigns: Campaigns, args: argparse.Namespace) -> int:
    if args.action == "create":
        created = campaigns.create(_config(args))
        print(f"campaign {created.id} created (draft)")
    elif args.action == "add":
        return _add(campaigns, args.campaign_id, args.csv_file)
    elif args.action in ("start", "pause", "resume", "cancel"):
        _show(getattr(campaigns, args.action)(args.campaign_id))
    elif args.action == "status":
        status = campaigns.status(args.campaign_id)
        if args.json:
            print(status.model_dump_json(indent=2))
        else:
            _show(status)
    elif args.action == "list":
        for campaign, state in campaigns.list_campaigns():
            print(f"{campaign:<32} {state}")
    else:
        return _dnc(campaigns, args)
    return 0


def _dnc(campaigns: Campaigns, args: argparse.Namespace) -> int:
    if args.dnc_action == "add":
        result = campaigns.dnc_add(args.list_name, args.numbers)
        for rejection in result.rejected:
            print(f"{args.numbers[rejection.row - 1]}: {rejection.reason}", file=sys.stderr)
        print(f"added {result.accepted} to {args.list_name}")
        return 1 if result.rejected else 0
    if args.dnc_action == "remove":
        print(f"removed {campaigns.dnc_remove(args.list_name, args.numbers)} from {args.list_name}")
        return 0
    listed = [number for number in args.numbers if campaigns.dnc_listed(args.list_name, number)]
    for number in args.numbers:
        print(f"{number}: {'listed' if number in listed else 'not listed'}")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    if args.redis_url:
        settings = settings.model_copy(update={"redis_url": args.redis_url})
    campaigns = Campaigns.from_settings(settings)
    try:
        return _run(campaigns, args)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError) as exc:
        print(f"dialer campaign: {exc}", file=sys.stderr)
        return 2
    except CampaignError as exc:
        print(f"dialer campaign: {exc}", file=sys.stderr)
        return 1
