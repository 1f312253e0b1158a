"""The simulator against the recordings of a real FreeSWITCH 1.10.12.

Each test runs the client side of a recording (``NAME.sent.txt``) against a fresh simulator over
TCP and compares with what the real switch sent (``NAME.txt``). Deliberate differences, stated once:
- uuids the client did not choose (Job-UUIDs, Core-UUID, B legs), timestamps, Event-Sequence values,
  hostnames and addresses are the simulator's own;
- the callee answers in tens of milliseconds instead of ~1 s, so the suite runs fast;
- only the header *names* outside the ``variable_*`` block are compared as sets; of the channel
  variables only those the dialer depends on are required (see ``REQUIRED_VARIABLES``);
- HEARTBEAT / RE_SCHEDULE (every 20 s) and API events are not part of the sequences compared.
"""

from __future__ import annotations

import json

import pytest

from dialer.esl import Event, Frame, parse_event
from dialer.sim import Agent, Callee, Rule, Scenario, Simulator

from .client import Client
from .replay import CAPTURES, load, replay

FAST = Callee(ring_ms=5, early_media_ms=5, answer_ms=30)
BUSY = Callee(outcome="busy", early_media=False, ring_ms=5, answer_ms=30)
SCENARIOS = {
    "busy": [Rule(callee=BUSY)],
    "bgapi_jobs": [Rule(gateway="pstn2", callee=BUSY)],  # the recording's pstn2 SIPp was busy
}
CALL_RECORDINGS = [
    "answer_plain",
    "answer_json",
    "answer_xml",
    "answer_earlymedia_plain",
    "busy_plain",
    "busy_json",
    "bridge_plain",
    "agent_bridge_plain",
    "bgapi_jobs_plain",
]
IGNORED_EVENTS = {"HEARTBEAT", "RE_SCHEDULE", "API"}
REQUIRED_VARIABLES = {
    "CHANNEL_CREATE": {"variable_uuid", "variable_origination_uuid", "variable_call_uuid"},
    "CHANNEL_ANSWER": {"variable_uuid", "variable_origination_uuid", "variable_endpoint_disposition"},
    "CHANNEL_HANGUP_COMPLETE": {
        "variable_hangup_cause",
        "variable_hangup_cause_q850",
        "variable_sip_hangup_disposition",
        "variable_billsec",
        "variable_duration",
        "variable_answer_epoch",
        "variable_origination_uuid",
    },
}


def scenario_for(name: str) -> Scenario:
    rules = next((rules for prefix, rules in SCENARIOS.items() if name.startswith(prefix)), [])
    return Scenario(default=FAST, rules=rules, agents=[Agent(id="1001", answer_ms=30)])


@pytest.fixture(scope="module")
def runs() -> dict[str, list[Frame]]:
    """Each recording replayed once against its own simulator; tests read the frames."""
    return {}


def run(name: str, cache: dict[str, list[Frame]]) -> list[Frame]:
    if name not in cache:
        with Simulator(scenario=scenario_for(name)) as sim, Client(sim.port) as client:
            cache[name] = list(replay(client, load(name)))
    return cache[name]


def events_of(frames: list[Frame]) -> list[Event]:
    return [parse_event(f) for f in frames if f.is_event and parse_event(f).name not in IGNORED_EVENTS]


def leg_sequences(events: list[Event]) -> list[list[str]]:
    """Event-Name sequence per leg, legs in order of first appearance (uuids differ for B legs)."""
    legs: dict[str, list[str]] = {}
    for event in events:
        if event.unique_id:
            legs.setdefault(event.unique_id, []).append(event.name)
    return list(legs.values())


@pytest.mark.parametrize("name", CALL_RECORDINGS)
def test_event_name_sequence_per_leg_matches_the_recording(name: str, runs: dict[str, list[Frame]]) -> None:
    recorded = leg_sequences(events_of(load(name).frames))
    simulated = leg_sequences(events_of(run(name, runs)))
    assert simulated == recorded


