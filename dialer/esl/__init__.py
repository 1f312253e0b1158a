"""The Event Socket protocol with no I/O: framing, events, commands, dial strings, server side.

Nothing here touches a socket, a clock or Redis: bytes in, frames and events out; validated values
in, command bytes out. That is what lets the tests replay recorded FreeSWITCH traffic split at every
byte offset and throw hostile input at every builder.
"""

from . import commands, dialstring, server
from .dialstring import Gateway, Leg, Loopback, User
from .errors import (
    AuthenticationError,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    ESLError,
    LocalError,
    ProtocolError,
    RemoteError,
    UnsafeValueError,
)
from .events import Event, parse_event
from .frames import Frame, FrameParser, parse_frames

__all__ = [
    "AuthenticationError",
    "CommandError",
    "CommandTimeout",
    "ConnectionLost",
    "ESLError",
    "Event",
    "Frame",
    "FrameParser",
    "Gateway",
    "Leg",
    "LocalError",
    "Loopback",
    "ProtocolError",
    "RemoteError",
    "UnsafeValueError",
    "User",
    "commands",
    "dialstring",
    "parse_event",
    "parse_frames",
    "server",
]
