"""Dial-string parsing on the switch's side (pure functions, no sockets)."""

from __future__ import annotations

import pytest

from dialer.sim.dialplan import DialError, parse_inline, parse_originate, parse_targets, seconds


def test_global_and_per_leg_variables_and_the_application() -> None:
    dial = "{a=1,origination_uuid=u1}[b=2]sofia/gateway/pstn/15551230000|user/1001@example.com"
    request = parse_originate(f"{dial} &bridge(user/1002)")
    assert request.variables == {"a": "1", "origination_uuid": "u1"}
    first, second = request.targets
    assert (first.kind, first.name, first.number, first.variables) == ("gateway", "pstn", "15551230000", {"b": "2"})
    assert (second.kind, second.name, second.domain) == ("user", "1001", "example.com")
    assert (request.application, request.application_args) == ("bridge", "user/1002")


def test_an_escaped_comma_stays_inside_a_value() -> None:
    variables, _ = parse_targets(r"{note=a\,b,x=y}sofia/gateway/pstn/123")
    assert variables == {"note": "a,b", "x": "y"}


@pytest.mark.parametrize(
    ("argument", "cause"),
    [
        ("nosuchendpoint/foo &park()", "CHAN_NOT_IMPLEMENTED"),
        ("sofia/internal/1000@host &park()", "CHAN_NOT_IMPLEMENTED"),
        ("sofia/gateway/pstn/1,sofia/gateway/pstn/2 &park()", "SERVICE_NOT_IMPLEMENTED"),
        ("{a=b sofia/gateway/pstn/1 &park()", "INVALID_NUMBER_FORMAT"),
        ("", "DESTINATION_OUT_OF_ORDER"),
    ],
)
def test_undialable_strings_raise_the_freeswitch_cause(argument: str, cause: str) -> None:
    with pytest.raises(DialError) as raised:
        parse_originate(argument)
    assert raised.value.cause == cause


def test_an_extension_instead_of_an_application_parks() -> None:
    request = parse_originate("sofia/gateway/pstn/15551230000 1000 XML default")
    assert (request.application, request.application_args) == ("park", "")


def test_inline_dialplan_steps_and_timeouts() -> None:
    assert parse_inline("bridge:user/1001") == [("bridge", "user/1001")]
    assert parse_inline("playback:/tmp/a.wav,hangup:NORMAL_CLEARING") == [
        ("playback", "/tmp/a.wav"),
        ("hangup", "NORMAL_CLEARING"),
    ]
    assert seconds("0.5", 60.0) == 0.5
    assert seconds(None, 60.0) == 60.0
    assert seconds("soon", 60.0) == 60.0
