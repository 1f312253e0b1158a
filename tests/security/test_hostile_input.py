"""Property tests over every public input that can reach the ESL wire: call requests (numbers, caller ids,
gateways, agent groups, variable names and values), agent ids as Redis hands them to a call, and campaign
and contact metadata. Each generated input is refused with an error naming its field, or carried safely:
the command the dialer sends holds exactly the variables it means to, one application, no expansion."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dialer.callmodel import CallSpec
from dialer.campaigns import Campaigns
from dialer.campaigns.dispatch import Dispatcher
from dialer.esl import UnsafeValueError
from dialer.payload import CallPayload
from dialer.runtime import Runtime
from dialer.store import Store
from settings import Settings
from tests.campaigns.helpers import campaign_config, queued_payloads
from tests.e2e.conftest import ready_agents

from .hostile import (
    AGENT_ORIGINATE,
    ATTACKS,
    CUSTOMER_ORIGINATE,
    DIALER_VARIABLES,
    Recorder,
    agent_commands,
    customer_originate,
    variables_of,
)

SHORT_ATTACKS = [attack for attack in ATTACKS if len(attack) < 1000]
CHECKS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def text_or(valid: str) -> st.SearchStrategy[str]:
    """A valid value, a known attack, or any text at all."""
    return st.one_of(st.just(valid), st.sampled_from(SHORT_ATTACKS), st.text(st.characters(codec="utf-8"), max_size=24))


@st.composite
def call_requests(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "campaign": draw(text_or("spring")),
        "contact_id": draw(text_or("c1")),
        "attempt": 1,
        "number": draw(text_or("+15551230000")),
        "gateway": draw(text_or("pstn")),
        "caller_id_number": draw(text_or("+15550001111")),
        "agent_group": draw(text_or("sales")),
        "ring_timeout": 30,
        "fallback_gateways": draw(st.lists(text_or("backup"), max_size=2)),
    }
    if draw(st.booleans()):
        payload["caller_id_name"] = draw(text_or("Acme"))
    payload["variables"] = draw(st.dictionaries(text_or("sip_h_X_Campaign"), text_or("spring"), max_size=3))
    return payload


@CHECKS
@given(call_requests())
def test_a_call_request_is_refused_naming_its_field_or_dialled_exactly_as_asked(payload: dict[str, Any]) -> None:
    try:
        spec = CallPayload.model_validate(payload).to_spec()
    except ValidationError as exc:
        for error in exc.errors():
            assert error["loc"], error
            assert error["loc"][0] in payload, error  # names the field it refused
            assert error["msg"]
        return
    command = customer_originate(spec)
    match = CUSTOMER_ORIGINATE.fullmatch(command)
    assert match is not None, command
    assert (match["gateway"], match["number"]) == (spec.gateway, spec.number)
    variables = variables_of(match["variables"])
    expected = (
        DIALER_VARIABLES | set(spec.variables) | ({"origination_caller_id_name"} if spec.caller_id_name else set())
    )
    assert set(variables) == expected  # no variable added, none overridden
    assert {name: variables[name] for name in spec.variables} == spec.variables
    assert variables["origination_caller_id_number"] == spec.caller_id_number
    assert "$" not in command
    assert "\n" not in command
    assert command.count("&") == 1


SPEC = CallSpec(
    campaign="spring", contact_id="c1", attempt=1, number="+15551230000", gateway="pstn", caller_id_number="+1555"
)


@CHECKS
@given(st.one_of(st.sampled_from(SHORT_ATTACKS), st.text(st.characters(codec="utf-8"), max_size=24), st.just("1001")))
def test_an_agent_id_from_redis_is_never_dialled_unless_it_is_safe(agent: str) -> None:
    """Whatever Redis holds (it is written by more than this code), a call rings only a safe ``user/<id>``."""
    commands = agent_commands(SPEC, agent)
    originates = [c for c in commands if c.startswith("originate")]
    for command in commands:
        assert "\n" not in command
        assert "$" not in command
    if not originates:
        assert commands == []  # refused before anything about it was sent
        return
    assert commands == originates  # the originate is the first and only command: no unchecked lookup before it
    (command,) = originates
    match = AGENT_ORIGINATE.fullmatch(command)
    assert match is not None, command
    assert match["agent"] == agent
    assert set(variables_of(match["variables"])) == DIALER_VARIABLES - {"ignore_early_media"}


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(agent=st.one_of(st.sampled_from(SHORT_ATTACKS), st.text(max_size=24)), group=text_or("sales"))
def test_the_python_api_refuses_an_unsafe_agent_id_or_group(agent: str, group: str, redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    redis_client.delete(f"dialer:agent:{agent}")  # from an earlier example
    refused: UnsafeValueError | None = None
    try:
        store.add_agent(agent, group, f"user/{agent}")
    except UnsafeValueError as exc:
        refused = exc
    if refused is not None:
        assert refused.field in ("agent id", "group")
        assert not redis_client.exists(f"dialer:agent:{agent}")
        return
    (command,) = agent_commands(SPEC, agent)  # an id the API took is rung as it is
    match = AGENT_ORIGINATE.fullmatch(command)
    assert match is not None, command
    assert match["agent"] == agent


FREE = st.text(st.characters(codec="utf-8"), max_size=30).map(lambda text: "§" + text)  # "§" is in no safe value
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FREE, lambda inner: st.lists(inner, max_size=3), max_leaves=6
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=FREE,
    metadata=st.dictionaries(FREE, JSON_VALUES, max_size=4),
    contact_metadata=st.dictionaries(st.sampled_from(["note", "name", "tier"]), FREE, max_size=3),
)
def test_campaign_and_contact_metadata_never_reach_a_call(
    name: str, metadata: dict[str, Any], contact_metadata: dict[str, Any], redis_client: redis.Redis
) -> None:
    campaign = f"m{uuid.uuid4().hex[:12]}"
    campaigns = Campaigns(redis_client, region="US", default_zone="UTC")
    campaigns.create(campaign_config(campaign, name=name, metadata=metadata))
    result = campaigns.add_contacts(campaign, [{"contact_id": "c1", "number": "+12125551234", **contact_metadata}])
    assert result.accepted == 1
    campaigns.start(campaign)
    ready_agents(Store(redis_client), "a1")  # progressive campaigns dial for free agents
    Dispatcher(redis_client).run_once()
    payloads = [p for p in queued_payloads(redis_client) if p["campaign"] == campaign]
    assert len(payloads) == 1
    assert "§" not in json.dumps(payloads, ensure_ascii=False)
    command = customer_originate(CallPayload.model_validate(payloads[0]).to_spec())
    assert "§" not in command
    assert CUSTOMER_ORIGINATE.fullmatch(command)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(agent=st.one_of(st.sampled_from(SHORT_ATTACKS), st.text(st.characters(codec="utf-8"), max_size=24)))
def test_an_agent_reserved_before_dialling_is_never_asked_about_unless_safe(agent: str, redis_url: str) -> None:
    """Progressive and preview calls check the agent's registration before dialling: an id Redis hands out
    that no interface accepts is skipped (never rung, nothing sent), not an error that stalls the contact."""
    runtime = Runtime(Settings(redis_url=redis_url, _env_file=None), worker_id="w1")  # type: ignore[call-arg]
    switch = Recorder()
    registered = runtime._registered(agent, switch, "spring:c1:1")  # type: ignore[arg-type]
    assert registered == bool(switch.sent)
    if switch.sent:
        assert switch.sent == [f"sofia_contact {agent}"]
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", agent)
