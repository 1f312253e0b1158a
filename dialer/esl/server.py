"""The switch's side of mod_event_socket, for the simulator: parse client commands, lay out replies
and events exactly as FreeSWITCH 1.10 does in the recordings (``tests/data/captures``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .errors import ProtocolError
from .frames import MAX_HEADER_BYTES, parse_headers

# FreeSWITCH's SWITCH_URL_UNSAFE, plus every control and non-ASCII byte (switch_url_encode).
_URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_ENCODE_TABLE = [chr(b) if 0x20 < b < 0x7F and b not in _URL_UNSAFE else f"%{b:02X}" for b in range(256)]
_SAFE_TEXT = frozenset(chr(b) for b in range(0x21, 0x7F) if b not in _URL_UNSAFE)

DISCONNECT_TEXT = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def url_encode(value: str) -> str:
    """Encode a header value the way FreeSWITCH does in plain and XML events."""
    if _SAFE_TEXT.issuperset(value):
        return value
    return "".join(_ENCODE_TABLE[b] for b in value.encode())


# Plain events' header lines: most repeat from event to event (names, states, a leg's variables, dates to the
# second), and encoding them was 40 % of the simulator's CPU. Kept by name, then value: strings only, which the
# cyclic collector never scans (keyed by the (name, value) tuples, the tuples it kept filled the simulator's
# young generation and its collections paused it 2-4 ms every second or so). Emptied when full: bounded.
_lines: dict[str, dict[str, str]] = {}
_LINES_MAX = 5_000  # values per name, and names
_NO_LINES: dict[str, str] = {}  # what a name not seen yet has (never written to)


def _encoded(name: str, value: str) -> str:
    """A header line not in ``_lines`` yet: encode it and keep it."""
    lines = _lines.get(name)
    if lines is None:
        if len(_lines) >= _LINES_MAX:
            _lines.clear()
        lines = _lines[name] = {}
    elif len(lines) >= _LINES_MAX:
        lines.clear()
    line = lines[value] = f"{name}: {url_encode(value)}\n"
    return line


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """One command from a client: its first line, any header lines and an optional body."""

    line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0]

    @property
    def argument(self) -> str:
        return self.line.partition(" ")[2]


class CommandParser:
    """Bytes from a client in, :class:`ClientCommand` out; same contract as ``FrameParser``."""

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self._buf = bytearray()
        self._consumed = 0
        self.max_header_bytes = max_header_bytes

    def feed(self, data: bytes) -> None:
        self._buf += data.replace(b"\r\n", b"\n") if b"\r" in data else data

    def __iter__(self) -> Iterator[ClientCommand]:
        while (command := self.next_command()) is not None:
            yield command

    def next_command(self) -> ClientCommand | None:
        buf = self._buf
        while buf[:1] == b"\n":  # stray empty lines between commands carry nothing
            del buf[:1]
            self._consumed += 1
        end = buf.find(b"\n\n")
        if end < 0:
            if len(buf) > self.max_header_bytes:
                raise ProtocolError(f"command longer than {self.max_header_bytes} bytes", self._consumed)
            return None
        first, _, rest = bytes(buf[:end]).partition(b"\n")
        try:
            line = first.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("command line is not UTF-8", self._consumed) from None
        headers = parse_headers(rest, self._consumed + len(first) + 1) if rest else {}
        length = int(headers["Content-Length"]) if headers.get("Content-Length", "").isdigit() else 0
        if len(buf) < end + 2 + length:
            return None
        body = bytes(buf[end + 2 : end + 2 + length])
        del buf[: end + 2 + length]
        self._consumed += end + 2 + length
        return ClientCommand(line, headers, body)


# ---------------------------------------------------------------------------- replies


def auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def command_reply(text: str, job_uuid: str | None = None) -> bytes:
    if job_uuid is None:
        return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()
    return f"Content-Type: command/reply\nReply-Text: {text}\nJob-UUID: {job_uuid}\n\n".encode()


def api_response(body: str) -> bytes:
    raw = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(raw), raw)


def disconnect_notice() -> bytes:
    raw = DISCONNECT_TEXT.encode()
    return b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n%s" % (len(raw), raw)


def rude_rejection(text: str = "Access Denied, go away.\n") -> bytes:
    raw = text.encode()
    return b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n%s" % (len(raw), raw)


# ---------------------------------------------------------------------------- events

Headers = Sequence[tuple[str, str]]


def _event_frame(content_type: str, payload: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: %s\n\n%s" % (len(payload), content_type.encode(), payload)


def event_plain(headers: Headers, body: str | None = None) -> bytes:
    known, none = _lines.get, _NO_LINES
    text = "".join([known(name, none).get(value) or _encoded(name, value) for name, value in headers])
    if body is not None:
        text += f"Content-Length: {len(body.encode())}\n\n{body}"
    else:
        text += "\n"
    return _event_frame("text/event-plain", text.encode())


def event_json(headers: Headers, body: str | None = None) -> bytes:
    fields = dict(headers)
    if body is not None:
        fields["Content-Length"] = str(len(body.encode()))
        fields["_body"] = body
    return _event_frame("text/event-json", json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode())


def event_xml(headers: Headers, body: str | None = None) -> bytes:
    lines = ["<event>", "  <headers>"]
    lines += [f"    <{name}>{escape(url_encode(value))}</{name}>" for name, value in headers]
    lines.append("  </headers>")
    if body is not None:
        lines.append(f"  <Content-Length>{len(body.encode())}</Content-Length>")
        lines.append(f"  <body>{escape(body)}</body>")
    lines.append("</event>")
    return _event_frame("text/event-xml", "\n".join(lines).encode())


EVENT_SERIALISERS = {"plain": event_plain, "json": event_json, "xml": event_xml}
