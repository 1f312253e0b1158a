"""``dialer agent add|ready|pause|logout|list``: the agent registry in Redis."""

from __future__ import annotations

import argparse

from dialer.esl import dialstring
from dialer.esl.errors import UnsafeValueError
from dialer.store import AgentState, Store
from settings import get_settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dialer agent", description="manage agents")
    parser.add_argument("--redis-url", default=None, help="default: DIALER_REDIS_URL")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create or update an agent")
    add.add_argument("agent_id")
    add.add_argument("--group", default="default")
    add.add_argument("--domain", default=None, help="directory domain (default: DIALER_AGENT_DOMAIN)")
    for action in ("ready", "pause", "logout"):
        sub.add_parser(action, help=f"mark an agent {action}").add_argument("agent_id")
    sub.add_parser("list", help="list agents and their states")
    args = parser.parse_args(argv)

    settings = get_settings()
    store = Store.from_url(args.redis_url or settings.redis_url)
    try:
        if args.action == "add":
            dialstring.USER_ID.check("agent id", args.agent_id)
            dialstring.USER_ID.check("group", args.group)
            endpoint = str(dialstring.User(args.agent_id, args.domain or settings.agent_domain))
            store.add_agent(args.agent_id, args.group, endpoint)
            print(f"agent {args.agent_id} in group {args.group}: {endpoint}")
        elif args.action == "ready":
            store.set_agent_ready(args.agent_id)
        elif args.action in ("pause", "logout"):
            state = AgentState.PAUSED if args.action == "pause" else AgentState.OFFLINE
            store.set_agent_unavailable(args.agent_id, state)
        else:
            for agent in store.agents():
                group, shown = agent.get("group", ""), agent.get("state", "")
                print(f"{agent['id']:<16} {group:<12} {shown:<10} {agent.get('endpoint', '')}")
    except (UnsafeValueError, KeyError) as exc:
        print(f"dialer agent: {exc}")
        return 2
    return 0
