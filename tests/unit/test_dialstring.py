"""Dial-string and API command builders: every dangerous character refused in every field, with an
error naming the field and the character; the valid forms give the exact text FreeSWITCH was sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.esl import Gateway, Leg, Loopback, UnsafeValueError, User
from dialer.esl import dialstring as ds

from .captures import sent_commands

U1 = "2f71ed33-d5f3-4f47-9204-cb92b0d90ff0"
U2 = "b3e46def-bacf-452d-b135-7fb39becb3ad"

# (field named in the error, valid value, builder that puts the value in that field)
FIELDS: list[tuple[str, str, Callable[[str], object]]] = [
    ("gateway", "pstn", lambda v: str(Gateway(v, "15551230000"))),
    ("number", "15551230000", lambda v: str(Gateway("pstn", v))),
    ("agent id", "1001", lambda v: str(User(v))),
    ("domain", "example.com", lambda v: str(User("1001", v))),
    ("extension", "1000", lambda v: str(Loopback(v))),
    ("context", "default", lambda v: str(Loopback("1000", v))),
    ("variable name", "origination_uuid", lambda v: ds.originate(Gateway("pstn", "15551230000"), variables={v: "x"})),
    (
        "variable ignore_early_media",
        "true",
        lambda v: ds.originate(Gateway("pstn", "15551230"), variables={"ignore_early_media": v}),
    ),
    ("variable name", "leg_timeout", lambda v: str(Leg(User("1001"), {v: "30"}))),
    ("variable leg_timeout", "30", lambda v: str(Leg(User("1001"), {"leg_timeout": v}))),
    ("application", "park", lambda v: ds.originate(User("1001"), application=v)),
    (
        "application arguments",
        "/tmp/x.wav",
        lambda v: ds.originate(User("1001"), application="playback", application_args=v),
    ),
    ("uuid", U1, lambda v: ds.uuid_bridge(v, U2)),
    ("other uuid", U2, lambda v: ds.uuid_bridge(U1, v)),
    ("uuid", U1, lambda v: ds.uuid_transfer(v, "bridge:user/1001", "inline")),
    ("destination", "bridge:user/1001", lambda v: ds.uuid_transfer(U1, v, "inline")),
    ("dialplan", "inline", lambda v: ds.uuid_transfer(U1, "1000", v)),
    ("context", "default", lambda v: ds.uuid_transfer(U1, "1000", "XML", v)),
    ("uuid", U1, lambda v: ds.uuid_kill(v)),
    ("cause", "USER_BUSY", lambda v: ds.uuid_kill(U1, v)),
    ("uuid", U1, lambda v: ds.uuid_exists(v)),
    ("uuid", U1, lambda v: ds.uuid_broadcast(v, "/tmp/x.wav")),
    ("path", "/tmp/x.wav", lambda v: ds.uuid_broadcast(U1, v)),
    ("uuid", U1, lambda v: ds.uuid_setvar(v, "a", "b")),
    ("variable name", "agent_id", lambda v: ds.uuid_setvar(U1, v, "b")),
    ("variable agent_id", "1001", lambda v: ds.uuid_setvar(U1, "agent_id", v)),
    ("uuid", U1, lambda v: ds.uuid_getvar(v, "a")),
    ("variable name", "sip_term_status", lambda v: ds.uuid_getvar(U1, v)),
    ("uuid", U1, lambda v: ds.sched_hangup(v, 30)),
    ("cause", "ALLOTTED_TIMEOUT", lambda v: ds.sched_hangup(U1, 30, v)),
    ("agent id", "1001", lambda v: ds.sofia_contact(v)),
    ("domain", "127.0.0.1", lambda v: ds.sofia_contact("1001", v)),
    ("profile", "dialer", lambda v: ds.sofia_contact("1001", profile=v)),
    ("cause", "MANAGER_REQUEST", lambda v: ds.hupall(v)),
]
OPTIONAL = {
    "domain",
    "context",
    "cause",
    "profile",
    "variable agent_id",
    "application arguments",
}  # None = left out of the command
FIELD_IDS = [f"{i}-{name}" for i, (name, _, _) in enumerate(FIELDS)]

DANGEROUS = [
    "\r",
    "\n",
    ",",
    "'",
    '"',
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    "$",
    "^",
    "\\",
    " ",
    "&",
    "|",
    ";",
    "\x00",
    "\t",
    "=",
    "(",
    ")",
    "!",
    "`",
    "%",
    "１",  # fullwidth digit one
    "\u0430",  # Cyrillic a
    "\u00a0",  # no-break space
    "\u200b",  # zero-width space
    "\u202e",  # right-to-left override
    "\u0661",  # Arabic-Indic digit one
    "²",  # superscript two
    "\u2028",  # line separator
]


@pytest.mark.parametrize(("field", "valid", "build"), FIELDS, ids=FIELD_IDS)
def test_each_field_accepts_its_valid_value(field: str, valid: str, build: Callable[[str], object]) -> None:
    text = build(valid)
    assert isinstance(text, str)
    assert valid in text


@pytest.mark.parametrize("char", DANGEROUS, ids=[f"U+{ord(c):04X}" for c in DANGEROUS])
@pytest.mark.parametrize(("field", "valid", "build"), FIELDS, ids=FIELD_IDS)
def test_each_field_refuses_each_dangerous_character(
    field: str, valid: str, build: Callable[[str], object], char: str
) -> None:
    value = valid[:1] + char + valid[1:]
    with pytest.raises(UnsafeValueError) as caught:
        build(value)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    assert repr(char) in str(error)
    assert f"U+{ord(char):04X}" in str(error)
    assert "at position 1" in str(error)


BAD_VALUES = [
    ("empty", "", "must not be empty"),
    ("10MB", "9" * 10_000_000, "characters long"),
    ("None", None, "must be text, not NoneType"),
    ("int", 12345, "must be text, not int"),
    ("bytes", b"1001", "must be text, not bytes"),
    ("list", ["1001"], "must be text, not list"),
]


def _bad_value_cases() -> list[Any]:
    """Every field with every bad value, except where the value is legitimate for that field:
    None means "leave it out" for optional fields, and an application may take no arguments."""
    cases = []
    for (field, valid, build), field_id in zip(FIELDS, FIELD_IDS, strict=True):
        for value_id, value, reason in BAD_VALUES:
            if (value is None and field in OPTIONAL) or (value == "" and field == "application arguments"):
                continue
            if isinstance(value, list) and field == "variable name":
                value, reason = ("1001",), "must be text, not tuple"  # a dict key must be hashable
            cases.append(pytest.param(field, valid, build, value, reason, id=f"{field_id}-{value_id}"))
    return cases


@pytest.mark.parametrize(("field", "valid", "build", "value", "reason"), _bad_value_cases())
def test_each_field_refuses_empty_huge_and_non_text(
    field: str, valid: str, build: Callable[[str], object], value: object, reason: str
) -> None:
    with pytest.raises(UnsafeValueError) as caught:
        build(value)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ds.originate("sofia/gateway/pstn/1555\n"), "legs"),  # type: ignore[arg-type]
        (lambda: ds.originate(["user/1001"]), "legs"),  # type: ignore[list-item]
        (lambda: ds.originate([]), "legs"),
        (lambda: str(Leg("user/1001,x=1")), "leg endpoint"),  # type: ignore[arg-type]
        (lambda: ds.originate(User("1001"), variables=[("a", "b")]), "variables"),  # type: ignore[arg-type]
        (lambda: ds.uuid_transfer(U1, "1000", leg="-aleg"), "leg"),  # type: ignore[arg-type]
        (lambda: ds.uuid_broadcast(U1, "/x.wav", leg="cleg"), "leg"),  # type: ignore[arg-type]
        (lambda: ds.sched_hangup(U1, -1), "seconds"),
        (lambda: ds.sched_hangup(U1, True), "seconds"),
        (lambda: ds.sched_hangup(U1, "30"), "seconds"),  # type: ignore[arg-type]
        (lambda: str(Gateway("pstn", "12")), "number"),  # too short
        (lambda: str(Gateway("pstn", "1234567890123456")), "number"),  # too long
        (lambda: str(Gateway("pstn", "1+5551230000")), "number"),
        (lambda: ds.uuid_kill("2f71ed33d5f34f479204cb92b0d90ff0"), "uuid"),
        (lambda: ds.uuid_kill(U1, "user_busy"), "cause"),
        (lambda: ds.uuid_setvar(U1, "1abc", "x"), "variable name"),
        (lambda: str(User(".1001")), "agent id"),
    ],
)
def test_wrong_shapes_and_types_are_refused(build: Callable[[], object], field: str) -> None:
    with pytest.raises(UnsafeValueError) as caught:
        build()
    assert caught.value.field == field


def test_exact_commands_as_sent_to_the_real_switch() -> None:
    originate = next(line for line in sent_commands("answer_plain") if line.startswith("bgapi originate"))
    uuid = re.search(r"origination_uuid=([0-9a-f-]{36})", originate).group(1)  # type: ignore[union-attr]
    built = ds.originate(
        Gateway("pstn", "15551230000"), variables={"origination_uuid": uuid, "ignore_early_media": "true"}
    )
    assert "bgapi " + built == originate
    assert (
        built == f"originate {{origination_uuid={uuid},ignore_early_media=true}}sofia/gateway/pstn/15551230000 &park()"
    )

    agent = sent_commands("agent_bridge_plain")
    customer = re.search(r"origination_uuid=([0-9a-f-]{36})", agent[4]).group(1)  # type: ignore[union-attr]
    assert "api " + ds.sofia_contact("1001", "127.0.0.1") in agent
    assert "api " + ds.uuid_transfer(customer, "bridge:user/1001", "inline") in agent
    assert "api " + ds.uuid_kill(customer) in agent
    assert "api " + ds.show_calls_json() in agent
    assert (
        "bgapi "
        + ds.originate(
            Gateway("pstn", "15551230000"),
            variables={
                "origination_uuid": customer,
                "ignore_early_media": "true",
                "origination_caller_id_number": "8005551000",
            },
        )
        in agent
    )


def test_other_valid_forms() -> None:
    assert str(User("1001")) == "user/1001"
    assert str(User("1001", "example.com")) == "user/1001@example.com"
    assert str(Loopback("1000", "default")) == "loopback/1000/default"
    assert str(Gateway("pstn", "+15551230000")) == "sofia/gateway/pstn/+15551230000"
    assert ds.originate(User("1001")) == "originate user/1001 &park()"
    assert (
        ds.originate(
            [Leg(Gateway("pstn", "15551230000"), {"leg_timeout": "20"}), Gateway("pstn2", "15551230000")],
            variables={"origination_uuid": U1},
            application="playback",
            application_args="/tmp/hello.wav",
        )
        == f"originate {{origination_uuid={U1}}}[leg_timeout=20]sofia/gateway/pstn/15551230000"
        "|sofia/gateway/pstn2/15551230000 &playback(/tmp/hello.wav)"
    )
    assert ds.uuid_bridge(U1, U2) == f"uuid_bridge {U1} {U2}"
    assert ds.uuid_transfer(U1, "1000", context="default", leg="-bleg") == f"uuid_transfer {U1} -bleg 1000 XML default"
    assert ds.uuid_kill(U1, "USER_BUSY") == f"uuid_kill {U1} USER_BUSY"
    assert ds.uuid_exists(U1) == f"uuid_exists {U1}"
    assert ds.uuid_broadcast(U1, "/tmp/x.wav", "both") == f"uuid_broadcast {U1} /tmp/x.wav both"
    assert ds.uuid_setvar(U1, "agent_id", "1001") == f"uuid_setvar {U1} agent_id 1001"
    assert ds.uuid_setvar(U1, "agent_id") == f"uuid_setvar {U1} agent_id"
    assert ds.uuid_getvar(U1, "sip_term_status") == f"uuid_getvar {U1} sip_term_status"
    assert ds.sched_hangup(U1, 30, "ALLOTTED_TIMEOUT") == f"sched_hangup +30 {U1} ALLOTTED_TIMEOUT"
    assert ds.sched_hangup(U1, 1795546229, relative=False) == f"sched_hangup 1795546229 {U1}"
    assert ds.show_channels_json() == "show channels as json"
    assert ds.sofia_contact("1001", "127.0.0.1", "dialer") == "sofia_contact dialer/1001@127.0.0.1"
    assert ds.hupall() == "hupall MANAGER_REQUEST"


# ---------------------------------------------------------------------------- property

ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["a,b=c", "x}y", "a&b", "${x}", "1\n2", "x]y", "true", "15551230000", U1, "pstn", "1001"]
)
VARIABLE_BLOCK = re.compile(r"^originate \{([^{}]*)\}(?:\[([^\[\]]*)\])?(\S+) &([a-z_]+)\(([^()]*)\)$")


@settings(max_examples=300, deadline=None)
@given(
    gateway=ANY_TEXT, number=ANY_TEXT, name=ANY_TEXT, value=ANY_TEXT, leg_value=ANY_TEXT, app=ANY_TEXT, args=ANY_TEXT
)
def test_arbitrary_text_either_is_refused_or_stays_inside_its_slot(
    gateway: str, number: str, name: str, value: str, leg_value: str, app: str, args: str
) -> None:
    try:
        text = ds.originate(
            Leg(Gateway(gateway, number), {"leg_timeout": leg_value}),
            variables={"origination_uuid": U1, name: value},
            application=app,
            application_args=args,
        )
    except UnsafeValueError:
        return
    assert "\n" not in text
    assert "\r" not in text
    match = VARIABLE_BLOCK.match(text)
    assert match is not None, text
    global_block, leg_block, dial, found_app, found_args = match.groups()
    assert global_block == f"origination_uuid={U1},{name}={value}"  # exactly our two variables
    assert leg_block == f"leg_timeout={leg_value}"
    assert dial == f"sofia/gateway/{gateway}/{number}"
    assert (found_app, found_args) == (app, args)
    for part in (name, value, leg_value, gateway, number, app, args):
        assert not set(part) & set(",=}{[]&|$ \n\r'\"<>^\\")


@settings(max_examples=200, deadline=None)
@given(uuid=ANY_TEXT, destination=ANY_TEXT, cause=ANY_TEXT, var=ANY_TEXT, value=ANY_TEXT)
def test_arbitrary_text_in_api_builders_gives_one_line_of_known_words(
    uuid: str, destination: str, cause: str, var: str, value: str
) -> None:
    for build, words in [
        (lambda: ds.uuid_kill(uuid, cause), [uuid, cause]),
        (lambda: ds.uuid_transfer(uuid, destination, "inline"), [uuid, destination, "inline"]),
        (lambda: ds.uuid_setvar(uuid, var, value), [uuid, var, value]),
        (lambda: ds.sofia_contact(destination, cause), None),
    ]:
        try:
            text = build()
        except UnsafeValueError:
            continue
        assert "\n" not in text
        assert "\r" not in text
        if words is not None:
            assert text.split(" ")[1:] == words


class _Sneaky(str):
    """Checks as "pstn" but formats as something else."""

    def __format__(self, spec: str) -> str:
        return "pstn/1 &system(rm)\napi hupall"

    def __str__(self) -> str:
        return self.__format__("")


def test_a_str_subclass_cannot_put_other_text_on_the_wire() -> None:
    text = str(Gateway(_Sneaky("pstn"), "15551230000"))
    assert text == "sofia/gateway/pstn/15551230000"
    assert type(ds.uuid_kill(U1, _Sneaky("USER_BUSY"))) is str
    assert (
        ds.originate(User(_Sneaky("1001")), variables={_Sneaky("a"): _Sneaky("b")})
        == "originate {a=b}user/1001 &park()"
    )
