"""Client command serialisers: rebuilt from our own builders, every recorded session's client bytes
come out identical; line breaks are refused; ``-ERR`` replies become CommandError."""

from __future__ import annotations

import re

import pytest

from dialer.esl import CommandError, Gateway, UnsafeValueError, User, commands
from dialer.esl import dialstring as ds

from .captures import sent, stream_names

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def build_api(text: str) -> str | None:
    """The API command text, made by our builders; None when no builder makes it (e.g. ``foobar``)."""
    if match := re.fullmatch(r"originate (?:\{(.*)\})?sofia/gateway/(\w+)/(\d+) &park\(\)", text):
        block, gateway, number = match.groups()
        variables = dict(item.split("=", 1) for item in block.split(",")) if block else None
        return ds.originate(Gateway(gateway, number), variables=variables)
    if match := re.fullmatch(rf"uuid_bridge ({UUID}) ({UUID})", text):
        return ds.uuid_bridge(*match.groups())
    if match := re.fullmatch(rf"uuid_kill ({UUID})(?: (\w+))?", text):
        return ds.uuid_kill(*match.groups())
    if match := re.fullmatch(rf"uuid_exists ({UUID})", text):
        return ds.uuid_exists(match.group(1))
    if match := re.fullmatch(rf"uuid_getvar ({UUID}) (\w+)", text):
        return ds.uuid_getvar(*match.groups())
    if match := re.fullmatch(rf"uuid_transfer ({UUID}) bridge:user/(\d+) inline", text):
        return ds.uuid_transfer(match.group(1), f"bridge:{User(match.group(2))}", "inline")
    if match := re.fullmatch(r"sofia_contact (\d+)@([\d.]+)", text):
        return ds.sofia_contact(*match.groups())
    if match := re.fullmatch(r"hupall (\w+)", text):
        return ds.hupall(match.group(1))
    return {"show calls as json": ds.show_calls_json(), "show channels as json": ds.show_channels_json()}.get(text)


def rebuild(block: str) -> tuple[bytes, bool]:
    """One command block of a .sent.txt file, serialised by ``commands``; (bytes, made by us?)."""
    line, *header_lines = block.split("\n")
    headers = dict(h.split(": ", 1) for h in header_lines)
    verb, _, rest = line.partition(" ")
    if verb == "auth":
        return commands.auth(rest), True
    if verb == "event":
        fmt, *names = rest.split(" ")
        return commands.event(names, fmt), True  # type: ignore[arg-type]
    if verb == "nixevent":
        return commands.nixevent(rest.split(" ")), True
    if verb == "filter":
        return commands.filter_add(*rest.split(" ")), True
    if line == "noevents":
        return commands.noevents(), True
    if line == "exit":
        return commands.exit_session(), True
    if verb in ("api", "bgapi") and rest and (api_text := build_api(rest)) is not None:
        if verb == "api":
            return commands.api(api_text), True
        return commands.bgapi(api_text, headers.get("Job-UUID")), True
    if verb == "bgapi" and rest:
        return commands.bgapi(rest, headers.get("Job-UUID")), True
    if verb == "api" and rest:  # status, sofia status ...: no builder, but our serialiser
        return commands.api(rest), True
    return f"{block}\n\n".encode(), False  # an unknown ESL command sent on purpose (foobar, linger)


@pytest.mark.parametrize("name", stream_names())
def test_every_recorded_client_stream_is_rebuilt_byte_for_byte(name: str) -> None:
    raw = sent(name)
    blocks = [b for b in raw.decode().split("\n\n") if b]
    rebuilt = [rebuild(block) for block in blocks]
    assert b"".join(data for data, _ in rebuilt) == raw
    not_ours = {block for block, (_, ours) in zip(blocks, rebuilt, strict=True) if not ours}
    assert not_ours <= {"foobar", "linger", "nolinger", "api"}  # the deliberately bad commands only


