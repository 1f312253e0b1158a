"""The hardened ESL connection over real TCP, against a scripted server on port 0."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import gevent
import pytest

from dialer.esl import server as wire
from dialer.esl.errors import AuthenticationError, CommandError, CommandTimeout, ConnectionLost
from dialer.switch import GAP, Link, Switch

from .scripted_esl import Peer, ScriptedESL, default_responder


def channel_event(name: str, unique_id: str, **extra: str) -> bytes:
    headers = [("Event-Name", name), ("Core-UUID", "core"), ("Unique-ID", unique_id), *extra.items()]
    return wire.event_plain(headers)


def make_switch(server: ScriptedESL, **kwargs: object) -> Switch:
    options: dict[str, object] = {
        "connect_timeout": 2.0,
        "command_timeout": 1.0,
        "backoff_min": 0.02,
        "backoff_max": 0.1,
        "events": ("CHANNEL_ANSWER", "BACKGROUND_JOB"),
    }
    options.update(kwargs)
    return Switch("127.0.0.1", server.port, "ClueCon", **options)  # type: ignore[arg-type]


@pytest.fixture
def esl() -> Iterator[ScriptedESL]:
    with ScriptedESL() as server:
        yield server


def test_wrong_password_is_an_authentication_error_not_a_hang() -> None:
    with ScriptedESL(password="secret") as server:
        link = Link(
            "127.0.0.1",
            server.port,
            "ClueCon",
            connect_timeout=2,
            command_timeout=1,
            idle_timeout=5,
            on_event=lambda f: None,
            on_close=lambda link, reason: None,
        )
        started = time.monotonic()
        with pytest.raises(AuthenticationError, match="refused the ESL password"):
            link.connect()
        assert time.monotonic() - started < 1.5


def test_switch_keeps_retrying_with_backoff_after_auth_failure() -> None:
    with ScriptedESL(password="secret") as server:
        switch = make_switch(server)
        assert switch.start(wait=0.5) is False
        switch.stop()
        assert isinstance(switch.last_error, AuthenticationError)
        # backoff 0.02 -> 0.1 s, halved at most by jitter: a handful of attempts in 0.5 s, not hundreds
        assert 3 <= len(server.peers) <= 30


def test_silent_server_times_out_the_handshake() -> None:
    def never_answer(peer: Peer, command: wire.ClientCommand) -> bytes | None:
        return None

    with ScriptedESL(never_answer) as server:
        link = Link(
            "127.0.0.1",
            server.port,
            "ClueCon",
            connect_timeout=0.3,
            command_timeout=1,
            idle_timeout=5,
            on_event=lambda f: None,
            on_close=lambda link, reason: None,
        )
        with pytest.raises(CommandTimeout):
            link.connect()


def test_command_timeout_then_late_reply_does_not_shift_later_replies() -> None:
    def slow_first(peer: Peer, command: wire.ClientCommand) -> bytes | None:
        if command.line == "api slow":
            gevent.spawn_later(0.4, peer.send, wire.api_response("late"))
            return None
        if command.line.startswith("api echo "):
            return wire.api_response(command.line.removeprefix("api echo "))
        return default_responder(peer, command)

    with ScriptedESL(slow_first) as server:
        switch = make_switch(server)
        assert switch.start(wait=2)
        with pytest.raises(CommandTimeout):
            switch.api("slow", timeout=0.1)
        gevent.sleep(0.5)  # the late reply arrives and must be swallowed by the timed-out waiter
        assert switch.api("echo one") == "one"
        assert switch.api("echo two") == "two"
        switch.stop()


def test_disconnect_fails_pending_commands_at_once(esl: ScriptedESL) -> None:
    def hang_up_on_hang(peer: Peer, command: wire.ClientCommand) -> bytes | None:
        if command.line == "api hang":
            gevent.spawn_later(0.05, peer.close)
            return None
        return default_responder(peer, command)

    esl.responder = hang_up_on_hang
    switch = make_switch(esl, command_timeout=5.0)
    assert switch.start(wait=2)
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        switch.api("hang")
    assert time.monotonic() - started < 1.0, "the pending command must fail on disconnect, not on its timeout"
    switch.stop()


def test_reconnect_resubscribes_reapplies_filters_and_marks_a_gap(esl: ScriptedESL) -> None:
    switch = make_switch(esl, filters=[("variable_dialer_worker", "w1")])
    assert switch.start(wait=2)
    queue = switch.route("0a5c3b38-2d3f-4a4c-9a0e-8f1d7c6b5a49")
    switch.add_filter("Unique-ID", "0a5c3b38-2d3f-4a4c-9a0e-8f1d7c6b5a49")
    first = esl.peers[0]
    first.close()
    second = esl.wait_peers(2)
    assert queue.get(timeout=2) is GAP
    lines = [command.line for command in second.commands]
    assert lines == [
        "auth ClueCon",
        "event plain CHANNEL_ANSWER BACKGROUND_JOB",
        "filter variable_dialer_worker w1",
        "filter Unique-ID 0a5c3b38-2d3f-4a4c-9a0e-8f1d7c6b5a49",
    ]
    assert switch.stats.reconnects == 1
    assert switch.api("status") == "+OK\n"
    switch.stop()


def test_bgapi_future_resolves_with_its_background_job(esl: ScriptedESL) -> None:
    switch = make_switch(esl)
    assert switch.start(wait=2)
    peer = esl.peers[0]
    ok_job = switch.bgapi("status")
    err_job = switch.bgapi("originate sofia/gateway/pstn/15551230000 &park()")
    assert not ok_job.ready()
    job_header = esl.wait_command(peer, "bgapi").headers["Job-UUID"]
    assert job_header == ok_job.job_uuid
    for job, body in ((err_job, "-ERR USER_BUSY\n"), (ok_job, "+OK up\n")):
        peer.send(wire.event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job.job_uuid)], body))
    assert ok_job.get(timeout=2) == "+OK up"
    with pytest.raises(CommandError, match="USER_BUSY"):
        err_job.get(timeout=2)
    switch.stop()


def test_background_jobs_fail_when_the_link_drops(esl: ScriptedESL) -> None:
    switch = make_switch(esl)
    assert switch.start(wait=2)
    job = switch.bgapi("status")
    esl.peers[0].close()
    with pytest.raises(ConnectionLost):
        job.get(timeout=2)
    switch.stop()


def test_api_originate_is_refused() -> None:
    switch = Switch("127.0.0.1", 1, "ClueCon")
    with pytest.raises(CommandError, match="bgapi"):
        switch.api("originate sofia/gateway/pstn/15551230000 &park()")


def test_events_reach_each_call_in_order_and_a_slow_call_blocks_nobody(esl: ScriptedESL) -> None:
    switch = make_switch(esl)
    assert switch.start(wait=2)
    slow_uuid, fast_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    slow, fast = switch.route(slow_uuid), switch.route(fast_uuid)
    count = 300
    burst = b"".join(
        channel_event("CHANNEL_ANSWER", slow_uuid, Seq=str(i)) + channel_event("CHANNEL_ANSWER", fast_uuid, Seq=str(i))
        for i in range(count)
    )
    burst += channel_event("CHANNEL_ANSWER", str(uuid.uuid4()))  # nobody claims this one
    got_slow: list[int] = []

    def slow_consumer() -> None:
        for _ in range(count):
            got_slow.append(int(slow.get(timeout=5)["Seq"]))
            gevent.sleep(0.002)

    consumer = gevent.spawn(slow_consumer)
    esl.peers[0].send(burst)
    got_fast = [int(fast.get(timeout=5)["Seq"]) for _ in range(count)]
    assert got_fast == list(range(count))
    assert len(got_slow) < count, "the fast call must not have waited for the slow one"
    consumer.join(timeout=10)
    assert got_slow == list(range(count))
    gevent.sleep(0.05)
    assert switch.stats.unclaimed == 1
    assert switch.stats.events == 2 * count + 1
    switch.stop()


def test_injected_header_in_a_value_cannot_reroute_an_event(esl: ScriptedESL) -> None:
    switch = make_switch(esl)
    assert switch.start(wait=2)
    victim, attacker = str(uuid.uuid4()), str(uuid.uuid4())
    victim_queue = switch.route(victim)
    # A display name carrying "\nUnique-ID: <victim>" is URL-encoded on the wire by the switch.
    esl.peers[0].send(channel_event("CHANNEL_ANSWER", attacker, **{"Caller-Caller-ID-Name": f"x\nUnique-ID: {victim}"}))
    gevent.sleep(0.1)
    assert victim_queue.empty()
    assert switch.stats.unclaimed == 1
    switch.stop()


def test_stop_is_clean_and_bounded(esl: ScriptedESL) -> None:
    switch = make_switch(esl)
    assert switch.start(wait=2)
    started = time.monotonic()
    switch.stop()
    assert time.monotonic() - started < 2
    assert not switch.connected
    assert [c.line for c in esl.peers[0].commands][-1] == "exit"
