"""Client-side ESL commands, serialised to the exact bytes mod_event_socket expects.

A command is one line, optional ``Name: value`` header lines, then an empty line. The API command
text given to :func:`api` / :func:`bgapi` comes from the builders in :mod:`.dialstring`; as a last
line of defence these refuse any line break, so no value can ever smuggle in a second command.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .dialstring import EVENT_NAME, HEADER_NAME, PASSWORD, SUBCLASS, UUID, VAR_VALUE
from .errors import CommandError, UnsafeValueError

EventFormat = Literal["plain", "json", "xml"]


def _line(text: str) -> str:
    if "\n" in text or "\r" in text or "\x00" in text:
        raise UnsafeValueError("command", "a command cannot contain a line break or NUL")
    return text


def auth(password: str) -> bytes:
    return f"auth {PASSWORD.check('password', password)}\n\n".encode()


def _names(field_name: str, names: Iterable[str] | str) -> list[str]:
    # A lone string is one name: iterating it would subscribe to "A L L".
    return [names] if isinstance(names, str) else list(names)


def _event_list(names: Iterable[str] | str, subclasses: Iterable[str] | str) -> str:
    words = [EVENT_NAME.check("event name", name) for name in _names("event name", names)]
    subs = [SUBCLASS.check("event subclass", sub) for sub in _names("event subclass", subclasses)]
    if subs:
        words += ["CUSTOM", *subs]
    if not words:
        raise UnsafeValueError("events", "name at least one event")
    return " ".join(words)


def event(
    names: Iterable[str] | str = ("ALL",), fmt: EventFormat = "json", subclasses: Iterable[str] | str = ()
) -> bytes:
    """``event json CHANNEL_ANSWER ... CUSTOM sofia::register``."""
    if fmt not in ("plain", "json", "xml"):
        raise UnsafeValueError("format", "must be plain, json or xml")
    return f"event {fmt} {_event_list(names, subclasses)}\n\n".encode()


def nixevent(names: Iterable[str] | str, subclasses: Iterable[str] | str = ()) -> bytes:
    return f"nixevent {_event_list(names, subclasses)}\n\n".encode()


def noevents() -> bytes:
    return b"noevents\n\n"


def filter_add(header: str, value: str) -> bytes:
    """Only events whose ``header`` equals ``value`` pass (filters are OR'ed with each other)."""
    return f"filter {HEADER_NAME.check('filter header', header)} {VAR_VALUE.check('filter value', value)}\n\n".encode()


def filter_delete(header: str, value: str | None = None) -> bytes:
    text = f"filter delete {HEADER_NAME.check('filter header', header)}"
    if value is not None:
        text += " " + VAR_VALUE.check("filter value", value)
    return f"{text}\n\n".encode()


def api(command: str) -> bytes:
    """A blocking API command: the connection delivers nothing else until its reply."""
    return f"api {_line(command)}\n\n".encode()


def bgapi(command: str, job_uuid: str | None = None) -> bytes:
    """A background API command; with ``job_uuid`` the switch uses our id for its BACKGROUND_JOB."""
    if job_uuid is None:
        return f"bgapi {_line(command)}\n\n".encode()
    return f"bgapi {_line(command)}\nJob-UUID: {UUID.check('job uuid', job_uuid)}\n\n".encode()


def exit_session() -> bytes:
    return b"exit\n\n"


def raise_for_error(command: str, reply: str) -> str:
    """Return ``reply`` unless it is FreeSWITCH's ``-ERR ...``, which becomes a :class:`CommandError`."""
    if reply.startswith("-ERR"):
        raise CommandError(command, reply[4:].strip())
    return reply
