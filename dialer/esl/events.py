"""Typed, immutable FreeSWITCH events built from frames.

Plain events are split into lines *first* and each value is URL-decoded only when it is read, so an
encoded newline or ``: `` inside a value (a SIP display name, an SDP body) can never create or
overwrite a header. greenswitch decodes the whole body before splitting it, which is exactly the bug
this avoids. Most of the ~150 headers of a CHANNEL_* event are never read, hence the lazy decoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

from .errors import ProtocolError
from .frames import EVENT_JSON, EVENT_PLAIN, EVENT_XML, Frame


class Event(Mapping[str, str]):
    """One event: a read-only mapping of header name to decoded value, plus the inner body.

    A plain event keeps its header block as text and finds a header by searching for the line
    ``\\nName: `` only when it is asked for: values are URL-encoded, so they never contain a newline
    and the search cannot land inside one. Every line is checked to be ``Name: value`` when the event
    is parsed; the full table is built only when the event is used as a whole mapping.
    """

    __slots__ = ("_encoded", "_fields", "_head", "body")

    _head: str
    _fields: dict[str, Any] | None
    _encoded: bool
    body: str

    def __init__(
        self, fields: Mapping[str, Any] | None = None, body: str = "", *, head: str = "", encoded: bool = False
    ) -> None:
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_fields", None if fields is None else dict(fields))
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "body", body)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Event is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Event is immutable")

    def _value(self, name: str) -> Any:
        """The raw (possibly still encoded) value, or None."""
        if self._fields is not None:
            return self._fields.get(name)
        head = self._head
        if "\n" in name or ": " in name:  # no header has such a name; the search would span lines
            return None
        start = head.find(f"\n{name}: ")
        if start < 0:
            return None
        start += len(name) + 3
        end = head.find("\n", start)
        return head[start:] if end < 0 else head[start:end]

    def _table(self) -> dict[str, Any]:
        fields = self._fields
        if fields is None:
            fields = _split_lines(self._head[1:].split("\n"))
            object.__setattr__(self, "_fields", fields)
        return fields

    def __getitem__(self, name: str) -> str:
        value = self._value(name)
        if value is None:
            raise KeyError(name)
        return self._decoded(value)

    def _decoded(self, value: Any) -> str:
        if self._encoded:
            return unquote(value) if "%" in value else value
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # JSON form of a FreeSWITCH ARRAY:: header
            return "ARRAY::" + "|:".join(str(item) for item in value)
        return str(value)

    def get(self, name: str, default: Any = None) -> Any:  # skips the KeyError of Mapping.get
        value = self._get(name)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._value(name) is not None

    def __repr__(self) -> str:
        return f"<Event {self.name} uuid={self.unique_id} job={self.job_uuid}>"

    def _get(self, name: str) -> str | None:
        value = self._value(name)
        return None if value is None else self._decoded(value)

    def _int(self, name: str) -> int | None:
        value = self._get(name)
        return int(value) if value is not None and _is_count(value) else None

    # What the dialer reads. Everything else is reachable through the mapping interface.
    @property
    def name(self) -> str:
        return self._get("Event-Name") or ""

    @property
    def subclass(self) -> str | None:
        return self._get("Event-Subclass")

    @property
    def unique_id(self) -> str | None:
        return self._get("Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        return self._get("Job-UUID")

    @property
    def core_uuid(self) -> str | None:
        return self._get("Core-UUID")

    @property
    def sequence(self) -> int | None:
        return self._int("Event-Sequence")

    @property
    def timestamp_us(self) -> int | None:
        """``Event-Date-Timestamp``: microseconds since the epoch, on the switch's clock."""
        return self._int("Event-Date-Timestamp")

    @property
    def answer_state(self) -> str | None:
        return self._get("Answer-State")

    @property
    def call_state(self) -> str | None:
        return self._get("Channel-Call-State")

    @property
    def channel_state(self) -> str | None:
        return self._get("Channel-State")

    @property
    def call_direction(self) -> str | None:
        return self._get("Call-Direction")

    @property
    def hangup_cause(self) -> str | None:
        return self._get("Hangup-Cause")

    @property
    def sip_status(self) -> int | None:
        """Final SIP status of the leg (``variable_sip_term_status``), e.g. 486."""
        return self._int("variable_sip_term_status")

    @property
    def q850(self) -> int | None:
        return self._int("variable_hangup_cause_q850")

    @property
    def hangup_disposition(self) -> str | None:
        return self._get("variable_sip_hangup_disposition")

    @property
    def other_leg_uuid(self) -> str | None:
        return self._get("Other-Leg-Unique-ID")

    @property
    def bridge_a_uuid(self) -> str | None:
        return self._get("Bridge-A-Unique-ID")

    @property
    def bridge_b_uuid(self) -> str | None:
        return self._get("Bridge-B-Unique-ID")

    def variable(self, name: str) -> str | None:
        """A channel variable, ``variable_<name>``."""
        return self._get("variable_" + name)

    def caller_time_us(self, which: str) -> int | None:
        """``Caller-Channel-<which>-Time`` (e.g. ``Answered``, ``Progress``, ``Hangup``); 0 means never."""
        return self._int(f"Caller-Channel-{which}-Time")


def _is_count(text: str) -> bool:
    """ASCII digits only, and few enough of them: ``str.isdigit`` alone accepts ``²`` and ``١``, and
    ``int()`` of thousands of digits raises ValueError instead of giving a number."""
    return 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()


_MAX_DIGITS = 18


def parse_event(frame: Frame) -> Event:
    """Turn an event frame into an :class:`Event`; raises :class:`ProtocolError` when malformed."""
    if frame.content_type == EVENT_PLAIN:
        return _parse_plain(frame.body)
    if frame.content_type == EVENT_JSON:
        return _parse_json(frame.body)
    if frame.content_type == EVENT_XML:
        return _parse_xml(frame.body)
    raise ProtocolError(f"not an event frame: {frame.content_type!r}")