def test_exact_bytes() -> None:
    assert commands.auth("ClueCon") == b"auth ClueCon\n\n"
    assert commands.event("ALL", "plain") == b"event plain ALL\n\n"
    assert commands.event(["ALL"]) == b"event json ALL\n\n"
    assert commands.event(
        ["CHANNEL_ANSWER", "BACKGROUND_JOB"], "json", ["sofia::register", "conference::maintenance"]
    ) == (b"event json CHANNEL_ANSWER BACKGROUND_JOB CUSTOM sofia::register conference::maintenance\n\n")
    assert commands.event((), "plain", "sofia::register") == b"event plain CUSTOM sofia::register\n\n"
    assert commands.nixevent("CHANNEL_HANGUP_COMPLETE") == b"nixevent CHANNEL_HANGUP_COMPLETE\n\n"
    assert commands.filter_add("Event-Name", "BACKGROUND_JOB") == b"filter Event-Name BACKGROUND_JOB\n\n"
    assert commands.filter_delete("Event-Name") == b"filter delete Event-Name\n\n"
    assert commands.filter_delete("Unique-ID", "2f71ed33-d5f3-4f47-9204-cb92b0d90ff0") == (
        b"filter delete Unique-ID 2f71ed33-d5f3-4f47-9204-cb92b0d90ff0\n\n"
    )
    assert commands.noevents() == b"noevents\n\n"
    assert commands.exit_session() == b"exit\n\n"
    assert commands.api("status") == b"api status\n\n"
    assert commands.bgapi("status") == b"bgapi status\n\n"
    assert commands.bgapi("status", "11111111-2222-3333-4444-555555555555") == (
        b"bgapi status\nJob-UUID: 11111111-2222-3333-4444-555555555555\n\n"
    )


@pytest.mark.parametrize("bad", ["status\n", "status\r", "sta\r\ntus", "\nevent plain ALL", "status\x00"])
def test_api_and_bgapi_refuse_line_breaks(bad: str) -> None:
    for build in (commands.api, commands.bgapi):
        with pytest.raises(UnsafeValueError) as caught:
            build(bad)
        assert caught.value.field == "command"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: commands.auth("Clue Con"), "password"),
        (lambda: commands.auth("ClueCon\n\napi status"), "password"),
        (lambda: commands.auth(""), "password"),
        (lambda: commands.event(["ALL\n"]), "event name"),
        (lambda: commands.event(["channel_answer"]), "event name"),
        (lambda: commands.event([]), "events"),
        (lambda: commands.event(["ALL"], "yaml"), "format"),  # type: ignore[arg-type]
        (lambda: commands.event(["ALL"], "json", ["sofia register"]), "event subclass"),
        (lambda: commands.nixevent(["ALL", "X Y"]), "event name"),
        (lambda: commands.filter_add("Event-Name", "A B"), "filter value"),
        (lambda: commands.filter_add("Event Name", "X"), "filter header"),
        (lambda: commands.filter_add("Unique-ID", "x\nauth y"), "filter value"),
        (lambda: commands.filter_delete("Event-Name", "x,y"), "filter value"),
        (lambda: commands.bgapi("status", "not-a-uuid"), "job uuid"),
        (lambda: commands.bgapi("status", "11111111-2222-3333-4444-555555555555\nX: y"), "job uuid"),
    ],
)
def test_command_arguments_are_checked(build: object, field: str) -> None:
    with pytest.raises(UnsafeValueError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        ("-ERR No such channel!\n", "No such channel!"),
        ("-ERR INVALID_GATEWAY\n", "INVALID_GATEWAY"),
        ("-ERR USER_BUSY\n", "USER_BUSY"),
        ("-ERR command not found", "command not found"),
        ("-ERR", ""),
    ],
)
def test_raise_for_error_maps_err_to_command_error(reply: str, cause: str) -> None:
    with pytest.raises(CommandError) as caught:
        commands.raise_for_error("uuid_kill 2f71ed33-d5f3-4f47-9204-cb92b0d90ff0", reply)
    assert caught.value.reply == cause
    assert caught.value.command.startswith("uuid_kill ")
    assert str(caught.value) == f"uuid_kill: {cause}"


@pytest.mark.parametrize(
    "reply", ["+OK\n", "+OK 2f71ed33-d5f3-4f47-9204-cb92b0d90ff0\n", "true", "false", "_undef_", ""]
)
def test_raise_for_error_passes_other_replies_through(reply: str) -> None:
    assert commands.raise_for_error("api x", reply) == reply