@pytest.mark.parametrize("name", CALL_RECORDINGS)
def test_frame_content_types_match_the_recording(name: str, runs: dict[str, list[Frame]]) -> None:
    def types(frames: list[Frame]) -> list[str]:
        return [f.content_type for f in frames if not (f.is_event and parse_event(f).name in IGNORED_EVENTS)]

    recorded, simulated = types(load(name).frames), types(run(name, runs))
    # the order of replies and events may interleave differently; the multiset and the replies' order may not
    assert sorted(simulated) == sorted(recorded)
    assert [t for t in simulated if "event" not in t] == [t for t in recorded if "event" not in t]


@pytest.mark.parametrize("name", CALL_RECORDINGS)
def test_core_header_names_per_event_type_match_the_recording(name: str, runs: dict[str, list[Frame]]) -> None:
    def names_by_type(events: list[Event]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for event in events:
            names = {k for k in event if not k.startswith("variable_")}
            found[event.name] = names if event.name not in found else found[event.name] & names
        return found

    recorded = names_by_type(events_of(load(name).frames))
    simulated = names_by_type(events_of(run(name, runs)))
    assert set(simulated) == set(recorded)
    for event_name, names in recorded.items():
        assert names <= simulated[event_name], f"{event_name} lacks {sorted(names - simulated[event_name])}"


@pytest.mark.parametrize("name", CALL_RECORDINGS)
def test_variables_the_dialer_reads_are_present(name: str, runs: dict[str, list[Frame]]) -> None:
    for event in events_of(run(name, runs)):
        missing = REQUIRED_VARIABLES.get(event.name, set()) - set(event)
        if event.get("Caller-Destination-Number") == "1001":
            missing.discard("variable_origination_uuid")  # the agent's B leg was dialled by bridge, not originate
        assert not missing, f"{event.name} lacks {sorted(missing)}"
        if event.name == "CHANNEL_HANGUP_COMPLETE":
            assert event.sip_status is not None
            assert event.q850 is not None


@pytest.mark.parametrize("name", ["busy_plain", "busy_json"])
def test_busy_callee_fails_with_user_busy_486_q850_17(name: str, runs: dict[str, list[Frame]]) -> None:
    events = events_of(run(name, runs))
    complete = [e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE"]
    assert [e.hangup_cause for e in complete] == ["USER_BUSY", "USER_BUSY"]
    assert {(e.sip_status, e.q850, e.hangup_disposition) for e in complete} == {(486, 17, "recv_refuse")}
    jobs = [e for e in events if e.name == "BACKGROUND_JOB"]
    assert [j.body for j in jobs] == ["-ERR USER_BUSY\n"]
    replies = [f.reply_text for f in run(name, runs) if f.content_type == "api/response"]
    assert replies == ["-ERR USER_BUSY\n"]


def test_background_job_comes_at_early_media_without_ignore_early_media(runs: dict[str, list[Frame]]) -> None:
    names = [e.name for e in events_of(run("answer_earlymedia_plain", runs))]
    assert names.index("BACKGROUND_JOB") < names.index("CHANNEL_ANSWER")
    names = [e.name for e in events_of(run("answer_plain", runs))]
    assert names.index("BACKGROUND_JOB") > names.index("CHANNEL_ANSWER")


def test_uuid_bridge_links_both_legs(runs: dict[str, list[Frame]]) -> None:
    events = events_of(run("bridge_plain", runs))
    bridge = next(e for e in events if e.name == "CHANNEL_BRIDGE")
    assert bridge.bridge_a_uuid == "21c84f33-61c1-464b-b3b1-7b088481bae8"
    assert bridge.bridge_b_uuid == "b3e46def-bacf-452d-b135-7fb39becb3ad"
    calls = json.loads(next(f.body for f in run("bridge_plain", runs) if f.body.startswith(b'{"row_count":1')))
    assert calls["rows"][0]["b_uuid"] == "b3e46def-bacf-452d-b135-7fb39becb3ad"


def test_agent_transfer_bridges_the_customer_to_user_1001(runs: dict[str, list[Frame]]) -> None:
    events = events_of(run("agent_bridge_plain", runs))
    bridge = next(e for e in events if e.name == "CHANNEL_BRIDGE")
    assert bridge.bridge_a_uuid == "b017837f-622a-4aea-83cd-a455b007d363"
    agent = [e for e in events if e.unique_id == bridge.bridge_b_uuid]
    assert agent[0]["Channel-Name"] == "sofia/dialer/1001@127.0.0.1:5070"
    assert agent[0]["Channel-Call-UUID"] == bridge.bridge_a_uuid


# ---------------------------------------------------------------------------- reply texts

# api_replies: these replies carry live data (uptime, channel rows, gateway tables); the simulator's
# layout is checked by other tests, the exact bytes are not compared.
LIVE_REPLIES = {"status", "show_channels_json_two", "show_channels_plain_two", "show_calls_json", "sofia_status",
                "sofia_status_gateway"}  # fmt: skip
JOB_REPLIES = {"bgapi_originate_a", "unknown_bgapi", "originate_bad_gateway_bgapi", "bgapi_status",
               "bgapi_originate_bad_gw_with_events"}  # fmt: skip


def test_api_replies_match_the_recording_byte_for_byte() -> None:
    index = [line.split()[0] for line in (CAPTURES / "api_replies.index.txt").read_text().splitlines() if line]
    recording = load("api_replies")
    with Simulator(scenario=scenario_for("api_replies")) as sim, Client(sim.port) as client:
        frames = replay(client, recording)
    replies = [f for f in frames if not f.is_event][2:]  # after the greeting and the auth reply
    assert len(replies) >= len(index)
    for label, frame in zip(index, replies, strict=False):
        expected = (CAPTURES / f"api_{label}.txt").read_bytes()
        [recorded] = [f for f in _frames(expected) if not f.is_event][:1]
        assert frame.content_type == recorded.content_type, label
        if label in LIVE_REPLIES:
            assert _layout(frame.reply_text) == _layout(recorded.reply_text), label
            continue
        if label in JOB_REPLIES:
            assert frame.reply_text.startswith("+OK Job-UUID: "), label
            assert frame.headers["Job-UUID"] == frame.reply_text.removeprefix("+OK Job-UUID: "), label
            continue
        assert frame.reply_text == recorded.reply_text, label


def _layout(text: str) -> object:
    """What a live reply must keep: JSON keys in order, CSV header and footer, the first words of a report."""
    if text.startswith("{"):
        data = json.loads(text)
        return data["row_count"], [list(row) for row in data.get("rows", [])]
    if text.startswith("uuid,"):
        lines = text.split("\n")
        return lines[0], lines[-3:]
    if text.startswith("UP "):
        return [line.split()[1:3] for line in text.splitlines()[1:3]]
    return None  # sofia status tables: free layout


def _frames(data: bytes) -> list[Frame]:
    from dialer.esl import parse_frames

    return parse_frames(data)


@pytest.mark.parametrize("name", ["auth_ok", "auth_wrong_password", "command_before_auth"])
def test_auth_exchanges_are_byte_identical(name: str) -> None:
    recording = load(name)
    with Simulator() as sim, Client(sim.port) as client:
        for command in recording.commands:
            client.send(command)
        received = b""
        while True:
            try:
                received += client.sock.recv(65536)
            except TimeoutError:
                break
            if received.endswith(b"cluecon.com/\n") or received == (CAPTURES / f"{name}.txt").read_bytes():
                break
    assert received == (CAPTURES / f"{name}.txt").read_bytes()


def _normalised(frame: Frame) -> object:
    """A reply with what must differ taken out: Job-UUIDs, and the values (not the keys) of JSON rows."""
    text = frame.reply_text
    if text.startswith("+OK Job-UUID: "):
        return "+OK Job-UUID: <job>"
    if text.startswith("{"):
        data = json.loads(text)
        return data.get("row_count"), [sorted(row) for row in data.get("rows", [])]
    return text


@pytest.mark.parametrize("name", CALL_RECORDINGS)
def test_reply_texts_match_the_recording(name: str, runs: dict[str, list[Frame]]) -> None:
    recorded = [_normalised(f) for f in load(name).replies]
    simulated = [_normalised(f) for f in run(name, runs) if not f.is_event]
    assert simulated == recorded
