"""Parse what follows ``originate``: ``{global vars}[leg vars]endpoint|... &app(args)``.

This is the switch's side, so it is lenient where FreeSWITCH is lenient (any value text up to the
next ``,`` or ``}``) and it reports the same causes FreeSWITCH reports for what it cannot dial.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channels import Leg

_GATEWAY = re.compile(r"sofia/gateway/([^/\s]+)/(\S+)")
_USER = re.compile(r"user/([^@\s/]+)(?:@(\S+))?")
_APP = re.compile(r"&([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?")


class DialError(Exception):
    """The dial string cannot be dialled; ``cause`` is the FreeSWITCH hangup cause to report."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Target:
    """One leg to try: a customer behind a gateway or a directory user (an agent)."""

    kind: str  # "gateway" | "user"
    name: str  # gateway name or user id
    number: str  # dialled number or user id
    domain: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Originate:
    variables: dict[str, str]
    targets: list[Target]  # tried in order (``|`` failover)
    application: str
    application_args: str


def parse_variables(block: str) -> dict[str, str]:
    """``a=b,c=d`` (``\\,`` keeps a comma inside a value)."""
    result: dict[str, str] = {}
    for item in re.split(r"(?<!\\),", block):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if sep and name.strip():
            result[name.strip()] = value.replace("\\,", ",")
    return result


def _take_block(text: str, opening: str, closing: str) -> tuple[dict[str, str], str]:
    if not text.startswith(opening):
        return {}, text
    end = text.find(closing)
    if end < 0:
        raise DialError("INVALID_NUMBER_FORMAT")
    return parse_variables(text[1:end]), text[end + 1 :]


def parse_target(text: str) -> Target:
    leg_vars, rest = _take_block(text.strip(), "[", "]")
    if m := _GATEWAY.fullmatch(rest):
        return Target("gateway", m.group(1), m.group(2), None, leg_vars)
    if m := _USER.fullmatch(rest):
        return Target("user", m.group(1), m.group(1), m.group(2), leg_vars)
    raise DialError("CHAN_NOT_IMPLEMENTED")


def parse_targets(dial: str) -> tuple[dict[str, str], list[Target]]:
    """``{vars}`` then legs; ``,`` (ring simultaneously) is refused: the dialer never needs it."""
    variables, rest = _take_block(dial.strip(), "{", "}")
    legs = [leg for leg in rest.split("|") if leg.strip()]
    if not legs:
        raise DialError("DESTINATION_OUT_OF_ORDER")
    if any("," in re.sub(r"\[[^\]]*\]", "", leg) for leg in legs):
        # A real switch rings simultaneous legs; the simulator says plainly that it does not.
        raise DialError("SERVICE_NOT_IMPLEMENTED")
    return variables, [parse_target(leg) for leg in legs]


def parse_originate(argument: str) -> Originate:
    """``originate`` arguments: ``<dial string> &app(args)`` or ``<dial string> <extension> ...``.

    Extensions go through a dialplan the simulator does not have, so they park (documented).
    """
    dial, _, app_text = argument.strip().partition(" ")
    if not dial:
        raise DialError("DESTINATION_OUT_OF_ORDER")
    variables, targets = parse_targets(dial)
    app_text = app_text.strip()
    application, args = "park", ""
    if m := _APP.fullmatch(app_text):
        application, args = m.group(1), m.group(2) or ""
    return Originate(variables, targets, application, args)


def parse_inline(destination: str) -> list[tuple[str, str]]:
    """An inline dialplan ``app:arg,app2:arg2`` as (application, argument) pairs."""
    steps: list[tuple[str, str]] = []
    for item in destination.split(","):
        app, _, arg = item.partition(":")
        if app:
            steps.append((app, arg))
    return steps


Reply = Callable[[str], None]  # gets the originate's result: ``+OK <uuid>\n`` or ``-ERR <CAUSE>\n``


@dataclass(eq=False)
class PendingOriginate:
    """An originate in flight until the leg answers (or shows early media) or fails."""

    request: Originate
    command_arg: str
    reply: Reply
    job_uuid: str | None
    targets: list[Target]
    ignore_early_media: bool
    timeout_s: float
    bridge_from: Leg | None = None  # the A leg when this is the B leg of ``bridge``
    done: bool = False
    causes: list[str] = field(default_factory=list)


def seconds(text: str | None, default: float) -> float:
    """A timeout variable in seconds (fractions allowed, for fast tests), or ``default``."""
    try:
        return float(text) if text else default
    except ValueError:
        return default
