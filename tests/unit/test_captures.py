"""Every recorded FreeSWITCH session parses into the frames and events its transcript shows,
whatever the chunking of the bytes."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.esl import Event, Frame, FrameParser, parse_event, parse_frames
from dialer.esl.frames import API_RESPONSE, COMMAND_REPLY, DISCONNECT_NOTICE

from .captures import received, reply_names, sent_commands, stream_names, transcript

STREAMS = stream_names()
SMALL = [name for name in STREAMS if len(received(name)) <= 12_000]
LARGE = [name for name in STREAMS if name not in SMALL]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def feed_chunks(chunks: list[bytes]) -> list[Frame]:
    parser = FrameParser()
    frames: list[Frame] = []
    for chunk in chunks:
        parser.feed(chunk)
        frames.extend(parser)
    assert parser.buffered == 0
    return frames


def test_there_are_recordings_of_every_kind() -> None:
    assert {"answer_plain", "answer_json", "answer_xml", "busy_plain", "busy_json", "bgapi_jobs_plain"} <= set(STREAMS)
    assert SMALL
    assert LARGE
    assert len(reply_names()) >= 30


@pytest.mark.parametrize("name", STREAMS)
def test_frames_match_the_transcript(name: str) -> None:
    expected = transcript(name)
    frames = parse_frames(received(name))
    assert [f.content_type for f in frames] == [e.content_type for e in expected]
    for frame, exp in zip(frames, expected, strict=True):
        if exp.event_name is not None:
            continue
        for header, value in exp.headers.items():
            assert frame.headers[header] == value, (name, header)
        if exp.body_lines is not None:
            assert frame.body.decode() == "\n".join(exp.body_lines)


@pytest.mark.parametrize("name", STREAMS)
def test_events_match_the_transcript(name: str) -> None:
    expected = [e for e in transcript(name) if e.event_name is not None]
    events = [parse_event(f) for f in parse_frames(received(name)) if f.is_event]
    assert [e.name for e in events] == [x.event_name for x in expected]
    for event, exp in zip(events, expected, strict=True):
        for header, value in exp.event_fields.items():
            assert event.get(header) == value, (name, event.name, header)
        # the recorder prints these whenever present, so absence in the transcript means absence here
        for header in ("Answer-State", "Channel-Call-State", "Channel-State", "Hangup-Cause"):
            if header not in exp.event_fields:
                assert header not in event, (name, event.name, header)
        assert event.unique_id == exp.event_fields.get("Unique-ID")
        assert event.answer_state == exp.event_fields.get("Answer-State")
        assert event.call_state == exp.event_fields.get("Channel-Call-State")
        assert event.hangup_cause == exp.event_fields.get("Hangup-Cause")
        if event.name == "BACKGROUND_JOB":
            assert event.job_uuid == exp.event_fields["Job-UUID"]


@pytest.mark.parametrize("name", [n for n in STREAMS if n.startswith(("answer_", "busy_", "bgapi_jobs"))])
def test_background_job_bodies_are_the_originate_results(name: str) -> None:
    """The inner body of each BACKGROUND_JOB: ``+OK <origination_uuid>\\n`` or ``-ERR <cause>\\n``."""
    originates = {}
    for line in sent_commands(name):
        match = re.search(rf"origination_uuid=({UUID}).*sofia/gateway/(\w+)/", line)
        if match and line.startswith("bgapi "):
            originates[match.group(1)] = match.group(2)
    events = [parse_event(f) for f in parse_frames(received(name)) if f.is_event]
    jobs = [e for e in events if e.name == "BACKGROUND_JOB" and e.get("Job-Command") == "originate"]
    assert jobs
    busy = name.startswith("busy_")
    checked = 0
    for job in jobs:
        arg = job["Job-Command-Arg"]
        match = re.search(rf"origination_uuid=({UUID})", arg)
        if match is None:
            assert job.body == "-ERR INVALID_GATEWAY\n"  # the nosuchgw originate
            continue
        uuid = match.group(1)
        assert uuid in originates
        if busy or originates[uuid] == "pstn2":
            assert job.body == "-ERR USER_BUSY\n"
        else:
            assert job.body == f"+OK {uuid}\n"
        assert job["Content-Length"] == str(len(job.body.encode()))
        checked += 1
    assert checked >= 1


def test_bgapi_job_bodies_of_every_command() -> None:
    jobs = {e.job_uuid: e for f in parse_frames(received("bgapi_jobs_plain")) if f.is_event for e in [parse_event(f)]}
    replies = [f for f in parse_frames(received("bgapi_jobs_plain")) if f.content_type == COMMAND_REPLY]
    job_ids = [f.headers["Job-UUID"] for f in replies if "Job-UUID" in f.headers]
    assert set(job_ids) == set(jobs)  # every bgapi got its BACKGROUND_JOB, matched by Job-UUID
    by_command = {(e["Job-Command"], e.get("Job-Command-Arg")): e.body for e in jobs.values()}
    assert by_command[("foobar", None)] == "-ERR foobar Command not found!\n"
    assert by_command[("uuid_exists", "4c65b39c-41e0-41aa-b56b-8cf1a81acc83")] == "false"
    assert by_command[("uuid_kill", "6bb1b1ce-bd9c-411a-8c19-b080efdfb022")] == "-ERR No such channel!\n"
    assert by_command[("show", "channels as json")] == '{"row_count": 0}\n'
    status = by_command[("status", None)]
    assert status.startswith("UP 0 years")
    assert status.endswith("Current Stack Size/Max 240K/240K\n")


def test_json_and_xml_background_job_bodies_equal_the_plain_form() -> None:
    for name in ("answer_json", "answer_xml"):
        jobs = [parse_event(f) for f in parse_frames(received(name)) if f.is_event]
        (job,) = [e for e in jobs if e.name == "BACKGROUND_JOB"]
        uuid = re.search(rf"origination_uuid=({UUID})", job["Job-Command-Arg"]).group(1)  # type: ignore[union-attr]
        assert job.body == f"+OK {uuid}\n", name


def test_disconnect_notice_body() -> None:
    (notice,) = [f for f in parse_frames(received("auth_wrong_password")) if f.content_type == DISCONNECT_NOTICE]
    assert notice.body == b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    assert notice.headers["Content-Length"] == "67"


@pytest.mark.parametrize("name", reply_names())
def test_each_single_reply_capture_is_one_frame(name: str) -> None:
    (frame,) = parse_frames(received(name))
    assert frame.content_type in (API_RESPONSE, COMMAND_REPLY)
    if frame.content_type == API_RESPONSE:
        assert len(frame.body) == int(frame.headers["Content-Length"])
        assert frame.reply_text == frame.body.decode()
    else:
        assert frame.body == b""
        assert frame.reply_text == frame.headers["Reply-Text"]


def test_api_reply_texts() -> None:
    def text(label: str) -> str:
        return parse_frames(received(f"api_{label}"))[0].reply_text

    assert text("uuid_exists_true") == "true"
    assert text("uuid_exists_false") == "false"
    assert text("uuid_kill") == "+OK\n"
    assert text("uuid_kill_missing") == "-ERR No such channel!\n"
    assert text("originate_bad_gateway_api") == "-ERR INVALID_GATEWAY\n"
    assert text("unknown_api") == "-ERR foobar Command not found!\n"
    assert text("unknown_command") == "-ERR command not found"
    assert text("show_channels_json_empty") == '{"row_count": 0}\n'
    assert text("exit") == "+OK bye"
    assert parse_frames(received("api_bgapi_with_job_uuid"))[0].headers["Job-UUID"] == (
        "11111111-2222-3333-4444-555555555555"
    )


# ---------------------------------------------------------------------------- chunking


def _summary(frames: list[Frame]) -> list[tuple[str, bytes, tuple[tuple[str, str], ...]]]:
    return [(f.content_type, f.body, tuple(f.headers.items())) for f in frames]


@pytest.mark.parametrize("name", SMALL)
def test_small_streams_split_at_every_offset(name: str) -> None:
    data = received(name)
    whole = _summary(parse_frames(data))
    for cut in range(len(data) + 1):
        assert _summary(feed_chunks([data[:cut], data[cut:]])) == whole, cut


@pytest.mark.parametrize("name", SMALL)
def test_small_streams_fed_one_byte_at_a_time(name: str) -> None:
    data = received(name)
    assert _summary(feed_chunks([data[i : i + 1] for i in range(len(data))])) == _summary(parse_frames(data))


def test_a_multibyte_character_split_between_reads_is_harmless() -> None:
    body = "é€😀".encode()
    frame = b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body)
    for cut in range(len(frame) + 1):
        (parsed,) = feed_chunks([frame[:cut], frame[cut:]])
        assert parsed.reply_text == "é€😀"


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=40)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("name", LARGE)
def test_large_streams_in_random_chunkings(name: str) -> None:
    data = received(name)
    whole = parse_frames(data)
    whole_events = [dict(parse_event(f)) for f in whole if f.is_event]

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(chunkings(data))
    def check(chunks: list[bytes]) -> None:
        frames = feed_chunks(chunks)
        assert _summary(frames) == _summary(whole)
        assert [dict(parse_event(f)) for f in frames if f.is_event] == whole_events

    check()


def test_events_are_the_same_as_mappings_in_every_capture() -> None:
    """The lazy lookup and the full table agree on every header of every recorded event."""
    for name in STREAMS:
        for frame in parse_frames(received(name)):
            if not frame.is_event:
                continue
            event = parse_event(frame)
            table = dict(event)
            fresh: Event = parse_event(frame)
            for header, value in table.items():
                assert fresh[header] == value, (name, header)
            assert len(event) == len(table)


def test_rude_rejection_and_log_data_are_framed() -> None:
    """Not in the recordings (no ACL refusal, no ``log``): laid out as mod_event_socket writes them."""
    log_line = b"2026-11-24 18:50:29.544486 [INFO] switch_core.c:2 hello\n"
    data = (
        b"Content-Type: log/data\nContent-Length: %d\nLog-Level: 6\nText-Channel: 3\n\n%s" % (len(log_line), log_line)
        + b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
    )
    for cut in range(len(data) + 1):
        log, rude = feed_chunks([data[:cut], data[cut:]])
        assert (log.content_type, log.body, log.headers["Log-Level"]) == ("log/data", log_line, "6")
        assert (rude.content_type, rude.body) == ("text/rude-rejection", b"Access Denied, go away.\n")
        assert not log.is_event
        assert not rude.is_event
