"""``dialer agent add|login|ready|pause|logout|accept|skip|show|list``: the agents (``dialer.agents``)."""

from __future__ import annotations

import argparse
import json

import redis
from pydantic import ValidationError

from dialer.agents import ACTIONS, AgentError, AgentIn, Agents, PauseIn
from dialer.esl.errors import UnsafeValueError
from settings import get_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer agent", description="manage agents")
    parser.add_argument("--redis-url", default=None, help="default: DIALER_REDIS_URL")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an agent (logged out) or change its group/domain")
    add.add_argument("agent_id")
    add.add_argument("--group", default="default")
    add.add_argument("--domain", default=None, help="directory domain (default: DIALER_AGENT_DOMAIN)")
    login = sub.add_parser("login", help="log in (paused until ready, unless --ready)")
    login.add_argument("agent_id")
    login.add_argument("--ready", action="store_true", help="and take calls at once")
    pause = sub.add_parser("pause", help="take no new calls (during a call: once it ends)")
    pause.add_argument("agent_id")
    pause.add_argument("--reason", default="break")
    helps = {
        "ready": "take calls",
        "logout": "log out (during a call: once it ends)",
        "accept": "preview: dial the contact offered",
        "skip": "preview: do not dial the contact offered",
        "show": "one agent as JSON",
    }
    for action, help_ in helps.items():
        sub.add_parser(action, help=help_).add_argument("agent_id")
    sub.add_parser("list", help="agents and their states")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    client = redis.Redis.from_url(args.redis_url or settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    agents = Agents(client, settings.agent_domain)
    try:
        if args.action == "add":
            view = agents.put(args.agent_id, AgentIn(group=args.group, domain=args.domain))
            print(f"agent {view.id} in group {view.group}: {view.endpoint} ({view.state.value})")
        elif args.action == "login" and args.ready:
            agents.act(args.agent_id, "login")
            agents.act(args.agent_id, "ready")
        elif args.action in ACTIONS:
            reason = PauseIn(reason=args.reason).reason if args.action == "pause" else ""
            print(agents.act(args.agent_id, args.action, reason).state.value)
        elif args.action in ("accept", "skip"):
            agents.decide(args.agent_id, args.action)
        elif args.action == "show":
            print(json.dumps(agents.get(args.agent_id).model_dump(mode="json"), indent=2))
        else:
            for agent in agents.list_agents():
                registered = {True: "registered", False: "unregistered", None: "?"}[agent.registered]
                reason = agent.pause_reason or ""
                print(f"{agent.id:<16} {agent.group:<12} {agent.state.value:<10} {registered:<12} {reason}")
    except ValidationError as exc:
        error = exc.errors()[0]
        print(f"dialer agent: {'.'.join(map(str, error['loc']))}: {error['msg']}")
        return 2
    except (AgentError, UnsafeValueError) as exc:
        print(f"dialer agent: {exc}")
        return 2
    return 0
