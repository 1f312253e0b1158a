"""Typed events: accessors on real recorded events, the Mapping contract, immutability, and header
injection through encoded newlines (plain, JSON and XML)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

import pytest

from dialer.esl import Event, Frame, ProtocolError, parse_event, parse_frames
from dialer.esl.frames import EVENT_JSON, EVENT_PLAIN, EVENT_XML

from .captures import received, sent_commands, stream_names

ACCESSORS = {
    "name": "Event-Name",
    "unique_id": "Unique-ID",
    "job_uuid": "Job-UUID",
    "core_uuid": "Core-UUID",
    "answer_state": "Answer-State",
    "call_state": "Channel-Call-State",
    "channel_state": "Channel-State",
    "call_direction": "Call-Direction",
    "hangup_cause": "Hangup-Cause",
    "hangup_disposition": "variable_sip_hangup_disposition",
    "other_leg_uuid": "Other-Leg-Unique-ID",
    "bridge_a_uuid": "Bridge-A-Unique-ID",
    "bridge_b_uuid": "Bridge-B-Unique-ID",
    "subclass": "Event-Subclass",
}
INT_ACCESSORS = {
    "timestamp_us": "Event-Date-Timestamp",
    "sequence": "Event-Sequence",
    "sip_status": "variable_sip_term_status",
    "q850": "variable_hangup_cause_q850",
}


def plain_events() -> list[tuple[Frame, Event]]:
    return [
        (f, parse_event(f))
        for name in stream_names()
        for f in parse_frames(received(name))
        if f.content_type == EVENT_PLAIN
    ]


def raw_header(frame: Frame, name: str) -> str | None:
    """An independent reading of one header: a regex over the raw plain body, then URL-decoding."""
    head = frame.body.split(b"\n\n", 1)[0].decode()
    match = re.search(rf"^{re.escape(name)}: (.*)$", head, re.M)
    return None if match is None else unquote(match.group(1))


def events_of(name: str) -> list[Event]:
    return [parse_event(f) for f in parse_frames(received(name)) if f.is_event]


def test_accessors_agree_with_an_independent_reading_of_every_recorded_plain_event() -> None:
    pairs = plain_events()
    assert len(pairs) > 200
    for frame, event in pairs:
        for attribute, header in ACCESSORS.items():
            expected = raw_header(frame, header)
            assert getattr(event, attribute) == (expected if attribute != "name" else expected or ""), attribute
        for attribute, header in INT_ACCESSORS.items():
            text = raw_header(frame, header)
            assert getattr(event, attribute) == (int(text) if text else None), attribute
        for which in ("Answered", "Progress", "Progress-Media", "Hangup", "Bridged", "Created"):
            text = raw_header(frame, f"Caller-Channel-{which}-Time")
            assert event.caller_time_us(which) == (int(text) if text else None)
        text = raw_header(frame, "variable_sip_term_status")
        assert event.variable("sip_term_status") == text


def test_busy_hangup_as_the_switch_reports_it() -> None:
    for name in ("busy_plain", "busy_json"):
        (complete, *_) = [e for e in events_of(name) if e.name == "CHANNEL_HANGUP_COMPLETE"]
        assert complete.hangup_cause == "USER_BUSY"
        assert complete.sip_status == 486
        assert complete.q850 == 17
        assert complete.hangup_disposition == "recv_refuse"
        assert complete.caller_time_us("Answered") == 0  # never answered
        assert complete.caller_time_us("Progress")
        assert complete.caller_time_us("Hangup")
        assert complete.timestamp_us == int(complete["Event-Date-Timestamp"])


def test_bridge_peers_are_the_two_originated_legs() -> None:
    legs = [re.search(r"origination_uuid=([0-9a-f-]{36})", line) for line in sent_commands("bridge_plain")]
    a_leg, b_leg = [m.group(1) for m in legs if m]
    (bridge,) = [e for e in events_of("bridge_plain") if e.name == "CHANNEL_BRIDGE"]
    assert (bridge.bridge_a_uuid, bridge.bridge_b_uuid) == (a_leg, b_leg)
    assert bridge.unique_id == a_leg
    assert bridge.other_leg_uuid == b_leg
    completes = {e.unique_id: e for e in events_of("bridge_plain") if e.name == "CHANNEL_HANGUP_COMPLETE"}
    assert completes[a_leg].other_leg_uuid == b_leg
    assert completes[b_leg].other_leg_uuid == a_leg


def test_the_same_call_reads_the_same_in_plain_json_and_xml() -> None:
    """Same accessors, same decoded values, whatever the wire format (different calls, same shape)."""
    shapes = {}
    for name in ("answer_plain", "answer_json", "answer_xml"):
        events = events_of(name)
        shapes[name] = [(e.name, e.answer_state, e.call_state, e.hangup_cause) for e in events]
        (answer,) = [e for e in events if e.name == "CHANNEL_ANSWER"]
        assert answer["FreeSWITCH-IPv6"] == "fd00::2"  # URL-decoded in plain and XML, raw in JSON
        assert answer["Event-Date-GMT"].endswith(" GMT")
        assert answer.caller_time_us("Answered") == answer.timestamp_us
        assert answer.variable("direction") == "outbound"
        assert answer.variable("no_such_variable") is None
    assert shapes["answer_plain"] == shapes["answer_json"] == shapes["answer_xml"]


@pytest.mark.parametrize("name", ["answer_plain", "answer_json", "answer_xml"])
def test_mapping_behaviour(name: str) -> None:
    frame = next(f for f in parse_frames(received(name)) if f.is_event and parse_event(f).name == "CHANNEL_ANSWER")
    event = parse_event(frame)
    table = dict(event)
    assert isinstance(event, Mapping)
    assert len(event) == len(table) == len(list(event)) > 100
    assert next(iter(event)) == "Event-Name"
    assert "Unique-ID" in event
    assert "No-Such-Header" not in event
    assert 42 not in event
    assert event.get("No-Such-Header") is None
    assert event.get("No-Such-Header", "x") == "x"
    assert event.get("Unique-ID") == event["Unique-ID"] == event.unique_id
    assert all(isinstance(v, str) for v in table.values())
    assert dict(event.items()) == table
    assert list(event.keys()) == list(table)
    with pytest.raises(KeyError):
        event["No-Such-Header"]
    assert event == parse_event(frame) == table  # Mapping equality, by content
    assert event != events_of(name)[0]


def test_events_are_immutable() -> None:
    event = events_of("answer_plain")[0]
    with pytest.raises(AttributeError):
        event.body = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del event.body
    with pytest.raises(TypeError):
        event["Event-Name"] = "X"  # type: ignore[index]
    with pytest.raises(AttributeError):
        event.anything = 1  # type: ignore[attr-defined]
    fields = {"Event-Name": "HEARTBEAT"}
    built = Event(fields)
    fields["Event-Name"] = "CHANGED"
    assert built.name == "HEARTBEAT"  # the event keeps its own copy


def test_lazy_lookup_and_full_table_give_the_same_values() -> None:
    for frame, event in plain_events()[:40]:
        fresh = parse_event(frame)
        for header in ("Event-Name", "Unique-ID", "Answer-State", "variable_sip_term_status", "Nope"):
            assert fresh.get(header) == dict(event).get(header)


def test_array_headers_in_json_read_like_plain() -> None:
    event = parse_event(Frame(EVENT_JSON, {}, b'{"Event-Name":"X","variable_a":["1","2"]}'))
    assert event["variable_a"] == "ARRAY::1|:2"


# ---------------------------------------------------------------------------- injection

INJECTIONS = [
    "Bob%0AEvent-Name%3A%20HANGUP_HIJACK",
    "Bob%0D%0AEvent-Name%3A%20HANGUP_HIJACK",
    "Bob%0AUnique-ID%3A%20evil",
    "Bob%0D%0AUnique-ID%3A%20evil%0A%0AJob-UUID%3A%20evil",
    "Bob%0AEvent-Name: HANGUP_HIJACK",  # only the newline encoded
    "x%0A%0AContent-Length%3A%205%0A%0Ahello",
]
REAL_UUID = "0f8e6d2c-1b3a-4c5d-8e7f-9a0b1c2d3e4f"


def _plain(value: str, first: bool) -> bytes:
    lines = [f"Caller-Caller-ID-Name: {value}"] if first else []
    lines += ["Event-Name: CHANNEL_ANSWER", f"Unique-ID: {REAL_UUID}"]
    lines += [] if first else [f"Caller-Caller-ID-Name: {value}"]
    return ("\n".join(lines) + "\n\n").encode()


def _xml(value: str) -> bytes:
    return (
        "<event>\n  <headers>\n    <Caller-Caller-ID-Name>" + value + "</Caller-Caller-ID-Name>\n"
        f"    <Event-Name>CHANNEL_ANSWER</Event-Name>\n    <Unique-ID>{REAL_UUID}</Unique-ID>\n"
        "  </headers>\n</event>"
    ).encode()


def _json(value: str) -> bytes:
    import json

    fields = {"Caller-Caller-ID-Name": unquote(value), "Event-Name": "CHANNEL_ANSWER", "Unique-ID": REAL_UUID}
    return json.dumps(fields).encode()


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(
    "frame_of",
    [
        lambda v: Frame(EVENT_PLAIN, {}, _plain(v, first=True)),
        lambda v: Frame(EVENT_PLAIN, {}, _plain(v, first=False)),
        lambda v: Frame(EVENT_XML, {}, _xml(v)),
        lambda v: Frame(EVENT_JSON, {}, _json(v)),
    ],
    ids=["plain-before", "plain-after", "xml", "json"],
)
def test_an_encoded_newline_cannot_create_or_overwrite_a_header(value: str, frame_of: object) -> None:
    event = parse_event(frame_of(value))  # type: ignore[operator]
    for _ in range(2):  # the lazy lookups first, then again once the whole table is built
        assert event.name == "CHANNEL_ANSWER"
        assert event.unique_id == REAL_UUID
        assert event.job_uuid is None
        assert event.body == ""
        assert event["Caller-Caller-ID-Name"] == unquote(value)  # the decoded value keeps its newline
        assert "\n" in event["Caller-Caller-ID-Name"]
        assert set(event) == {"Caller-Caller-ID-Name", "Event-Name", "Unique-ID"}


def test_the_injection_payload_does_fool_a_decode_first_parser() -> None:
    """greenswitch URL-decodes before splitting lines; the same bytes hijack its headers, which is
    what makes the test above meaningful."""
    from greenswitch.esl import ESLEvent

    naive = ESLEvent(_plain("Bob%0AEvent-Name%3A%20HANGUP_HIJACK%0AUnique-ID%3A%20evil", first=False).decode())
    assert naive.headers["Event-Name"] == "HANGUP_HIJACK"
    assert naive.headers["Unique-ID"] == "evil"


def test_a_header_line_inside_an_injected_value_is_not_a_header_in_plain_without_encoding() -> None:
    """A plain event is split on real newlines only: a line is a header, never part of a value."""
    with pytest.raises(ProtocolError):
        dict(parse_event(Frame(EVENT_PLAIN, {}, b"Event-Name: X\nnot a header line\n\n")))


def test_lookups_with_impossible_names_find_nothing() -> None:
    frame = Frame(EVENT_PLAIN, {}, b"Event-Name: X\nA: b: c\nUnique-ID: u\n\n")
    event = parse_event(frame)
    for name in ("Event-Name: X\nA", "A: b", "X\nA"):
        assert name not in event
        assert event.get(name) is None
    assert event["A"] == "b: c"
    assert set(event) == {"Event-Name", "A", "Unique-ID"}
