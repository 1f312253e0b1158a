"""Incremental mod_event_socket framing: bytes in, frames out, no I/O.

A frame is a block of ``Name: value`` lines ended by an empty line, followed by exactly
``Content-Length`` bytes of body when that header is present. ``Content-Length`` counts bytes, so
the parser works on bytes and decodes nothing until a frame is complete; a multi-byte character
split across two reads is therefore harmless. Feed any chunking; the frames come out the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .errors import ProtocolError

#: Content types FreeSWITCH sends on an inbound connection.
AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
EVENT_XML = "text/event-xml"
DISCONNECT_NOTICE = "text/disconnect-notice"
RUDE_REJECTION = "text/rude-rejection"
LOG_DATA = "log/data"
EVENT_TYPES = frozenset({EVENT_PLAIN, EVENT_JSON, EVENT_XML})

# Bounds that keep a hostile or broken peer from making us buffer without limit.
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """One framed message. ``headers`` are the outer headers, exactly as sent (not URL-decoded)."""

    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def reply_text(self) -> str:
        """``Reply-Text`` of a command/reply, or the body of an api/response."""
        if self.content_type == COMMAND_REPLY:
            return self.headers.get("Reply-Text", "")
        return self.body.decode("utf-8", "replace")

    @property
    def is_event(self) -> bool:
        return self.content_type in EVENT_TYPES


def parse_headers(block: bytes, offset: int) -> dict[str, str]:
    """Parse ``Name: value`` lines; ``offset`` is where ``block`` starts in the stream."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"header block is not UTF-8 ({exc.reason})", offset + exc.start) from None
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")
        if not sep or not name:
            raise ProtocolError(f"header line without 'Name: value': {line[:60]!r}", offset)
        headers[name] = value
        offset += len(line.encode()) + 1
    return headers


class FrameParser:
    """Feed bytes with :meth:`feed`, take complete frames with :meth:`next_frame` or iteration.

    After a :class:`ProtocolError` the stream position is unknown, so the parser refuses to go on:
    the only sane recovery is to drop the connection.
    """

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES):
        self._buf = bytearray()
        self._pos = 0  # start of the unparsed bytes in _buf; consumed bytes are dropped in bulk
        self._consumed = 0  # stream offset of _buf[0], for error messages
        self._head: tuple[str, dict[str, str], int] | None = None  # parsed headers awaiting a body
        self._searched = 0  # _buf[_pos:_searched] holds no "\n\n": a trickled header is scanned once
        self._broken: ProtocolError | None = None
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    def feed(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        if self._pos:
            del self._buf[: self._pos]
            self._consumed += self._pos
            self._searched = max(0, self._searched - self._pos)
            self._pos = 0
        self._buf += data

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def next_frame(self) -> Frame | None:
        if self._broken is not None:
            raise self._broken
        try:
            return self._next_frame()
        except ProtocolError as exc:
            self._broken = exc
            raise

    def _next_frame(self) -> Frame | None:
        buf, pos = self._buf, self._pos
        if self._head is None:
            while buf[pos : pos + 1] == b"\n":  # tolerate blank lines between frames; they carry nothing
                pos += 1
            self._pos = pos
            offset = self._consumed + pos
            # Resume where the last search stopped (one byte back: the "\n\n" may straddle reads).
            end = buf.find(b"\n\n", max(pos, self._searched - 1), pos + self.max_header_bytes + 2)
            if end < 0:
                if len(buf) - pos > self.max_header_bytes:
                    raise ProtocolError(f"no end of headers within {self.max_header_bytes} bytes", offset)
                self._searched = len(buf)
                return None
            self._searched = 0
            headers = parse_headers(bytes(buf[pos:end]), offset)
            content_type = headers.get("Content-Type")
            if content_type is None:
                raise ProtocolError("frame without Content-Type", offset)
            self._head = (content_type, headers, self._content_length(headers, offset))
            pos = self._pos = end + 2
        content_type, headers, length = self._head
        if len(buf) - pos < length:
            return None
        body = bytes(buf[pos : pos + length])
        self._pos = pos + length
        self._head = None
        return Frame(content_type, headers, body)

    def _content_length(self, headers: Mapping[str, str], offset: int) -> int:
        raw = headers.get("Content-Length")
        if raw is None:
            return 0
        # isascii: str.isdigit accepts "²" and "١"; the length bound: int() refuses thousands of digits.
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise ProtocolError(f"Content-Length is not a number: {raw[:20]!r}", offset)
        length = int(raw)
        if length > self.max_body_bytes:
            raise ProtocolError(f"Content-Length {length} exceeds the limit of {self.max_body_bytes}", offset)
        return length


def parse_frames(data: bytes) -> list[Frame]:
    """All complete frames in ``data``; trailing partial bytes are an error here."""
    parser = FrameParser()
    parser.feed(data)
    frames = list(parser)
    if parser.buffered:
        raise ProtocolError(f"{parser.buffered} bytes of an incomplete frame at the end", len(data) - parser.buffered)
    return frames
