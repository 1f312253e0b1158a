"""The ESL side: subscriptions and FreeSWITCH's filter rules, limits, faults, the record, the CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import gevent
import pytest
from pydantic import ValidationError

from dialer.sim import Callee, Limits, Scenario, Simulator

from .client import Client
from .conftest import FAST

Connect = Callable[..., Client]
PARKED = "{{origination_uuid={},ignore_early_media=true}}sofia/gateway/pstn/15551230000 &park()"


def park(client: Client, channel: str | None = None) -> str:
    channel = channel or str(uuid.uuid4())
    assert client.command(f"bgapi originate {PARKED.format(channel)}").startswith("+OK Job-UUID")
    return channel


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """For state inside the in-process simulator that no event announces (connection counts)."""
    with gevent.Timeout(timeout):
        while not condition():
            gevent.sleep(0.005)


def test_filters_are_ored_and_drop_events_without_the_header(sim: Simulator, connect: Connect) -> None:
    watcher = connect("plain ALL")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert watcher.command(f"filter Unique-ID {first}") == f"+OK filter added. [Unique-ID]=[{first}]"
    assert watcher.command("filter Event-Name CHANNEL_PARK") == "+OK filter added. [Event-Name]=[CHANNEL_PARK]"
    driver = connect(None)
    park(driver, first)
    park(driver, second)
    watcher.event("CHANNEL_PARK", second)  # passes by the Event-Name filter
    assert driver.api(f"uuid_kill {first}") == "+OK\n"
    watcher.event("CHANNEL_DESTROY", first)
    seen = watcher.events()
    assert {e.unique_id for e in seen} == {first, second}
    assert all(e.unique_id == first or e.name == "CHANNEL_PARK" for e in seen)
    assert not [e for e in seen if e.name in ("BACKGROUND_JOB", "API")]  # no Unique-ID header: dropped


def test_filter_delete_nixevent_and_noevents(sim: Simulator, connect: Connect) -> None:
    client = connect("plain CHANNEL_PARK CHANNEL_ANSWER BACKGROUND_JOB")
    assert client.command("filter Event-Name CHANNEL_PARK") == "+OK filter added. [Event-Name]=[CHANNEL_PARK]"
    assert client.command("filter delete Event-Name CHANNEL_PARK") == "+OK filter deleted. [Event-Name]=[CHANNEL_PARK]"
    assert client.command("nixevent CHANNEL_ANSWER") == "+OK events nixed"
    channel = park(client)
    client.event("CHANNEL_PARK", channel)
    assert {e.name for e in client.events()} == {"CHANNEL_PARK", "BACKGROUND_JOB"}
    assert client.command("noevents") == "+OK no longer listening for events"
    assert client.api(f"uuid_kill {channel}") == "+OK\n"
    assert client.command("event plain NO_SUCH_EVENT") == "-ERR no keywords supplied"
    assert len(client.events()) == 2


def test_each_connection_gets_its_own_subscription_in_its_own_format(sim: Simulator, connect: Connect) -> None:
    plain, as_json, silent = connect("plain CHANNEL_ANSWER"), connect("json CHANNEL_ANSWER"), connect(None)
    channel = park(silent)
    assert plain.event("CHANNEL_ANSWER", channel).unique_id == channel
    assert as_json.event("CHANNEL_ANSWER", channel).unique_id == channel
    assert {f.content_type for f in plain.frames if f.is_event} == {"text/event-plain"}
    assert {f.content_type for f in as_json.frames if f.is_event} == {"text/event-json"}
    silent.api(f"uuid_kill {channel}")
    assert not [f for f in silent.frames if f.is_event]


def test_event_sequence_is_monotonic_and_core_uuid_constant(sim: Simulator, connect: Connect) -> None:
    client = connect("json ALL")
    channel = park(client)
    client.event("CHANNEL_PARK", channel)
    client.api(f"uuid_kill {channel}")
    client.event("CHANNEL_DESTROY", channel)
    events = client.events()
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert {e.core_uuid for e in events} == {sim.switch.core_uuid}
    stamps = [e.timestamp_us for e in events]
    assert all(s is not None and s > 1_600_000_000_000_000 for s in stamps)


def test_custom_subscription_by_subclass(sim: Simulator, connect: Connect) -> None:
    client = connect("json CUSTOM sofia::unregister")
    client.api("sim register 1001")
    client.api("sim unregister 1001")
    event = client.event("CUSTOM")
    assert event.subclass == "sofia::unregister"
    assert [e.subclass for e in client.events()] == ["sofia::unregister"]


def test_heartbeat_is_sent_to_all_subscribers(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(heartbeat_seconds=0.05)
    with Client(sim.port) as client:
        client.auth()
        client.command("event plain HEARTBEAT")
        beat = client.event("HEARTBEAT")
    assert beat["Event-Info"] == "System Ready"
    assert beat["Session-Count"] == "0"


def test_sessions_per_second_limit_fails_the_originate(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(Scenario(default=FAST, limits=Limits(sessions_per_second=1)))
    with Client(sim.port) as client:
        client.auth()
        client.command("event plain BACKGROUND_JOB")
        jobs = [client.command(f"bgapi originate {PARKED.format(uuid.uuid4())}")[14:] for _ in range(5)]
        bodies = [client.event("BACKGROUND_JOB", job).body for job in jobs]
    refused = bodies.count("-ERR DESTINATION_OUT_OF_ORDER\n")
    # one session per second: at most two get through even if the burst straddles a second boundary
    assert 3 <= refused <= 4
    assert sim.switch.stats()["refused_by_limits"] == refused


def test_max_sessions_limit_fails_the_originate_without_events(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(Scenario(default=FAST, limits=Limits(max_sessions=2)))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        first, second = park(client), park(client)
        client.event("CHANNEL_PARK", first)
        client.event("CHANNEL_PARK", second)
        third = str(uuid.uuid4())
        assert client.api(f"originate {PARKED.format(third)}") == "-ERR DESTINATION_OUT_OF_ORDER\n"
        assert not [e for e in client.events() if e.unique_id == third]
        client.api(f"uuid_kill {first}")
        assert client.api(f"originate {PARKED.format(third)}") == f"+OK {third}\n"
    assert sim.switch.stats()["refused_by_limits"] == 1


def test_record_lists_every_originate_with_its_variables(sim: Simulator, connect: Connect) -> None:
    client = connect("json BACKGROUND_JOB")
    channel = park(client)
    client.event("BACKGROUND_JOB")
    client.api("originate sofia/gateway/nosuchgw/15551230001 &park()")
    record = json.loads(client.api("sim originates"))
    [entry] = [r for r in record if r["uuid"] == channel]
    assert entry["number"] == "15551230000"
    assert entry["endpoint"] == "gateway/pstn"
    assert entry["variables"]["ignore_early_media"] == "true"
    assert entry["result"] == f"+OK {channel}"
    assert entry["answered_at"] >= entry["time"]
    [refused] = [r for r in record if r["endpoint"] == "gateway/nosuchgw"]
    assert (refused["number"], refused["result"], refused["placed"]) == ("15551230001", "-ERR INVALID_GATEWAY", False)
    assert entry["placed"] is True
    assert sim.originates() == record
    assert client.api("sim clear") == "+OK\n"
    assert json.loads(client.api("sim originates")) == []


def test_the_record_stamps_an_answer_when_it_is_written_to_a_socket(sim: Simulator, connect: Connect) -> None:
    """CHANNEL_ANSWER fired while a blocking ``api originate`` runs waits for the (delayed) reply on that
    connection: the record's answered_at is when it left, not when it was built."""
    client = connect("plain CHANNEL_ANSWER")
    channel = str(uuid.uuid4())
    sim.reply_delay = 0.2
    try:
        assert client.api(f"originate {PARKED.format(channel)}") == f"+OK {channel}\n"
    finally:
        sim.reply_delay = 0.0
    built = client.event("CHANNEL_ANSWER", channel).timestamp_us
    assert built is not None
    [entry] = [r for r in sim.originates() if r["uuid"] == channel]
    assert entry["answered_at"] - built / 1e6 >= 0.2


