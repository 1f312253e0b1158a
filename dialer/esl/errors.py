"""Every error the ESL layer raises, rooted at one base.

    ESLError
    ├── LocalError            we were about to do something illegal
    │   └── UnsafeValueError  a value refused before it could reach the wire (also a ValueError)
    └── RemoteError           the switch (or the link to it) did not behave
        ├── ProtocolError     bytes that are not valid mod_event_socket framing
        ├── CommandError      the switch answered a command with -ERR
        ├── AuthenticationError
        ├── CommandTimeout    no reply within the command's deadline
        └── ConnectionLost    the socket closed or broke; pending commands fail with this

The parser and builders raise the first three; the connection (``dialer.switch``) raises the rest,
so a caller can catch ``ESLError`` at one place and still tell "our bug" from "their fault".
"""

from __future__ import annotations


class ESLError(Exception):
    """Root of every error raised while speaking mod_event_socket."""


class LocalError(ESLError):
    """We tried something illegal: a bug or bad input on our side."""


class UnsafeValueError(LocalError, ValueError):
    """A value cannot be put on the wire; names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RemoteError(ESLError):
    """The switch or the link to it misbehaved."""


class ProtocolError(RemoteError):
    """Bytes received that are not valid ESL; ``offset`` is where in the stream it went wrong."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}")
        self.offset = offset


class CommandError(RemoteError):
    """The switch refused a command (``-ERR ...``); ``reply`` is its text without ``-ERR``."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"{command.split(' ', 1)[0]}: {reply}")
        self.command = command
        self.reply = reply


class AuthenticationError(RemoteError):
    """The switch refused the ESL password (or rejected us by ACL)."""


class CommandTimeout(RemoteError):
    """No reply within the command's deadline."""


class ConnectionLost(RemoteError):
    """The ESL connection is gone; the command's outcome on the switch is unknown."""
