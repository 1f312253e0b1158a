"""The obvious design, for comparison: an RQ job that places one call with plain greenswitch.

Run by stock ``rq worker`` (a fork per job). Each job opens its own ``InboundESL`` connection,
subscribes to the channel events, ``bgapi originate``s the customer, waits for the answer, originates
the agent, waits for the agent's answer, ``uuid_bridge``s them, waits for the hangup, and hangs up
whatever is left: what a user following greenswitch's README would write (minus ``stop()``, see below,
to be generous to it). Deliberately none of the
dialer's machinery (no Redis claims, no records, no reconnects): it is the floor of the simple way.
"""

from __future__ import annotations

import uuid
from typing import Any

import gevent.event
import greenswitch


def call(port: int, number: str, agent: str, timeout: float = 30.0) -> dict[str, str]:
    esl = greenswitch.InboundESL(host="127.0.0.1", port=port, password="ClueCon")
    esl.connect()
    customer, agent_leg = str(uuid.uuid4()), str(uuid.uuid4())
    answered = {customer: gevent.event.Event(), agent_leg: gevent.event.Event()}
    hung_up = gevent.event.Event()

    def on_answer(event: Any) -> None:
        leg = event.headers.get("Unique-ID")
        if leg in answered:
            answered[leg].set()

    def on_hangup(event: Any) -> None:
        if event.headers.get("Unique-ID") in answered:
            hung_up.set()

    esl.register_handle("CHANNEL_ANSWER", on_answer)
    esl.register_handle("CHANNEL_HANGUP_COMPLETE", on_hangup)
    esl.send("event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE")
    try:
        esl.send(f"bgapi originate {{origination_uuid={customer}}}sofia/gateway/pstn/{number} &park()")
        if not answered[customer].wait(timeout):
            return {"outcome": "no-answer"}
        esl.send(f"bgapi originate {{origination_uuid={agent_leg}}}user/{agent} &park()")
        if not answered[agent_leg].wait(timeout):
            return {"outcome": "abandoned"}
        esl.send(f"api uuid_bridge {customer} {agent_leg}")
        hung_up.wait(timeout)
        return {"outcome": "completed", "uuid": customer}
    finally:
        esl.send(f"api uuid_kill {customer}")
        esl.send(f"api uuid_kill {agent_leg}")
        # Not ``esl.stop()``: it joins greenswitch's event loop, which polls its queue once a second, so
        # every call would last up to a second longer. The work horse exits after the job anyway.
        esl.send("exit")