def test_scenario_can_be_replaced_over_esl(sim: Simulator, connect: Connect) -> None:
    client = connect("json ALL")
    busy = {"rules": [{"match": "1555.*", "callee": {"outcome": "busy", "ring_ms": 1, "answer_ms": 1}}]}
    assert client.api(f"sim scenario {json.dumps(busy)}") == "+OK\n"
    assert client.api(f"originate {PARKED.format(uuid.uuid4())}") == "-ERR USER_BUSY\n"
    assert client.api('sim scenario {"rules": [{"match": "("}]}').startswith("-ERR invalid scenario")


def test_scenario_file_is_validated() -> None:
    with pytest.raises(ValidationError):
        Scenario.model_validate({"default": {"outcome": "maybe"}})
    with pytest.raises(ValidationError):
        Scenario.model_validate({"rules": [{"match": "[", "callee": {}}]})
    with pytest.raises(ValidationError):
        Scenario.model_validate({"defualt": {}})
    rng = random.Random(7)
    assert Callee(jitter_ms=0).delay(250, rng) == 0.25
    delays = {Callee(jitter_ms=100).delay(250, rng) for _ in range(200)}
    assert min(delays) >= 0.15
    assert max(delays) <= 0.35
    assert len(delays) > 50


# ---------------------------------------------------------------------------- faults


def test_fault_drop_closes_every_connection(sim: Simulator, connect: Connect) -> None:
    a, b = connect(None), connect("plain ALL")
    assert a.api("sim fault drop") == "+OK\n"
    for client in (a, b):
        with pytest.raises(ConnectionError):
            client.until(lambda f: False)
    fresh = connect(None)
    assert fresh.api("uuid_exists 67a338ed-1e11-42a6-9f42-1e404ba5a67a") == "false"


