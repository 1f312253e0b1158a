"""Malformed input: a ProtocolError that says what and where, never a hang, never another exception,
and a parser that refuses to go on once the stream position is lost."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.esl import Frame, FrameParser, ProtocolError, parse_event, parse_frames
from dialer.esl.frames import EVENT_JSON, EVENT_PLAIN, EVENT_XML, MAX_BODY_BYTES

from .captures import received

GOOD = b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
EVENT_TYPES = [EVENT_PLAIN, EVENT_JSON, EVENT_XML]


def parse_all(data: bytes) -> list[Frame]:
    parser = FrameParser()
    parser.feed(data)
    return list(parser)


@pytest.mark.parametrize(
    ("frame", "what"),
    [
        (b"Content-Type api/response\n\n", "without 'Name: value'"),
        (b"Content-Type: api/response\n: empty name\n\n", "without 'Name: value'"),
        (b"Content-Type: api/response\nContent-Length: abc\n\n", "Content-Length is not a number: 'abc'"),
        (b"Content-Type: api/response\nContent-Length: -1\n\n", "Content-Length is not a number"),
        (b"Content-Type: api/response\nContent-Length: 1e3\n\n", "Content-Length is not a number"),
        (b"Content-Type: api/response\nContent-Length:  5\n\n", "Content-Length is not a number"),
        ("Content-Type: api/response\nContent-Length: ²\n\n".encode(), "Content-Length is not a number"),
        ("Content-Type: api/response\nContent-Length: ١٢\n\n".encode(), "Content-Length is not a number"),
        (b"Content-Type: api/response\nContent-Length: " + b"9" * 5000 + b"\n\n", "Content-Length is not a number"),
        (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "exceeds the limit"),
        (b"Content-Length: 3\n\nabc", "without Content-Type"),
        (b"Content-Type: api/response\nReply-Text: caf\xe9\n\n", "not UTF-8"),
    ],
)
def test_bad_frames_say_what_and_where(frame: bytes, what: str) -> None:
    with pytest.raises(ProtocolError, match="at byte") as caught:
        parse_all(GOOD + frame)
    assert what in str(caught.value)
    assert caught.value.offset is not None
    assert caught.value.offset >= len(GOOD)  # the good frame before it is not blamed


def test_the_offset_of_a_non_utf8_byte_is_exact() -> None:
    data = GOOD + b"Content-Type: api/response\nReply-Text: caf\xe9\n\n"
    with pytest.raises(ProtocolError) as caught:
        parse_all(data)
    assert caught.value.offset == data.index(b"\xe9")


def test_after_an_error_the_parser_refuses_to_continue() -> None:
    parser = FrameParser()
    parser.feed(b"garbage\n\n")
    with pytest.raises(ProtocolError) as first:
        parser.next_frame()
    with pytest.raises(ProtocolError) as again:
        parser.feed(GOOD)
    assert again.value is first.value
    with pytest.raises(ProtocolError):
        parser.next_frame()
    with pytest.raises(ProtocolError):
        list(parser)


def test_headers_that_never_end_are_refused_at_the_limit() -> None:
    parser = FrameParser(max_header_bytes=1024)
    parser.feed(b"Content-Type: api/response\n")
    assert parser.next_frame() is None
    parser.feed(b"X-Junk: " + b"a" * 1100)
    with pytest.raises(ProtocolError, match="no end of headers within 1024 bytes"):
        parser.next_frame()


def test_an_incomplete_frame_at_the_end_is_an_error_for_parse_frames() -> None:
    with pytest.raises(ProtocolError, match="incomplete frame"):
        parse_frames(GOOD + b"Content-Type: api/response\nContent-Length: 10\n\nabc")


def test_a_huge_content_length_is_not_allocated() -> None:
    """A peer announcing the largest body we accept costs nothing until the bytes arrive."""
    parser = FrameParser()
    tracemalloc.start()
    try:
        parser.feed(b"Content-Type: api/response\nContent-Length: %d\n\n" % MAX_BODY_BYTES)
        for _ in range(100):
            parser.feed(b"x" * 1000)
            assert parser.next_frame() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert parser.buffered == 100_000


# ---------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("content_type", "body", "what"),
    [
        (EVENT_PLAIN, b"Event-Name: X\nnot a header\n\n", "line 2 is not 'Name: value'"),
        (EVENT_PLAIN, b"Event-Name: X\n: no name\n\n", "line 2 is not 'Name: value'"),
        (EVENT_PLAIN, b"Event-Name: X\n\nUnique-ID: y\n\n", "line 2 is not 'Name: value'"),
        (EVENT_PLAIN, b"", "line 1 is not"),
        (EVENT_PLAIN, b"Event-Name: X\nA:b c\n\n", "line 2 is not 'Name: value'"),  # a colon and a space, apart
        (EVENT_PLAIN, b"Event-Name: X\nA :b\n\n", "line 2 is not 'Name: value'"),
        (EVENT_PLAIN, b": X\nEvent-Name: X\n\n", "line 1 is not 'Name: value'"),
        (EVENT_PLAIN, b"Event-Name: X\nA: b\nC\n\n", "line 3 is not 'Name: value'"),
        (EVENT_PLAIN, b"Event-Name: caf\xe9\n\n", "not UTF-8"),
        (EVENT_PLAIN, b"Event-Name: X\nContent-Length: 10\n\n+OK\n", "shorter than its Content-Length"),
        (EVENT_PLAIN, b"Event-Name: X\nContent-Length: ten\n\n+OK\n", "inner Content-Length is not a number"),
        (EVENT_PLAIN, b"Event-Name: X\nContent-Length: " + b"9" * 5000 + b"\n\nx", "is not a number"),
        (EVENT_PLAIN, b"Event-Name: X\nContent-Length: 3", "no empty line"),
        (EVENT_JSON, b'{"Event-Name": "X"', "JSON event does not parse"),
        (EVENT_JSON, b'["Event-Name", "X"]', "not an object"),
        (EVENT_JSON, b'{"Event-Name": "X", "Unique-ID": null}', "'Unique-ID' is a NoneType"),
        (EVENT_JSON, b'{"Event-Name": "X", "n": 1}', "'n' is a int"),
        (EVENT_JSON, b"[" * 100_000, "does not parse"),
        (EVENT_JSON, b'{"Event-Name": "\xff"}', "does not parse"),
        (EVENT_XML, b'<!DOCTYPE x [<!ENTITY a "b">]><event><headers/></event>', "DOCTYPE"),
        (EVENT_XML, b"<event><headers><Event-Name>X</Event-Name></headers>", "does not parse"),
        (EVENT_XML, b"<other/>", "without <event><headers>"),
        (EVENT_XML, b'<?xml version="1.0" encoding="no-such-codec"?><event/>', "does not parse"),
        (EVENT_XML, b"<event><headers/><Content-Length>9</Content-Length><body>ab</body></event>", "shorter"),
        (EVENT_XML, "<event><headers/><Content-Length>²</Content-Length></event>".encode(), "not a number"),
        ("api/response", b"+OK\n", "not an event frame"),
    ],
)
def test_bad_events_say_what(content_type: str, body: bytes, what: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_event(Frame(content_type, {}, body))
    assert what in str(caught.value)


@pytest.mark.parametrize(
    "line",
    [b"A: raw: colon", b"A: raw space", b"A: b: c d", b"A:: x", b"A: ", b"A-B_c: %20"],
)
def test_lines_with_raw_separators_in_the_value_are_still_headers(line: bytes) -> None:
    """FreeSWITCH encodes ':' and ' ' in values, but a raw one is legal: the fast check defers to the exact one."""
    event = parse_event(Frame(EVENT_PLAIN, {}, b"Event-Name: X\n" + line + b"\nUnique-ID: u\n\n"))
    name, _, value = line.decode().partition(": ")
    assert event[name] == value.replace("%20", " ")
    assert (event.name, event.unique_id, len(event)) == ("X", "u", 3)


def test_a_bad_line_is_reported_with_its_offset() -> None:
    body = b"Event-Name: X\nUnique-ID: y\nbroken\n\n"
    with pytest.raises(ProtocolError) as caught:
        parse_event(Frame(EVENT_PLAIN, {}, body))
    assert caught.value.offset == body.index(b"broken")


def test_numeric_accessors_ignore_non_ascii_and_absurd_digits() -> None:
    event = parse_event(
        Frame(
            EVENT_JSON,
            {},
            '{"Event-Sequence": "²", "Event-Date-Timestamp": "١٢", "variable_sip_term_status": "'.encode()
            + b"9" * 5000
            + b'"}',
        )
    )
    assert event.sequence is None
    assert event.timestamp_us is None
    assert event.sip_status is None


# ---------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEMPLATE = received("bgapi_jobs_plain")[:3000] + received("busy_json")[:3000] + received("answer_xml")[:3000]


def _drain(chunks: list[bytes]) -> list[Frame]:
    parser = FrameParser(max_header_bytes=4096, max_body_bytes=1 << 20)
    frames: list[Frame] = []
    for chunk in chunks:
        parser.feed(chunk)
        frames.extend(parser)
    return frames


def _use(event: object) -> None:
    """Everything a caller can do with an event."""
    from dialer.esl import Event

    assert isinstance(event, Event)
    dict(event)
    repr(event)
    for attribute in (
        "name",
        "unique_id",
        "job_uuid",
        "answer_state",
        "call_state",
        "hangup_cause",
        "sip_status",
        "q850",
        "hangup_disposition",
        "bridge_a_uuid",
        "bridge_b_uuid",
        "other_leg_uuid",
        "timestamp_us",
        "sequence",
        "body",
    ):
        getattr(event, attribute)
    event.variable("sip_term_status")
    event.caller_time_us("Answered")


def _frames_then_events(chunks: list[bytes]) -> None:
    """Parse as the connection would; only ProtocolError may come out, and a parsed event is usable."""
    try:
        frames = _drain(chunks)
    except ProtocolError:
        return
    for frame in frames:
        if frame.is_event:
            _event_if_valid(frame.content_type, frame.body)


def _event_if_valid(content_type: str, body: bytes) -> None:
    try:
        event = parse_event(Frame(content_type, {}, body))
    except ProtocolError:
        return
    _use(event)  # once parsed, nothing a caller does with the event may raise


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_fuzz_frame_parser_with_arbitrary_bytes(chunks: list[bytes]) -> None:
    _frames_then_events(chunks)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(TEMPLATE)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 50))]
        else:
            data[at:at] = draw(
                st.sampled_from([b"\n", b"\n\n", b": ", b"%0A", b"\xff", b"Content-Length: 99\n", b"<!"])
            )
    return bytes(data)


@FUZZ
@given(mutated(), st.integers(1, 4000))
def test_fuzz_frame_parser_with_mutated_recordings(data: bytes, chunk: int) -> None:
    _frames_then_events([data[i : i + chunk] for i in range(0, len(data), chunk)])


@FUZZ
@given(st.sampled_from(EVENT_TYPES), st.binary(max_size=600))
def test_fuzz_parse_event_with_arbitrary_bytes(content_type: str, body: bytes) -> None:
    _event_if_valid(content_type, body)


@FUZZ
@given(
    st.sampled_from(EVENT_TYPES),
    st.lists(
        st.sampled_from(
            [
                b"Event-Name",
                b": ",
                b"\n",
                b"%0A",
                b"Content-Length",
                b"9",
                b"{",
                b"}",
                b'"',
                b":",
                b"<event>",
                b"<headers>",
                b"</headers>",
                b"</event>",
                b"<body>",
                b"x",
                b"\xc3",
                b"[]",
                b'<?xml version="1.0" encoding="x"?>',
            ]
        ),
        max_size=40,
    ),
)
def test_fuzz_parse_event_with_protocol_shaped_tokens(content_type: str, tokens: list[bytes]) -> None:
    _event_if_valid(content_type, b"".join(tokens))


@FUZZ
@given(st.lists(st.text(alphabet="ab: %\n", max_size=12), min_size=1, max_size=12))
def test_plain_line_check_agrees_with_the_definition(lines: list[str]) -> None:
    """The fast separator test in the parser refuses exactly the blocks with a line that is not
    ``Name: value`` (name non-empty, then ``": "``)."""
    head = "\n".join(lines).encode()
    bad = any(line.find(b": ") < 1 for line in head.split(b"\n"))
    try:
        event = parse_event(Frame(EVENT_PLAIN, {}, head + b"\n\n"))
    except ProtocolError:
        assert bad
        return
    assert not bad
    assert len(event) >= 1


def test_a_header_trickled_one_byte_at_a_time_is_scanned_once() -> None:
    """A peer sending a 64 KB header block byte by byte must not make each read rescan it all
    (that was ~1.5 s of CPU per frame; linear is ~0.04 s)."""
    import time

    block = b"Content-Type: api/response\n" + b"".join(b"X-H%d: %s\n" % (i, b"v" * 50) for i in range(1100)) + b"\n"
    assert len(block) < 65536
    parser = FrameParser()
    started = time.perf_counter()
    frames = []
    for i in range(len(block)):
        parser.feed(block[i : i + 1])
        frames.extend(parser)
    assert time.perf_counter() - started < 0.5
    (frame,) = frames
    assert len(frame.headers) == 1101


@FUZZ
@given(
    length=st.one_of(st.integers(0, 10**40).map(str), st.text(max_size=25)),
    chunks=st.lists(st.binary(max_size=4000), max_size=12),
)
def test_any_content_length_is_refused_or_waited_for_in_bounded_memory(length: str, chunks: list[bytes]) -> None:
    """Whatever length a peer announces, the parser either raises the documented ProtocolError or holds no
    more than the bytes it was actually given: a huge Content-Length allocates nothing up front."""
    limit = 1 << 20
    parser = FrameParser(max_body_bytes=limit)
    head = b"Content-Type: api/response\nContent-Length: " + length.encode() + b"\n\n"
    fed = len(head) + sum(map(len, chunks))
    tracemalloc.start()
    try:
        frames = []
        for chunk in (head, *chunks):
            parser.feed(chunk)
            frames.extend(parser)
        _, peak = tracemalloc.get_traced_memory()
    except ProtocolError:
        return
    finally:
        tracemalloc.stop()
    assert length.isascii()
    assert length.isdigit()
    assert int(length) <= limit  # only a plain, bounded number passes
    assert parser.buffered <= fed
    assert peak < 4 * fed + 256 * 1024
    body = b"".join(chunks)
    if len(body) >= int(length):
        assert frames[0].body == body[: int(length)]
    else:
        assert frames == []
