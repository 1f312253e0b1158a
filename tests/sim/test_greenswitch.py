"""greenswitch, the ESL client the project builds on, talks to the simulator as to FreeSWITCH."""

from __future__ import annotations

import uuid
from typing import Any

import gevent.event
import greenswitch

from dialer.sim import Simulator


def test_greenswitch_originates_and_receives_events(sim: Simulator) -> None:
    channel = str(uuid.uuid4())
    answered: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def on_answer(event: Any) -> None:
        if event.headers.get("Unique-ID") == channel:
            answered.set(event.headers)

    esl = greenswitch.InboundESL("127.0.0.1", sim.port, "ClueCon", timeout=5)
    esl.connect()
    try:
        esl.register_handle("CHANNEL_ANSWER", on_answer)
        assert esl.send("event plain CHANNEL_ANSWER").headers["Reply-Text"] == "+OK event listener enabled plain"
        reply = esl.send(f"bgapi originate {{origination_uuid={channel},ignore_early_media=true}}"
                         "sofia/gateway/pstn/15551230000 &park()")  # fmt: skip
        assert reply.headers["Reply-Text"].startswith("+OK Job-UUID: ")
        headers = answered.get(timeout=5)
        assert headers["Answer-State"] == "answered"
        assert esl.send(f"api uuid_exists {channel}").data == "true"
    finally:
        esl.stop()
