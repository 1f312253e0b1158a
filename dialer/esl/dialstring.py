"""Strict validation of everything we put on the ESL wire, and the API command builders.

ESL commands are one line of space-separated arguments; dial strings add ``{a=b,c=d}`` and ``[...]``
blocks, ``|`` and ``,`` between legs, ``&app(args)`` and ``${...}`` expansion. A value carrying any of
those characters could end the command, add a variable, start an application or expand on the switch.
So every value is checked against an allow-list *before* a command is built, and a refused value
raises :class:`UnsafeValueError` naming the field and the first offending character.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .errors import UnsafeValueError


@dataclass(frozen=True, slots=True)
class Rule:
    """An allow-list: the characters a value may contain, the shape it must have, its length."""

    shape: str
    pattern: re.Pattern[str]
    charset: frozenset[str]
    max_length: int

    def check(self, field_name: str, value: object) -> str:
        if not isinstance(value, str):
            raise UnsafeValueError(field_name, f"must be text, not {type(value).__name__}")
        # A str subclass could override __format__/__str__ and put other text on the wire than the
        # text checked here: check and return a plain copy.
        value = str.__str__(value)
        if not value:
            raise UnsafeValueError(field_name, "must not be empty")
        if len(value) <= self.max_length and self.pattern.fullmatch(value):
            return value
        # Name the first offending character when there is one (a stray "," says more than a length),
        # looking no further than the allowed length so a 10 MB value costs no more than a short one.
        for position, char in enumerate(value[: self.max_length + 1]):
            if char not in self.charset:
                raise UnsafeValueError(
                    field_name, f"character {char!r} (U+{ord(char):04X}) at position {position} is not allowed"
                )
        if len(value) > self.max_length:
            raise UnsafeValueError(field_name, f"is {len(value)} characters long; at most {self.max_length} allowed")
        raise UnsafeValueError(field_name, f"{value!r} is not {self.shape}")


def _rule(shape: str, pattern: str, charset: str, max_length: int) -> Rule:
    return Rule(shape, re.compile(pattern), frozenset(charset), max_length)


_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits + "_"
_LOWER = string.ascii_lowercase + string.digits + "_"
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))

NUMBER = _rule("a phone number of 3-15 digits, optionally with a leading +", r"\+?[0-9]{3,15}", "+0123456789", 16)
UUID = _rule(
    "a UUID like 0f8e6d2c-1b3a-4c5d-8e7f-9a0b1c2d3e4f",
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    string.hexdigits + "-",
    36,
)
USER_ID = _rule("a directory user id (letters, digits, _ . -)", r"[A-Za-z0-9][A-Za-z0-9_.-]*", _ALNUM + "_.-", 64)
DOMAIN = _rule("a domain name (letters, digits, . -)", r"[A-Za-z0-9][A-Za-z0-9.-]*", _ALNUM + ".-", 253)
GATEWAY = _rule("a gateway name (letters, digits, _ . -)", r"[A-Za-z0-9][A-Za-z0-9_.-]*", _ALNUM + "_.-", 64)
VAR_NAME = _rule("a variable name (letters, digits, _; no leading digit)", r"[A-Za-z_][A-Za-z0-9_]*", _ALNUM + "_", 64)
VAR_VALUE = _rule("a variable value", r"[A-Za-z0-9_.:/@+#*~-]+", _ALNUM + "_.:/@+#*~-", 256)
APPLICATION = _rule("an application name (lowercase letters, digits, _)", r"[a-z_][a-z0-9_]*", _LOWER, 32)
CAUSE = _rule("a hangup cause like NORMAL_CLEARING", r"[A-Z][A-Z0-9_]*", _UPPER, 48)
HEADER_NAME = _rule("an event header name (letters, digits, _ -)", r"[A-Za-z][A-Za-z0-9_-]*", _ALNUM + "_-", 64)
EVENT_NAME = _rule("an event name like CHANNEL_ANSWER", r"[A-Z][A-Z0-9_]*", _UPPER, 64)
SUBCLASS = _rule("a subclass like sofia::register", r"[A-Za-z][A-Za-z0-9_]*(::[A-Za-z0-9_]+)*", _ALNUM + "_:", 64)
PASSWORD = _rule("a password (printable ASCII, no spaces)", r"[!-~]+", _PRINTABLE, 128)


# ---------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class Gateway:
    """A customer reached through a SIP trunk: ``sofia/gateway/<gateway>/<number>``."""

    gateway: str
    number: str

    def __str__(self) -> str:
        return f"sofia/gateway/{GATEWAY.check('gateway', self.gateway)}/{NUMBER.check('number', self.number)}"


@dataclass(frozen=True, slots=True)
class User:
    """A directory user (a browser agent registered over WSS): ``user/<id>[@<domain>]``."""

    user: str
    domain: str | None = None

    def __str__(self) -> str:
        text = f"user/{USER_ID.check('agent id', self.user)}"
        return text if self.domain is None else f"{text}@{DOMAIN.check('domain', self.domain)}"


@dataclass(frozen=True, slots=True)
class Loopback:
    """A dialplan extension reached through mod_loopback: ``loopback/<extension>[/<context>]``."""

    extension: str
    context: str | None = None

    def __str__(self) -> str:
        text = f"loopback/{USER_ID.check('extension', self.extension)}"
        return text if self.context is None else f"{text}/{USER_ID.check('context', self.context)}"


Endpoint = Gateway | User | Loopback


@dataclass(frozen=True, slots=True)
class Leg:
    """An endpoint with per-leg ``[...]`` variables."""

    endpoint: Endpoint
    variables: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        block = _variables(self.variables)
        endpoint = _endpoint("leg endpoint", self.endpoint)
        return f"[{block}]{endpoint}" if block else endpoint


def _endpoint(field_name: str, endpoint: object) -> str:
    """Only our endpoint types may be dialled: a plain string would reach the wire unchecked."""
    if not isinstance(endpoint, Gateway | User | Loopback):
        raise UnsafeValueError(field_name, f"must be a Gateway, User or Loopback, not {type(endpoint).__name__}")
    return str(endpoint)


def _variables(variables: Mapping[str, str]) -> str:
    if not isinstance(variables, Mapping):
        raise UnsafeValueError("variables", f"must be a mapping of name to value, not {type(variables).__name__}")
    return ",".join(
        f"{VAR_NAME.check('variable name', name)}={VAR_VALUE.check(f'variable {name}', value)}"
        for name, value in variables.items()
    )


# ---------------------------------------------------------------------------- API commands


def originate(
    legs: Endpoint | Leg | Sequence[Endpoint | Leg],
    *,
    variables: Mapping[str, str] | None = None,
    application: str = "park",
    application_args: str = "",
) -> str:
    """``originate {vars}<leg>[|<leg>...] &app(args)``; several legs are tried in order (failover)."""
    given: object = legs  # checked at run time: callers are not all type-checked
    if isinstance(given, Gateway | User | Loopback | Leg):
        leg_list: list[object] = [given]
    elif isinstance(given, str | bytes) or not isinstance(given, Sequence):  # a str is a Sequence of letters
        raise UnsafeValueError("legs", f"must be an endpoint, a Leg or a list of them, not {type(given).__name__}")
    else:
        leg_list = list(given)
    if not leg_list:
        raise UnsafeValueError("legs", "at least one endpoint is needed")
    block = _variables(variables if variables is not None else {})
    dial = "|".join(str(leg) if isinstance(leg, Leg) else _endpoint("legs", leg) for leg in leg_list)
    app = APPLICATION.check("application", application)
    args = VAR_VALUE.check("application arguments", application_args) if application_args else ""
    return f"originate {{{block}}}{dial} &{app}({args})" if block else f"originate {dial} &{app}({args})"


def uuid_bridge(uuid: str, other_uuid: str) -> str:
    return f"uuid_bridge {UUID.check('uuid', uuid)} {UUID.check('other uuid', other_uuid)}"


def uuid_transfer(
    uuid: str,
    destination: str,
    dialplan: str = "XML",
    context: str | None = None,
    leg: Literal["-bleg", "-both"] | None = None,
) -> str:
    """``uuid_transfer <uuid> [-bleg|-both] <dest> [<dialplan>] [<context>]``.

    With ``dialplan="inline"`` the destination is ``app:arg`` (a single application; ``,`` is refused).
    """
    parts = ["uuid_transfer", UUID.check("uuid", uuid)]
    if leg is not None:
        if leg not in ("-bleg", "-both"):
            raise UnsafeValueError("leg", "must be -bleg or -both")
        parts.append(leg)
    parts += [VAR_VALUE.check("destination", destination), USER_ID.check("dialplan", dialplan)]
    if context is not None:
        parts.append(USER_ID.check("context", context))
    return " ".join(parts)


def uuid_kill(uuid: str, cause: str | None = None) -> str:
    text = f"uuid_kill {UUID.check('uuid', uuid)}"
    return text if cause is None else f"{text} {CAUSE.check('cause', cause)}"


def uuid_exists(uuid: str) -> str:
    return f"uuid_exists {UUID.check('uuid', uuid)}"


def uuid_broadcast(uuid: str, path: str, leg: Literal["aleg", "bleg", "both"] = "aleg") -> str:
    if leg not in ("aleg", "bleg", "both"):
        raise UnsafeValueError("leg", "must be aleg, bleg or both")
    return f"uuid_broadcast {UUID.check('uuid', uuid)} {VAR_VALUE.check('path', path)} {leg}"


def uuid_setvar(uuid: str, name: str, value: str | None = None) -> str:
    text = f"uuid_setvar {UUID.check('uuid', uuid)} {VAR_NAME.check('variable name', name)}"
    return text if value is None else f"{text} {VAR_VALUE.check(f'variable {name}', value)}"


def uuid_getvar(uuid: str, name: str) -> str:
    return f"uuid_getvar {UUID.check('uuid', uuid)} {VAR_NAME.check('variable name', name)}"


def sched_hangup(uuid: str, seconds: int, cause: str | None = None, *, relative: bool = True) -> str:
    """Hang up ``uuid`` after ``seconds`` (or at that epoch second when not ``relative``)."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        raise UnsafeValueError("seconds", "must be a non-negative integer")
    when = f"+{seconds}" if relative else str(seconds)
    text = f"sched_hangup {when} {UUID.check('uuid', uuid)}"
    return text if cause is None else f"{text} {CAUSE.check('cause', cause)}"


def show_channels_json() -> str:
    return "show channels as json"


def show_calls_json() -> str:
    return "show calls as json"


def sofia_contact(user: str, domain: str | None = None, profile: str | None = None) -> str:
    """``sofia_contact [<profile>/]<user>[@<domain>]``: the registered contact, or ``error/user_not_registered``."""
    target = USER_ID.check("agent id", user)
    if domain is not None:
        target += "@" + DOMAIN.check("domain", domain)
    if profile is not None:
        target = f"{USER_ID.check('profile', profile)}/{target}"
    return f"sofia_contact {target}"


def hupall(cause: str = "MANAGER_REQUEST") -> str:
    return f"hupall {CAUSE.check('cause', cause)}"
