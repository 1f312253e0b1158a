"""Callee scenarios, dial strings, channel commands and agents, over real TCP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from dialer.esl import parse_event
from dialer.sim import Agent, Callee, Rule, Scenario, Simulator

from .client import Client
from .conftest import FAST, FAST_AGENT

Connect = Callable[..., Client]


def originate(client: Client, dial: str, app: str = "&park()") -> tuple[str, str]:
    """bgapi originate with a fresh origination_uuid; returns (channel uuid, job uuid)."""
    channel = str(uuid.uuid4())
    dial = (
        dial.replace("{", "{origination_uuid=" + channel + ",", 1)
        if dial.startswith("{")
        else ("{origination_uuid=" + channel + "}" + dial)
    )
    reply = client.command(f"bgapi originate {dial} {app}")
    assert reply.startswith("+OK Job-UUID: ")
    return channel, reply.removeprefix("+OK Job-UUID: ")


def job_result(client: Client, job: str) -> str:
    return client.event("BACKGROUND_JOB", job).body


def scenario(*rules: Rule, agents: tuple[Agent, ...] = (FAST_AGENT,)) -> Scenario:
    return Scenario(default=FAST, rules=list(rules), agents=list(agents))


@pytest.mark.parametrize(
    ("outcome", "cause", "status", "q850"),
    [
        ("busy", "USER_BUSY", 486, 17),
        ("reject", "CALL_REJECTED", 603, 21),
        ("invalid", "UNALLOCATED_NUMBER", 404, 1),
        ("network_failure", "NORMAL_TEMPORARY_FAILURE", 503, 41),
    ],
)
def test_failing_callee_gives_the_freeswitch_cause_sip_status_and_q850(
    make_sim: Callable[..., Simulator], outcome: str, cause: str, status: int, q850: int
) -> None:
    sim = make_sim(scenario(Rule(callee=Callee(outcome=outcome, ring_ms=5, answer_ms=10))))  # type: ignore[arg-type]
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        channel, job = originate(client, "sofia/gateway/pstn/15551230000")
        assert job_result(client, job) == f"-ERR {cause}\n"
        complete = client.event("CHANNEL_HANGUP_COMPLETE", channel)
    assert (complete.hangup_cause, complete.sip_status, complete.q850) == (cause, status, q850)
    assert complete.hangup_disposition == "recv_refuse"
    assert "CHANNEL_ANSWER" not in [e.name for e in client.events()]


def test_no_answer_rings_until_the_originate_timeout(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, job = originate(client, "{originate_timeout=0.2}sofia/gateway/pstn/15551230408")
    assert job_result(client, job) == "-ERR NO_ANSWER\n"
    complete = client.event("CHANNEL_HANGUP_COMPLETE", channel)
    assert (complete.hangup_cause, complete.q850, complete.sip_status) == ("NO_ANSWER", 19, 487)
    names = [e.name for e in client.events() if e.unique_id == channel]
    assert "CHANNEL_PROGRESS" in names
    assert "CHANNEL_ANSWER" not in names


def test_answering_machine_is_marked_on_the_answer(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, job = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230777")
    answer = client.event("CHANNEL_ANSWER", channel)
    assert answer.variable("amd_result") == "MACHINE"
    assert job_result(client, job) == f"+OK {channel}\n"


def test_callee_hangs_up_after_talking(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(scenario(Rule(callee=Callee(ring_ms=5, early_media_ms=5, answer_ms=10, hangup_after_ms=30))))
    with Client(sim.port) as client:
        client.auth()
        client.command("event plain ALL")
        channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
        complete = client.event("CHANNEL_HANGUP_COMPLETE", channel)
    assert (complete.hangup_cause, complete.hangup_disposition, complete.sip_status) == (
        "NORMAL_CLEARING",
        "recv_bye",
        200,
    )
    assert complete.variable("billsec") == "0"
    assert complete.caller_time_us("Answered")


def test_answer_without_early_media_has_no_progress_media(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(scenario(Rule(callee=Callee(early_media=False, ring_ms=5, answer_ms=10))))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        channel, job = originate(client, "sofia/gateway/pstn/15551230000")
        assert job_result(client, job) == f"+OK {channel}\n"
        client.event("CHANNEL_PARK", channel)
    names = [e.name for e in client.events() if e.unique_id == channel]
    assert "CHANNEL_PROGRESS_MEDIA" not in names
    assert names.index("CHANNEL_PROGRESS") < names.index("CODEC") < names.index("CHANNEL_ANSWER")


def test_originate_variables_reach_hangup_complete(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, _ = originate(
        client, "{ignore_early_media=true,dialer_attempt=3,origination_caller_id_number=8005551000}"
        "[dialer_contact=c42]sofia/gateway/pstn/15551230000",
    )  # fmt: skip
    client.event("CHANNEL_PARK", channel)
    assert client.api(f"uuid_kill {channel}") == "+OK\n"
    complete = client.event("CHANNEL_HANGUP_COMPLETE", channel)
    assert complete.variable("dialer_attempt") == "3"
    assert complete.variable("dialer_contact") == "c42"
    assert complete["Caller-Orig-Caller-ID-Number"] == "8005551000"
    assert complete.variable("origination_uuid") == channel


@pytest.mark.parametrize(
    ("dial", "cause"),
    [
        ("sofia/gateway/nosuchgw/15551230000", "INVALID_GATEWAY"),
        ("nosuchendpoint/foo", "CHAN_NOT_IMPLEMENTED"),
        ("sofia/gateway/pstn/1555123,sofia/gateway/pstn/1555124", "SERVICE_NOT_IMPLEMENTED"),
        ("user/nobody", "USER_NOT_REGISTERED"),
    ],
)
def test_undialable_targets_fail_the_originate(sim: Simulator, connect: Connect, dial: str, cause: str) -> None:
    client = connect()
    assert client.api(f"originate {dial} &park()") == f"-ERR {cause}\n"
    _, job = originate(client, dial)
    assert job_result(client, job) == f"-ERR {cause}\n"
    assert not [e for e in client.events() if e.name == "CHANNEL_CREATE"]


def test_failover_tries_the_next_leg_after_a_failure(make_sim: Callable[..., Simulator]) -> None:
    busy = Rule(match="15550000486", callee=Callee(outcome="busy", ring_ms=5, answer_ms=5))
    sim = make_sim(scenario(busy))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        dial = "{ignore_early_media=true}sofia/gateway/pstn/15550000486|sofia/gateway/pstn2/15550000001"
        job = client.command(f"bgapi originate {dial} &park()").removeprefix("+OK Job-UUID: ")
        body = job_result(client, job)
    assert body.startswith("+OK ")
    numbers = [e["Caller-Destination-Number"] for e in client.events() if e.name == "CHANNEL_CREATE"]
    assert numbers == ["15550000486", "15550000001"]
    results = [(r["number"], r["result"][:4]) for r in sim.originates()]
    assert results == [("15550000486", "-ERR"), ("15550000001", "+OK ")]


def test_blocking_api_originate_holds_events_until_its_reply(sim: Simulator, connect: Connect) -> None:
    client = connect("plain ALL")
    channel = str(uuid.uuid4())
    dial = f"{{origination_uuid={channel},ignore_early_media=true}}sofia/gateway/pstn/15551230000"
    client.send(f"api originate {dial} &park()\n\n")
    first = client.until(lambda f: f.content_type == "api/response" or f.is_event)
    assert first.content_type == "api/response"
    assert first.body == f"+OK {channel}\n".encode()
    client.event("CHANNEL_PARK", channel)


def test_channel_commands(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    client.event("CHANNEL_PARK", channel)
    assert client.api(f"uuid_exists {channel}") == "true"
    assert client.api(f"uuid_getvar {channel} dialer_x") == "_undef_"
    assert client.api(f"uuid_setvar {channel} dialer_x 42") == "+OK\n"
    assert client.api(f"uuid_getvar {channel} dialer_x") == "42"
    assert client.api(f"uuid_broadcast {channel} /tmp/hello.wav aleg") == "+OK Message sent\n"
    rows = json.loads(client.api("show channels as json"))
    assert rows["row_count"] == 1
    assert rows["rows"][0]["uuid"] == channel
    assert client.api(f"sched_hangup +0 {channel} ALLOTTED_TIMEOUT") == "+OK\n"
    assert client.event("CHANNEL_HANGUP_COMPLETE", channel).hangup_cause == "ALLOTTED_TIMEOUT"
    assert client.api(f"uuid_exists {channel}") == "false"
    assert client.api(f"uuid_kill {channel}") == "-ERR No such channel!\n"
    assert client.api("show channels as json") == '{"row_count": 0}\n'


def test_hupall_hangs_up_every_channel(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channels = [originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")[0] for _ in range(3)]
    for channel in channels:
        client.event("CHANNEL_PARK", channel)
    assert client.api("hupall NORMAL_CLEARING") == "+OK hangup all channels with cause NORMAL_CLEARING\n"
    for channel in channels:
        assert client.event("CHANNEL_HANGUP_COMPLETE", channel).hangup_cause == "NORMAL_CLEARING"
    assert sim.switch.channels == {}


def test_agents_register_and_unregister_with_sofia_events(sim: Simulator, connect: Connect) -> None:
    client = connect("plain CUSTOM sofia::register sofia::unregister")
    assert client.api("sofia_contact 2002@127.0.0.1") == "error/user_not_registered"
    assert client.api("sim register 2002") == "+OK\n"
    registered = client.event("CUSTOM")
    assert (registered.subclass, registered["from-user"]) == ("sofia::register", "2002")
    assert client.api("sofia_contact 2002@127.0.0.1") == "sofia/dialer/sip:2002@127.0.0.1:5070"
    assert client.api("sim unregister 2002") == "+OK\n"
    unregistered = client.event("CUSTOM")
    assert unregistered.subclass == "sofia::unregister"
    assert client.api("originate user/2002 &park()") == "-ERR USER_NOT_REGISTERED\n"
    client.api("sim register 2002")
    client.command("event plain CUSTOM sofia::expire")
    assert client.api("sim expire 2002") == "+OK\n"
    expired = client.until(lambda f: f.is_event and parse_event(f).subclass == "sofia::expire")
    assert parse_event(expired)["from-user"] == "2002"


def test_transfer_to_an_agent_bridges_and_records_answer_to_bridge(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    client.event("CHANNEL_PARK", channel)
    assert client.api(f"uuid_transfer {channel} bridge:user/1001 inline") == "+OK\n"
    bridge = client.event("CHANNEL_BRIDGE", channel)
    assert bridge.bridge_a_uuid == channel
    record = {r["uuid"]: r for r in json.loads(client.api("sim originates"))}
    assert record[channel]["answer_to_bridge_ms"] >= 0
    assert record[channel]["bridged_at"] is not None
    agent_leg = bridge.bridge_b_uuid
    assert record[agent_leg]["endpoint"] == "user/1001"
    client.api(f"uuid_kill {channel}")
    assert client.event("CHANNEL_HANGUP_COMPLETE", agent_leg).hangup_cause == "NORMAL_CLEARING"


def test_transfer_to_an_unregistered_agent_hangs_the_customer_up(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    client.event("CHANNEL_PARK", channel)
    client.api(f"uuid_transfer {channel} bridge:user/9999 inline")
    assert client.event("CHANNEL_HANGUP_COMPLETE", channel).hangup_cause == "USER_NOT_REGISTERED"


def test_agent_who_never_answers_times_out(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(scenario(agents=(Agent(id="1002", answer_ms=None),)))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        channel, _ = originate(client, "{ignore_early_media=true,continue_on_fail=true}sofia/gateway/pstn/15551230000")
        client.event("CHANNEL_PARK", channel)
        client.api(f"uuid_transfer {channel} bridge:[call_timeout=0.2]user/1002,park inline")
        complete = client.event("CHANNEL_HANGUP_COMPLETE")
        assert complete["Caller-Destination-Number"] == "1002"
        assert complete.hangup_cause == "NO_ANSWER"
        # continue_on_fail: the inline dialplan goes on to its next step, park
        assert client.event("CHANNEL_PARK", channel).unique_id == channel
    assert channel in sim.switch.channels


def test_agent_hangs_up_after_talk_time(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(scenario(agents=(Agent(id="1003", answer_ms=5, talk_ms=30),)))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
        client.event("CHANNEL_PARK", channel)
        client.api(f"uuid_transfer {channel} bridge:user/1003 inline")
        bridge = client.event("CHANNEL_BRIDGE", channel)
        agent = client.event("CHANNEL_HANGUP_COMPLETE", bridge.bridge_b_uuid)
        customer = client.event("CHANNEL_HANGUP_COMPLETE", channel)
    assert agent.hangup_disposition == "recv_bye"
    assert customer.hangup_cause == "NORMAL_CLEARING"


def test_uuid_bridge_and_originate_to_a_registered_agent(sim: Simulator, connect: Connect) -> None:
    client = connect()
    customer, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    agent, job = originate(client, "{ignore_early_media=true}user/1001")
    assert job_result(client, job) == f"+OK {agent}\n"
    client.event("CHANNEL_PARK", customer)
    assert client.api(f"uuid_bridge {customer} {agent}") == f"+OK {agent}\n"
    bridge = client.event("CHANNEL_BRIDGE", customer)
    assert (bridge.bridge_a_uuid, bridge.bridge_b_uuid) == (customer, agent)
    calls = json.loads(client.api("show calls as json"))
    assert calls["rows"][0]["b_uuid"] == agent
    assert client.api("uuid_bridge 3b429808-69d7-437c-8af1-c68538a0dafb 372cc24c-5eae-490a-baf3-d20f0f944442") == (
        "-ERR Invalid uuid\n"
    )


def test_agent_hangup_ends_the_customer_bridge_before_the_customer_hangs_up(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(scenario(agents=(Agent(id="1004", answer_ms=5, talk_ms=20),)))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
        client.event("CHANNEL_PARK", channel)
        client.api(f"uuid_transfer {channel} bridge:user/1004 inline")
        client.event("CHANNEL_DESTROY", channel)
    names = [e.name for e in client.events() if e.unique_id == channel]
    tail = names[names.index("CHANNEL_UNBRIDGE") :]
    assert tail[:3] == ["CHANNEL_UNBRIDGE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP"]
    assert tail[-3:] == ["CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY", "CHANNEL_STATE"]


def test_sendmsg_hangup_and_execute(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    client.event("CHANNEL_PARK", channel)
    execute = "call-command: execute\nexecute-app-name: playback\nexecute-app-arg: /tmp/x.wav"
    client.send(f"sendmsg {channel}\n{execute}\n\n")
    assert client.reply().reply_text == "+OK"
    client.send(f"sendmsg {channel}\ncall-command: hangup\nhangup-cause: CALL_REJECTED\n\n")
    assert client.reply().reply_text == "+OK"
    assert client.event("CHANNEL_HANGUP_COMPLETE", channel).hangup_cause == "CALL_REJECTED"
    apps = [(e["Application"], e.get("Application-Data")) for e in client.events() if e.name == "CHANNEL_EXECUTE"]
    assert apps == [("park", None), ("playback", "/tmp/x.wav")]


def test_uuid_kill_while_ringing_cancels_the_originate(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(scenario(Rule(callee=Callee(outcome="no_answer", ring_ms=1))))
    with Client(sim.port) as client:
        client.auth()
        client.command("event json ALL")
        channel, job = originate(client, "sofia/gateway/pstn/15551230000")
        client.event("CHANNEL_PROGRESS", channel)
        assert client.api(f"uuid_kill {channel}") == "+OK\n"
        assert job_result(client, job) == "-ERR NORMAL_CLEARING\n"
        complete = client.event("CHANNEL_HANGUP_COMPLETE", channel)
    assert (complete.hangup_disposition, complete.sip_status, complete.variable("billsec")) == ("send_cancel", 487, "0")


@pytest.mark.parametrize(
    ("destination", "cause"),
    [
        ("hangup:USER_BUSY", "USER_BUSY"),
        ("playback:/tmp/x.wav", "NORMAL_CLEARING"),
        ("playback:/tmp/x.wav,hangup:CALL_REJECTED", "CALL_REJECTED"),
    ],
)
def test_inline_transfer_runs_the_application(sim: Simulator, connect: Connect, destination: str, cause: str) -> None:
    client = connect()
    channel, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    client.event("CHANNEL_PARK", channel)
    assert client.api(f"uuid_transfer {channel} {destination} inline") == "+OK\n"
    assert client.event("CHANNEL_HANGUP_COMPLETE", channel).hangup_cause == cause


def test_originate_with_bridge_application_connects_customer_and_agent(sim: Simulator, connect: Connect) -> None:
    client = connect()
    channel, job = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000", "&bridge(user/1001)")
    assert job_result(client, job) == f"+OK {channel}\n"
    bridge = client.event("CHANNEL_BRIDGE", channel)
    record = {r["uuid"]: r for r in json.loads(client.api("sim originates"))}
    assert record[bridge.bridge_b_uuid]["endpoint"] == "user/1001"


def test_agent_originate_naming_the_customer_leg_counts_as_a_bridge_request(sim: Simulator, connect: Connect) -> None:
    client = connect()
    customer, _ = originate(client, "{ignore_early_media=true}sofia/gateway/pstn/15551230000")
    client.event("CHANNEL_PARK", customer)
    before = {r["uuid"]: r for r in json.loads(client.api("sim originates"))}
    assert before[customer]["bridge_requested_at"] is None
    _, job = originate(client, f"{{ignore_early_media=true,dialer_customer={customer}}}user/1001")
    job_result(client, job)
    after = {r["uuid"]: r for r in json.loads(client.api("sim originates"))}
    assert after[customer]["bridge_requested_at"] >= after[customer]["answered_at"]
    assert after[customer]["answer_to_bridge_ms"] >= 0