def _split_lines(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep or not name:
            raise ProtocolError(f"event header line without 'Name: value': {line[:60]!r}")
        fields.setdefault(name, value)  # the first wins, as in the lazy lookup
    return fields


# Every byte except the separators ":", " " and newline, for bytes.translate(None, delete=...).
_ALL_BUT_SEPARATORS = bytes(b for b in range(256) if b not in b": \n")
# A ":" followed by anything but its space, or starting a line (an empty name): one search, in C. A ":" that
# ends the block is not seen here; the separators test has refused it already (its space never follows).
_MISPLACED_COLON = re.compile(rb":(?:[^ ]|(?<=\n:))")


def _check_lines(head: bytes) -> None:
    """Refuse a header block with a line that is not ``Name: value``, naming the line and its offset.

    Done at parse time, not when the table is first built, so a broken event never reaches a caller
    that only reads a header or two. FreeSWITCH URL-encodes every value, so in its events the only
    ``:``, space and newline bytes are the separators: deleting every other byte leaves exactly
    ``": \n"`` per line, and no ``:`` stands without its space or at the start of a line. Those
    two tests run in C (~19 µs on a 10 KB event, half the cost of splitting it into lines); a block
    that fails them, or that legally carries a raw ``:`` or space in a value, is checked line by line.
    """
    separators = head.translate(None, _ALL_BUT_SEPARATORS)
    lines = (len(separators) + 1) // 3
    if (
        separators == b": \n" * (lines - 1) + b": "
        and _MISPLACED_COLON.search(head) is None
        and not head.startswith(b":")
    ):
        return
    offset = 0
    for number, line in enumerate(head.split(b"\n"), 1):
        if line.find(b": ") < 1:
            text = line[:60].decode("utf-8", "replace")
            raise ProtocolError(f"plain event header line {number} is not 'Name: value': {text!r}", offset)
        offset += len(line) + 1


def _parse_plain(raw: bytes) -> Event:
    # FreeSWITCH writes the inner Content-Length last, right before the empty line and the body;
    # finding that long marker is much cheaper than scanning 10 KB for the first "\n\n".
    marker = raw.find(b"\nContent-Length: ")
    if marker < 0:
        head, body = raw[:-2] if raw.endswith(b"\n\n") else raw.rstrip(b"\n"), b""
    else:
        end = raw.find(b"\n\n", marker)
        if end < 0:
            raise ProtocolError("plain event has an inner Content-Length but no empty line before a body", marker)
        line_end = raw.find(b"\n", marker + 17)  # at most `end`; other headers may follow the length
        length = raw[marker + 17 : line_end]
        if not length.isdigit() or len(length) > _MAX_DIGITS:  # bytes.isdigit is ASCII-only
            raise ProtocolError(f"inner Content-Length is not a number: {length[:20]!r}", marker + 1)
        head, body = raw[:end], raw[end + 2 : end + 2 + int(length)]
        if len(body) < int(length):
            raise ProtocolError(f"inner body is {len(body)} bytes, shorter than its Content-Length {int(length)}", end)
    _check_lines(head)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"plain event is not UTF-8 ({exc.reason})", exc.start) from None
    # The inner body is an API command's output, not protocol: undecodable bytes become U+FFFD.
    return Event(head="\n" + text, body=body.decode("utf-8", "replace"), encoded=True)


_JSON_VALUE_TYPES = frozenset({str, list})


def _parse_json(raw: bytes) -> Event:
    try:
        fields = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"JSON event does not parse: {exc}") from None
    if not isinstance(fields, dict):
        raise ProtocolError("JSON event is not an object")
    # FreeSWITCH sends strings, and lists for ARRAY:: headers; a null would be a key that is listed by
    # iteration yet missing on lookup, so anything else is refused here (one C-level pass when fine).
    if not _JSON_VALUE_TYPES.issuperset(map(type, fields.values())):
        for name, value in fields.items():
            if type(value) not in _JSON_VALUE_TYPES:
                raise ProtocolError(f"JSON event header {name[:60]!r} is a {type(value).__name__}, not a string")
    body = fields.pop("_body", "")
    return Event(fields, body if isinstance(body, str) else str(body))


def _parse_xml(raw: bytes) -> Event:
    if b"<!" in raw:  # no DOCTYPE or ENTITY: FreeSWITCH never sends one, and they are the XML attacks
        raise ProtocolError("XML event with a DOCTYPE or ENTITY declaration")
    try:
        root = ElementTree.fromstring(raw)  # noqa: S314 - declarations refused just above
    except (ElementTree.ParseError, LookupError) as exc:  # LookupError: <?xml encoding="no-such-codec"?>
        raise ProtocolError(f"XML event does not parse: {exc}") from None
    headers = root.find("headers")
    if root.tag != "event" or headers is None:
        raise ProtocolError("XML event without <event><headers>")
    fields = {child.tag: child.text or "" for child in headers}
    body = root.findtext("body") or ""
    length = root.findtext("Content-Length")
    if length is not None:
        # Plain and JSON events list the inner Content-Length among the headers; so does this one.
        fields["Content-Length"] = length
        if not _is_count(length):
            raise ProtocolError(f"XML event Content-Length is not a number: {length[:20]!r}")
        raw_body = body.encode()
        if len(raw_body) < int(length):
            raise ProtocolError(f"XML event body is {len(raw_body)} bytes, shorter than its Content-Length {length}")
        body = raw_body[: int(length)].decode("utf-8", "replace")  # the layout indents the body; the length does not
    return Event(fields, body, encoded=True)