def test_fault_lose_drops_events_but_not_replies(sim: Simulator, connect: Connect) -> None:
    client = connect("plain ALL")
    assert client.api("sim fault lose 1") == "+OK\n"
    channel = park(client)
    client.api(f"uuid_kill {channel}")
    assert client.api("sim fault none") == "+OK\n"
    stats = json.loads(client.api("sim stats"))
    assert stats["events_lost"] > 0
    assert not [e for e in client.events() if e.unique_id == channel]
    assert client.api("sim fault lose 2") == "-ERR rate must be between 0 and 1\n"


def test_fault_delay_slows_replies_and_is_reported(sim: Simulator, connect: Connect) -> None:
    client = connect(None)
    assert client.api("sim fault delay 50") == "+OK\n"
    assert json.loads(client.api("sim stats"))["reply_delay_ms"] == 50
    assert client.api("sim fault delay 0") == "+OK\n"


def test_restart_drops_connections_and_forgets_channels(sim: Simulator, connect: Connect) -> None:
    client = connect(None)
    channel = park(client)
    old_core = sim.switch.core_uuid
    assert client.api("sim restart") == "+OK\n"
    with pytest.raises(ConnectionError):
        client.until(lambda f: False)
    fresh = connect("json ALL")
    assert fresh.api(f"uuid_exists {channel}") == "false"
    assert sim.switch.core_uuid != old_core


def test_a_client_that_stops_reading_is_disconnected(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(max_queue_bytes=200_000)
    slow = Client(sim.port)
    slow.auth()
    slow.command("event plain ALL")  # and never reads again
    with Client(sim.port) as driver:
        driver.auth()
        for _ in range(300):
            park(driver)
        wait_until(lambda: len(sim.connections) == 1)
        assert driver.api("uuid_exists 67a338ed-1e11-42a6-9f42-1e404ba5a67a") == "false"
    slow.close()


# ---------------------------------------------------------------------------- ESL basics


def test_wrong_password_gets_err_invalid_and_a_disconnect_notice(sim: Simulator) -> None:
    with Client(sim.port) as client:
        assert client.auth("nope").reply_text == "-ERR invalid"
        assert client.next_frame().content_type == "text/disconnect-notice"
        with pytest.raises(ConnectionError):
            client.next_frame()


def test_bgapi_honours_a_client_job_uuid(sim: Simulator, connect: Connect) -> None:
    client = connect("plain BACKGROUND_JOB")
    job = "11111111-2222-3333-4444-555555555555"
    client.send(f"bgapi uuid_exists {job}\nJob-UUID: {job}\n\n")
    assert client.reply().headers["Job-UUID"] == job
    event = client.event("BACKGROUND_JOB", job)
    assert event.body == "false"
    assert event["Job-Command"] == "uuid_exists"


# ---------------------------------------------------------------------------- the command


def test_dialer_sim_prints_its_port_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"agents": [{"id": "1001"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer.sim", "--port", "0", "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        with Client(port) as client:
            assert client.auth().reply_text == "+OK accepted"
            assert client.api("sofia_contact 1001") == "sofia/dialer/sip:1001@127.0.0.1:5070"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert "stopped" in out


def test_dialer_sim_refuses_a_bad_scenario_file(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.json"
    scenario.write_text('{"default": {"outcome": "maybe"}}')
    result = subprocess.run(
        [sys.executable, "-m", "dialer.sim", "--port", "0", "--scenario", str(scenario)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot load scenario" in result.stderr


def test_the_example_scenario_file_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "dialer" / "sim" / "example_scenario.json"
    scenario = Scenario.from_file(path)
    assert [a.id for a in scenario.agents] == ["1001", "1002", "1003", "1004"]
    assert scenario.rules[4].gateway == "pstn2"


def test_a_minus_filter_vetoes_matching_events(sim: Simulator, connect: Connect) -> None:
    client = connect("plain ALL")
    client.command("filter Event-Name /^CHANNEL_/")
    client.command("filter Event-Name -CHANNEL_STATE")
    channel = park(client)
    client.event("CHANNEL_PARK", channel)
    names = {e.name for e in client.events()}
    assert "CHANNEL_CREATE" in names
    assert "CHANNEL_STATE" not in names
    assert "BACKGROUND_JOB" not in names


def test_restart_with_downtime_refuses_connections_meanwhile(sim: Simulator, connect: Connect) -> None:
    client = connect(None)
    assert client.api("sim restart 30") == "+OK\n"
    with pytest.raises(ConnectionError):
        client.until(lambda f: False)
    with Client(sim.port) as refused, pytest.raises(ConnectionError):
        refused.next_frame()


@pytest.mark.parametrize("garbage", [b"\xff\xfe\xfd\n\n", b"x" * 100_000, b"api status\nNo colon here\n\n"])
def test_a_client_sending_garbage_is_dropped_and_others_carry_on(sim: Simulator, garbage: bytes) -> None:
    with Client(sim.port) as bad:
        bad.auth()
        bad.send(garbage)
        with pytest.raises(ConnectionError):
            bad.until(lambda f: False)
    with Client(sim.port) as good:
        good.auth()
        assert good.api("uuid_exists 67a338ed-1e11-42a6-9f42-1e404ba5a67a") == "false"
